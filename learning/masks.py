"""Lossless run-length encoding of binary masks (row-major), shared by labels, predictions and training."""

from __future__ import annotations

from typing import Any

import numpy as np

ENCODING = "rle-rowmajor-v1"


class MaskFormatError(ValueError):
    """An encoded mask is malformed; the message says how."""


def mask_encode(mask: np.ndarray) -> dict[str, Any]:
    """Encode a 2-D boolean mask as alternating run lengths, starting with a (possibly empty) run of zeros."""
    if mask.ndim != 2:
        raise MaskFormatError(f"mask must be 2-D, got shape {mask.shape}")
    flat = np.asarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)
    return {"encoding": ENCODING, "shape": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def mask_decode(data: Any) -> np.ndarray:
    """Decode `mask_encode` output back to the exact boolean mask, or raise MaskFormatError."""
    if not isinstance(data, dict):
        raise MaskFormatError("mask must be an object with encoding, shape and counts")
    if data.get("encoding") != ENCODING:
        raise MaskFormatError(f"mask.encoding must be {ENCODING!r}")
    shape = data.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 8192 for v in shape)
    ):
        raise MaskFormatError("mask.shape must be [rows, columns] with positive integers up to 8192")
    counts = data.get("counts")
    if not isinstance(counts, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts
    ):
        raise MaskFormatError("mask.counts must be a list of non-negative integers")
    total = shape[0] * shape[1]
    if sum(counts) != total:
        raise MaskFormatError(f"mask.counts add up to {sum(counts)}, but shape {shape} has {total} pixels")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(shape)
