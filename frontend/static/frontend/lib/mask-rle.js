// Lossless run-length encoding of binary masks, byte for byte the server's learning/masks.py format:
// {encoding: "rle-rowmajor-v1", shape: [rows, cols], counts: [zeros, ones, zeros, ...]}, row-major,
// starting with a (possibly empty) run of zeros.

export const ENCODING = "rle-rowmajor-v1";

export class MaskFormatError extends Error {}

/** Encode a row-major mask (any non-zero byte counts as set) as alternating run lengths. */
export function encodeMask(mask, rows, cols) {
  const total = rows * cols;
  if (mask.length !== total) throw new MaskFormatError(`mask has ${mask.length} pixels, shape needs ${total}`);
  const counts = [];
  let value = 0;
  let run = 0;
  for (let i = 0; i < total; i++) {
    const bit = mask[i] ? 1 : 0;
    if (bit === value) {
      run++;
    } else {
      counts.push(run);
      value = bit;
      run = 1;
    }
  }
  if (run > 0 || counts.length === 0) counts.push(run);
  return { encoding: ENCODING, shape: [rows, cols], counts };
}

/** Decode an encoded mask to {rows, cols, data: Uint8Array of 0/1}, or throw MaskFormatError. */
export function decodeMask(encoded) {
  if (!encoded || typeof encoded !== "object") throw new MaskFormatError("mask must be an object");
  if (encoded.encoding !== ENCODING) throw new MaskFormatError(`mask.encoding must be ${ENCODING}`);
  const shape = encoded.shape;
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((v) => Number.isInteger(v) && v > 0)) {
    throw new MaskFormatError("mask.shape must be [rows, columns]");
  }
  const [rows, cols] = shape;
  const counts = encoded.counts;
  if (!Array.isArray(counts) || !counts.every((c) => Number.isInteger(c) && c >= 0)) {
    throw new MaskFormatError("mask.counts must be non-negative integers");
  }
  const total = rows * cols;
  const sum = counts.reduce((a, b) => a + b, 0);
  if (sum !== total) throw new MaskFormatError(`mask.counts add up to ${sum}, shape has ${total} pixels`);
  const data = new Uint8Array(total);
  let at = 0;
  counts.forEach((count, index) => {
    if (index % 2 === 1) data.fill(1, at, at + count);
    at += count;
  });
  return { rows, cols, data };
}
