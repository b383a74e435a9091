"""Uncertainty scores from model outputs: higher means the model is less sure about the item."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from learning.metrics import dice

# Probabilities are clipped to [EPS, 1 - EPS] before any log so a confident 0 or 1 costs nothing instead of nan.
EPS = 1e-12
# Inputs may carry float rounding just outside [0, 1]; anything further out is a caller bug.
_RANGE_TOLERANCE = 1e-6


def _probabilities(values: ArrayLike, name: str, ndims: tuple[int, ...] | None = None) -> np.ndarray:
    """Return values as a float array after checking dimensions, finiteness and the [0, 1] range."""
    array = np.asarray(values, dtype=np.float64)
    if ndims is not None and array.ndim not in ndims:
        expected = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{name}: expected a {expected} array, got shape {array.shape}")
    if array.ndim == 0 or array.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: probabilities must be finite")
    if array.min() < -_RANGE_TOLERANCE or array.max() > 1 + _RANGE_TOLERANCE:
        raise ValueError(f"{name}: probabilities must lie in [0, 1]")
    return array


def _scalar_or_array(result: np.ndarray) -> float | np.ndarray:
    """Return a plain float for a 0-D result, the array otherwise."""
    return float(result) if result.ndim == 0 else result


def _categorical_entropy(probs: np.ndarray) -> np.ndarray:
    """Return the Shannon entropy (nats) over the last axis of already-checked probabilities."""
    clipped = np.clip(probs, EPS, 1.0)
    return np.maximum(-np.sum(probs * np.log(clipped), axis=-1), 0.0)


def _binary_entropy(probs: np.ndarray) -> np.ndarray:
    """Return the elementwise binary entropy (nats) of already-checked sigmoid outputs."""
    p = np.clip(probs, EPS, 1.0 - EPS)
    return np.maximum(-(p * np.log(p) + (1.0 - p) * np.log(1.0 - p)), 0.0)


def entropy(probs: ArrayLike) -> float | np.ndarray:
    """Return the Shannon entropy (natural log) of class probabilities over the last axis."""
    return _scalar_or_array(_categorical_entropy(_probabilities(probs, "probs")))


def margin(probs: ArrayLike) -> float | np.ndarray:
    """Return 1 - (top1 - top2) over the last axis, so a narrow lead scores high."""
    array = _probabilities(probs, "probs")
    if array.shape[-1] < 2:
        raise ValueError(f"probs: margin needs at least 2 classes on the last axis, got shape {array.shape}")
    ordered = np.sort(array, axis=-1)
    return _scalar_or_array(1.0 - (ordered[..., -1] - ordered[..., -2]))


def least_confidence(probs: ArrayLike) -> float | np.ndarray:
    """Return 1 - the top class probability over the last axis."""
    return _scalar_or_array(1.0 - np.max(_probabilities(probs, "probs"), axis=-1))


def crop_spread(crop_probs: ArrayLike) -> float | np.ndarray:
    """Return the mean over classes of the std across crops; shape (crops, classes) or (items, crops, classes)."""
    array = _probabilities(crop_probs, "crop_probs", ndims=(2, 3))
    return _scalar_or_array(np.mean(np.std(array, axis=-2), axis=-1))


def bald(mc_probs: ArrayLike) -> float | np.ndarray:
    """Return BALD mutual information: entropy of the mean minus the mean of entropies across samples."""
    array = _probabilities(mc_probs, "mc_probs", ndims=(2, 3))
    mutual_information = _categorical_entropy(array.mean(axis=-2)) - _categorical_entropy(array).mean(axis=-1)
    return _scalar_or_array(np.maximum(mutual_information, 0.0))


def mean_pixel_entropy(prob_map: ArrayLike) -> float:
    """Return the binary entropy of a (H, W) sigmoid map, averaged over pixels."""
    return float(np.mean(_binary_entropy(_probabilities(prob_map, "prob_map", ndims=(2,)))))


def tta_disagreement(prob_maps: ArrayLike, threshold: float = 0.5) -> float:
    """Return 1 - mean pairwise Dice of (k, H, W) maps already rotated back to the original frame."""
    array = _probabilities(prob_maps, "prob_maps", ndims=(3,))
    if array.shape[0] < 2:
        raise ValueError(f"prob_maps: need at least 2 augmented predictions, got shape {array.shape}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    masks = array >= threshold
    count = masks.shape[0]
    dices = [dice(masks[i], masks[j]) for i in range(count) for j in range(i + 1, count)]
    return float(1.0 - np.mean(dices))


def summed_binary_entropy(probs3: ArrayLike) -> float | np.ndarray:
    """Return the sum of binary entropies of the three territory sigmoids (LAD, RCA, LCX); shape (3,) or (items, 3)."""
    array = _probabilities(probs3, "probs3", ndims=(1, 2))
    if array.shape[-1] != 3:
        raise ValueError(f"probs3: expected 3 sigmoid outputs on the last axis, got shape {array.shape}")
    return _scalar_or_array(np.sum(_binary_entropy(array), axis=-1))
