// Calcium measurements of an OCT mask, the same definitions and arithmetic as learning/oct_measure.py
// (see its docstring): pixel centres binned by angle around the lumen centre into 360 one-degree bins;
// arc = bins holding calcium; thickness of a bin = max radius - min radius + 1; area = pixel count.

export const BINS = 360;
const ANGLE_NUDGE_DEG = 1e-9;
const TO_DEGREES = 180 / Math.PI;

/** Return the image centre [row, col], where the catheter sits in an OCT frame. */
export function defaultCentre(rows, cols) {
  return [(rows - 1) / 2, (cols - 1) / 2];
}

/** Per-degree-bin pixel counts and min/max radii (Infinity/-Infinity where empty). */
export function calciumBins(mask, rows, cols, centre = null) {
  const [cy, cx] = centre || defaultCentre(rows, cols);
  const counts = new Int32Array(BINS);
  const rMin = new Float64Array(BINS).fill(Infinity);
  const rMax = new Float64Array(BINS).fill(-Infinity);
  for (let row = 0, i = 0; row < rows; row++) {
    const dy = row - cy;
    for (let col = 0; col < cols; col++, i++) {
      if (!mask[i]) continue;
      const dx = col - cx;
      const degrees = Math.atan2(dy, dx) * TO_DEGREES;
      const bin = (((Math.floor(degrees + ANGLE_NUDGE_DEG) % BINS) + BINS) % BINS) | 0;
      const radius = Math.sqrt(dy * dy + dx * dx);
      counts[bin]++;
      if (radius < rMin[bin]) rMin[bin] = radius;
      if (radius > rMax[bin]) rMax[bin] = radius;
    }
  }
  return { counts, rMin, rMax };
}

/** {arcDegrees, areaPx, areaMm2, maxThicknessPx, maxThicknessMm}; mm values are null without spacing. */
export function calciumMeasurements(mask, rows, cols, { centre = null, pixelSpacingMm = null } = {}) {
  const { counts, rMin, rMax } = calciumBins(mask, rows, cols, centre);
  let arcDegrees = 0;
  let areaPx = 0;
  let maxThicknessPx = 0;
  for (let b = 0; b < BINS; b++) {
    if (!counts[b]) continue;
    arcDegrees++;
    areaPx += counts[b];
    maxThicknessPx = Math.max(maxThicknessPx, rMax[b] - rMin[b] + 1);
  }
  let areaMm2 = null;
  let maxThicknessMm = null;
  if (pixelSpacingMm) {
    const [rowMm, colMm] = pixelSpacingMm.map(Number);
    areaMm2 = areaPx * rowMm * colMm;
    maxThicknessMm = (maxThicknessPx * (rowMm + colMm)) / 2;
  }
  return { arcDegrees, areaPx, areaMm2, maxThicknessPx, maxThicknessMm };
}
