// OCT calcium's views outside the workspace tool: the quality dashboard's agreement card (Dice per pair and per
// frame) and the adjudication page's panels (the frame with each mask drawn over it).
import { el } from "../lib/dom.js";
import { binValues, histogram } from "../lib/charts.js";
import { decodeMask } from "../lib/mask-rle.js";
import { NO_OVERLAP, PAIR_COLUMNS, fixed, percent, table } from "../quality-agreement.js";
import { words } from "../adjudicate-views.js";

export const agreement = {
  facts: (o) => [
    ["Frames labelled by two or more", String(o.items), "items"],
    ["Frames both drew a mask on", String(o.frames_with_masks ?? 0), "frames_with_masks"],
    ["Mean Dice", o.dice_mean === undefined ? "—" : `${fixed(o.dice_mean)} ± ${fixed(o.dice_sd)}`, "dice_mean"],
    ["Mean IoU", fixed(o.iou_mean), "iou_mean"],
    ["Agreement on excluding", percent(o.excluded_agreement), "excluded_agreement"],
    ["Kappa on excluding", fixed(o.excluded_kappa), "excluded_kappa"],
  ],
  charts: (_o, a) => {
    const { edges, counts } = binValues((a.frames || []).map((f) => f.dice), { bins: 10 });
    return [
      histogram({
        name: "dice-histogram",
        title: "Dice between two annotators' masks, per frame",
        xLabel: "Dice",
        yLabel: "frames",
        edges,
        counts,
        unit: "frames",
        empty: "No frame has two annotators' masks yet.",
      }),
    ];
  },
  tables: (a) => [
    table(
      "pair-table",
      [
        ...PAIR_COLUMNS,
        ["Masks", (p) => String(p.frames_with_masks), "num"],
        ["Dice (mean ± sd)", (p) => (p.dice_mean === null ? "—" : `${fixed(p.dice_mean)} ± ${fixed(p.dice_sd)}`), "num"],
        ["IoU", (p) => fixed(p.iou_mean), "num"],
        ["Excluded agree", (p) => percent(p.excluded_agreement), "num"],
        ["Excluded kappa", (p) => fixed(p.excluded_kappa), "num"],
      ],
      a.pairs,
      NO_OVERLAP,
    ),
  ],
};

// ---------------------------------------------------------------------------------------------- adjudication
const OVERLAYS = {
  label: [255, 80, 80],
  model: [255, 190, 40],
};

function frameImage(context) {
  if (!context.frame) {
    const { media, frame_index: frameIndex } = context.item;
    const image = new Image();
    image.src = media.frame_url_template.replace("{n}", String(frameIndex ?? 0));
    context.frame = image.decode().then(() => image);
  }
  return context.frame;
}

/** Return a canvas showing the item's frame with `mask` (RLE) drawn over it; dimmed and unmasked when excluded. */
function maskCanvas(context, { mask, excluded, colour, name }) {
  const decoded = mask ? decodeMask(mask) : null;
  const rows = decoded ? decoded.rows : context.item.media.rows;
  const cols = decoded ? decoded.cols : context.item.media.columns;
  const canvas = el("canvas", {
    class: "opinion-canvas",
    width: cols,
    height: rows,
    role: "img",
    "aria-label": excluded ? `${name}: frame excluded` : `${name}: calcium mask over the frame`,
    "data-drawn": "false",
  });
  const area = decoded ? decoded.data.reduce((sum, v) => sum + v, 0) : 0;
  canvas.dataset.maskPixels = String(area);
  frameImage(context)
    .catch(() => null)
    .then((image) => {
      const draw = canvas.getContext("2d");
      draw.fillStyle = "#000";
      draw.fillRect(0, 0, cols, rows);
      if (image) {
        draw.globalAlpha = excluded ? 0.35 : 1;
        draw.drawImage(image, 0, 0, cols, rows);
        draw.globalAlpha = 1;
      }
      if (decoded && !excluded) {
        const overlay = new ImageData(cols, rows);
        const [r, g, b] = colour;
        decoded.data.forEach((set, i) => {
          if (!set) return;
          overlay.data.set([r, g, b, 150], i * 4);
        });
        const layer = document.createElement("canvas");
        layer.width = cols;
        layer.height = rows;
        layer.getContext("2d").putImageData(overlay, 0, 0);
        draw.drawImage(layer, 0, 0);
      }
      canvas.dataset.drawn = image ? "true" : "no-frame";
    });
  return { canvas, area, pixels: rows * cols };
}

export const adjudication = {
  label(payload, context, author) {
    if (payload.excluded) {
      const { canvas } = maskCanvas(context, { excluded: true, name: author });
      return [canvas, el("p", { class: "opinion-facts excluded", text: `Excluded: ${words(payload.exclusion_reason)}` })];
    }
    const { canvas, area, pixels } = maskCanvas(context, { mask: payload.mask, colour: OVERLAYS.label, name: author });
    return [canvas, el("p", { class: "opinion-facts", text: `${area} px calcium (${((100 * area) / pixels).toFixed(1)}% of the frame)` })];
  },
  model(prediction, context) {
    const output = prediction.output || {};
    if (!output.mask) return [el("pre", { text: JSON.stringify(output) })];
    const name = `model v${prediction.model_version}`;
    const { canvas, area } = maskCanvas(context, { mask: output.mask, colour: OVERLAYS.model, name });
    const fraction = typeof output.calcium_fraction === "number" ? ` · calcium fraction ${output.calcium_fraction.toFixed(3)}` : "";
    return [canvas, el("p", { class: "opinion-facts", text: `${area} px calcium${fraction}` })];
  },
  startFromModel: (output) => (output && output.mask ? { mask: output.mask } : null),
};
