// Polar maps in the browser: one perceptual colour map for the gray maps and their colour bar, and the
// 17-segment outlines drawn over a map.
import { el, svg } from "./dom.js";
import { SEGMENT_COUNT, segmentPath } from "./territories.js";

// Perceptual colour map (inferno-like control points), applied to both polar maps and the colour bar.
const COLOUR_STOPS = [
  [0, 0, 4],
  [31, 12, 72],
  [85, 15, 109],
  [136, 34, 106],
  [186, 54, 85],
  [227, 89, 51],
  [249, 140, 10],
  [249, 201, 50],
  [252, 255, 164],
];
const MAP_RADIUS_FRACTION = 0.47; // the polar map fills 0.47 of the image size around its centre

/** RGB triplets for the gray levels 0-255, interpolated between the colour stops. */
export const LUT = (() => {
  const lut = new Uint8ClampedArray(256 * 3);
  const last = COLOUR_STOPS.length - 1;
  for (let v = 0; v < 256; v += 1) {
    const x = (v / 255) * last;
    const i = Math.min(Math.floor(x), last - 1);
    const f = x - i;
    for (let c = 0; c < 3; c += 1) lut[v * 3 + c] = COLOUR_STOPS[i][c] * (1 - f) + COLOUR_STOPS[i + 1][c] * f;
  }
  return lut;
})();

/** Load an image, rejecting with a readable error when it cannot be fetched or decoded. */
export function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${url}`));
    image.src = url;
  });
}

/** Draw a gray polar map into the canvas through the shared colour map. */
export function paintMap(canvas, image) {
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    const v = data[i];
    data[i] = LUT[v * 3];
    data[i + 1] = LUT[v * 3 + 1];
    data[i + 2] = LUT[v * 3 + 2];
    data[i + 3] = 255;
  }
  context.putImageData(pixels, 0, 0);
}

/** Paint the colour map into a 1×256 canvas, the highest value at the top. */
export function paintColourBar(canvas) {
  canvas.width = 1;
  canvas.height = 256;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(1, 256);
  for (let y = 0; y < 256; y += 1) {
    const v = 255 - y;
    pixels.data.set([LUT[v * 3], LUT[v * 3 + 1], LUT[v * 3 + 2], 255], y * 4);
  }
  context.putImageData(pixels, 0, 0);
}

/**
 * Build the colour bar figure: a canvas painted with the colour map (given `id`), ticks at 100/50/0 %
 * and a caption; `className` prefixes the figure's classes.
 */
export function colourBarFigure({ id, className }) {
  const bar = el("canvas", { id });
  paintColourBar(bar);
  return el(
    "figure",
    { class: className },
    el(
      "div",
      { class: `${className}-body` },
      bar,
      el(
        "div",
        { class: `${className}-ticks` },
        el("span", { text: "100%" }),
        el("span", { text: "50%" }),
        el("span", { text: "0%" }),
      ),
    ),
    el("figcaption", { text: "% of each map's max" }),
  );
}

/** Fit the overlay to a width × height map and draw the 17 segment outlines over it. */
export function drawSegmentOutlines(overlay, width, height) {
  overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const radius = Math.min(width, height) * MAP_RADIUS_FRACTION;
  overlay.replaceChildren(
    ...Array.from({ length: SEGMENT_COUNT }, (_, i) =>
      svg("path", { d: segmentPath(i + 1, radius, (width - 1) / 2, (height - 1) / 2) }),
    ),
  );
}
