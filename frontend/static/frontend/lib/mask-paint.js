// Painting a binary mask by hand: brush/eraser stamps, polygon fill, a bounded undo history, the pullback's
// frames as bitmaps, and the canvas drawing a mask tool layers over a frame.
//
// A mask is a row-major Uint8Array of rows × columns holding 0/1; points are {x, y} in pixel units, so the
// centre of pixel (row, col) is (col + ½, row + ½). Nothing here touches a tool's DOM: the drawing helpers
// draw on the 2D context they are given.

import { clamp } from "./math.js";
import { BINS } from "./oct-measure.js";

export { clamp };

/** Map a pointer event's client position over an element's `rect` to pixel units of a rows × cols image. */
export function clientToPixels(event, rect, rows, cols) {
  return {
    x: ((event.clientX - rect.left) / rect.width) * cols,
    y: ((event.clientY - rect.top) / rect.height) * rows,
  };
}

/** Set (value 1) or clear (0) the pixels whose centres lie within `radius` of (x, y), in pixel units. */
export function stamp(mask, rows, cols, x, y, radius, value) {
  const r2 = radius * radius;
  const top = clamp(Math.floor(y - radius), 0, rows - 1);
  const bottom = clamp(Math.ceil(y + radius), 0, rows - 1);
  const left = clamp(Math.floor(x - radius), 0, cols - 1);
  const right = clamp(Math.ceil(x + radius), 0, cols - 1);
  for (let row = top; row <= bottom; row++) {
    const dy = row + 0.5 - y;
    for (let col = left; col <= right; col++) {
      const dx = col + 0.5 - x;
      if (dx * dx + dy * dy <= r2) mask[row * cols + col] = value;
    }
  }
  // The pixel under the pointer always counts, however small the brush.
  const row = Math.floor(y);
  const col = Math.floor(x);
  if (row >= 0 && row < rows && col >= 0 && col < cols) mask[row * cols + col] = value;
}

/** Stamp along the segment from a to b, at most half a radius apart, so fast strokes leave no gaps. */
export function stampLine(mask, rows, cols, a, b, radius, value) {
  const length = Math.hypot(b.x - a.x, b.y - a.y);
  const steps = Math.max(1, Math.ceil(length / Math.max(0.5, radius / 2)));
  for (let i = 1; i <= steps; i++) {
    const t = i / steps;
    stamp(mask, rows, cols, a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t, radius, value);
  }
}

/** Even-odd scanline fill of a polygon (vertices in pixel units) through pixel centres. */
export function fillPolygon(mask, rows, cols, points, value = 1) {
  const n = points.length;
  for (let row = 0; row < rows; row++) {
    const y = row + 0.5;
    const xs = [];
    for (let i = 0, j = n - 1; i < n; j = i++) {
      const a = points[i];
      const b = points[j];
      if (a.y <= y !== b.y <= y) xs.push(a.x + ((y - a.y) * (b.x - a.x)) / (b.y - a.y));
    }
    xs.sort((p, q) => p - q);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      const first = Math.max(0, Math.ceil(xs[k] - 0.5));
      const last = Math.min(cols - 1, Math.ceil(xs[k + 1] - 0.5) - 1);
      if (last >= first) mask.fill(value, row * cols + first, row * cols + last + 1);
    }
  }
}

/** Undo and redo stacks of snapshots (whatever the caller restores), keeping at most `limit` undo steps. */
export class UndoHistory {
  constructor(limit) {
    this.limit = limit;
    this.undoStack = [];
    this.redoStack = [];
  }

  get undoCount() {
    return this.undoStack.length;
  }

  get redoCount() {
    return this.redoStack.length;
  }

  /** Record the snapshot taken before an edit; the edit makes anything undone unredoable. */
  remember(snap) {
    this.undoStack.push(snap);
    if (this.undoStack.length > this.limit) this.undoStack.shift();
    this.redoStack = [];
  }

  /** Return the snapshot to restore, keeping `current` for redo; check undoCount first. */
  undo(current) {
    this.redoStack.push(current);
    return this.undoStack.pop();
  }

  /** Return the snapshot to restore, keeping `current` for undo; check redoCount first. */
  redo(current) {
    this.undoStack.push(current);
    return this.redoStack.pop();
  }

  clear() {
    this.undoStack = [];
    this.redoStack = [];
  }
}

/** Frames of a pullback as decoded bitmaps, fetched on demand with a prefetch of `radius` frames either side. */
export class FrameCache {
  constructor(template, count, radius) {
    this.template = template;
    this.count = count;
    this.radius = radius;
    this.bitmaps = new Map();
    this.pending = new Map();
    this.abort = new AbortController();
  }

  get(n) {
    if (this.bitmaps.has(n)) return Promise.resolve(this.bitmaps.get(n));
    if (!this.pending.has(n)) {
      const url = this.template.replace("{n}", String(n));
      // "include" (same cookies as "same-origin" here) so the first frame takes the page's <link rel="preload">.
      const promise = fetch(url, { credentials: "include", signal: this.abort.signal })
        .then((response) => {
          if (!response.ok) throw new Error(`frame ${n + 1}: HTTP ${response.status}`);
          return response.blob();
        })
        .then((blob) => createImageBitmap(blob))
        .then((bitmap) => {
          this.bitmaps.set(n, bitmap);
          this.pending.delete(n);
          return bitmap;
        })
        .catch((error) => {
          this.pending.delete(n);
          throw error;
        });
      this.pending.set(n, promise);
    }
    return this.pending.get(n);
  }

  prefetch(n) {
    for (let k = n - this.radius; k <= n + this.radius; k++) {
      if (k >= 0 && k < this.count) this.get(k).catch(() => {});
    }
  }

  close() {
    this.abort.abort();
    for (const bitmap of this.bitmaps.values()) bitmap.close();
    this.bitmaps.clear();
  }
}

/** An off-screen canvas showing the set pixels of a mask in one colour and the rest transparent. */
export class MaskOverlay {
  // Set `stale` whenever the mask changes; draw() repaints only then, not on every pointer move.
  constructor(rows, cols, rgb) {
    this.canvas = document.createElement("canvas");
    this.canvas.width = cols;
    this.canvas.height = rows;
    this.context = this.canvas.getContext("2d");
    this.image = this.context.createImageData(cols, rows);
    this.rgb = rgb;
    this.stale = true;
  }

  /** Draw the overlay onto `context` at opacity `alpha`, repainting it from `mask` first if stale. */
  draw(context, mask, alpha) {
    if (this.stale) this.paint(mask);
    context.globalAlpha = alpha;
    context.drawImage(this.canvas, 0, 0);
    context.globalAlpha = 1;
  }

  /** Repaint the overlay from `mask`. */
  paint(mask) {
    this.stale = false;
    const data = this.image.data;
    const [red, green, blue] = this.rgb;
    for (let i = 0, p = 0; i < mask.length; i++, p += 4) {
      if (mask[i]) {
        data[p] = red;
        data[p + 1] = green;
        data[p + 2] = blue;
        data[p + 3] = 255;
      } else {
        data[p + 3] = 0;
      }
    }
    this.context.putImageData(this.image, 0, 0);
  }
}

/** Draw the occupied degree bins as a ring of `ringRadius` around the centre (cy, cx), and a cross at it. */
export function drawArcRing(context, bins, [cy, cx], ringRadius, unit) {
  context.strokeStyle = "rgba(74, 163, 255, 0.9)";
  context.lineWidth = 3 * unit;
  context.beginPath();
  for (let b = 0; b < BINS; b++) {
    if (!bins[b]) continue;
    const start = (b * Math.PI) / 180;
    context.moveTo(cx + 0.5 + ringRadius * Math.cos(start), cy + 0.5 + ringRadius * Math.sin(start));
    context.arc(cx + 0.5, cy + 0.5, ringRadius, start, ((b + 1) * Math.PI) / 180);
  }
  context.stroke();
  context.strokeStyle = "rgba(255, 255, 255, 0.6)";
  context.lineWidth = unit;
  context.beginPath();
  context.moveTo(cx + 0.5 - 4 * unit, cy + 0.5);
  context.lineTo(cx + 0.5 + 4 * unit, cy + 0.5);
  context.moveTo(cx + 0.5, cy + 0.5 - 4 * unit);
  context.lineTo(cx + 0.5, cy + 0.5 + 4 * unit);
  context.stroke();
}

/** Draw an open polygon with its vertices marked, and a rubber band from the last vertex to the pointer. */
export function drawPolygonOutline(context, points, pointer, unit) {
  if (!points.length) return;
  context.strokeStyle = "#4aa3ff";
  context.fillStyle = "#4aa3ff";
  context.lineWidth = unit;
  context.beginPath();
  points.forEach((p, i) => (i ? context.lineTo(p.x, p.y) : context.moveTo(p.x, p.y)));
  if (pointer) context.lineTo(pointer.x, pointer.y);
  context.stroke();
  for (const p of points) context.fillRect(p.x - 1.5 * unit, p.y - 1.5 * unit, 3 * unit, 3 * unit);
}

/** Draw the brush outline, a circle of `radius` pixels around the pointer. */
export function drawBrushCursor(context, pointer, radius, colour, unit) {
  context.strokeStyle = colour;
  context.lineWidth = unit;
  context.beginPath();
  context.arc(pointer.x, pointer.y, radius, 0, 2 * Math.PI);
  context.stroke();
}
