"""Inter-annotator agreement in plain numpy: kappas, percent agreement, confusion matrices, ICC.

Conventions (the same as `learning.metrics`): shape mismatches and empty inputs raise ``ValueError``; a value
the formula leaves undefined is ``nan``, except where the annotators agree perfectly: a kappa whose chance
agreement is already 1 (both used one and the same category for every item) is reported as 1.0, because
0/0 there means "nothing to disagree about", not "unknown".
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from numpy.typing import ArrayLike

NAN = float("nan")
WEIGHTS = (None, "linear", "quadratic")


def _pair(first: ArrayLike, second: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(first, dtype=object), np.asarray(second, dtype=object)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("expected two 1-D sequences of ratings")
    if a.size == 0:
        raise ValueError("no items rated by both annotators")
    if a.shape != b.shape:
        raise ValueError(f"the two annotators rated different numbers of items: {a.size} vs {b.size}")
    return a, b


def _categories(a: np.ndarray, b: np.ndarray, labels: Sequence[Hashable] | None) -> list[Hashable]:
    if labels is None:
        return sorted(set(a.tolist()) | set(b.tolist()), key=str)
    unknown = (set(a.tolist()) | set(b.tolist())) - set(labels)
    if unknown:
        raise ValueError(f"ratings outside the categories {list(labels)}: {sorted(unknown, key=str)}")
    return list(labels)


def confusion_matrix(first: ArrayLike, second: ArrayLike, labels: Sequence[Hashable] | None = None) -> np.ndarray:
    """Return counts[i, j]: items the first annotator put in category i and the second in category j."""
    a, b = _pair(first, second)
    categories = _categories(a, b, labels)
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros((len(categories), len(categories)), dtype=np.int64)
    np.add.at(counts, ([index[x] for x in a], [index[y] for y in b]), 1)
    return counts


def percent_agreement(first: ArrayLike, second: ArrayLike) -> float:
    """Return the share of items both annotators put in the same category."""
    a, b = _pair(first, second)
    return float(np.mean(a == b))


def _weights(k: int, weights: str | None) -> np.ndarray:
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    if weights is None:
        return (i != j).astype(float)
    distance = np.abs(i - j) / max(k - 1, 1)
    return distance if weights == "linear" else distance**2


def cohen_kappa(
    first: ArrayLike, second: ArrayLike, labels: Sequence[Hashable] | None = None, weights: str | None = None
) -> float:
    """Return Cohen's kappa of two annotators (weighted by category distance for ordinal scores).

    kappa = 1 - sum(w * observed) / sum(w * expected), with observed and expected joint proportions and
    disagreement weights w (0 on the diagonal; 1 off it, or |i-j|/(k-1), or its square). For weighted kappa
    `labels` must list the categories in order.
    """
    counts = confusion_matrix(first, second, labels).astype(float)
    observed = counts / counts.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    w = _weights(len(counts), weights)
    disagreement, chance = float((w * observed).sum()), float((w * expected).sum())
    if chance == 0:
        return 1.0 if disagreement == 0 else NAN
    return 1.0 - disagreement / chance


def fleiss_kappa(counts: ArrayLike) -> float:
    """Return Fleiss' kappa from counts[item, category] = how many annotators chose the category for the item.

    Items may have different numbers of annotators; items with fewer than two are left out.
    """
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[1] < 1:
        raise ValueError(f"expected counts of shape (items, categories), got {table.shape}")
    if (table < 0).any():
        raise ValueError("counts must not be negative")
    raters = table.sum(axis=1)
    table, raters = table[raters >= 2], raters[raters >= 2]
    if table.shape[0] == 0:
        raise ValueError("no item was rated by two or more annotators")
    per_item = (table * (table - 1)).sum(axis=1) / (raters * (raters - 1))
    observed = float(per_item.mean())
    shares = table.sum(axis=0) / raters.sum()
    chance = float((shares**2).sum())
    if chance == 1:
        return 1.0 if observed == 1 else NAN
    return (observed - chance) / (1 - chance)


def icc(ratings: ArrayLike) -> float:
    """Return ICC(2,1): two-way random effects, absolute agreement, one rater (Shrout and Fleiss).

    `ratings[item, rater]`, every item rated by every rater. Needs at least two items and two raters;
    with no variance at all between items and raters it is undefined (nan).
    """
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"expected ratings of shape (items >= 2, raters >= 2), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("ratings must be finite numbers (every item rated by every rater)")
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    ms_rows = ss_rows / (n - 1)
    ms_cols = ss_cols / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    if denominator <= 0:
        return NAN
    return float((ms_rows - ms_error) / denominator)


__all__ = ["cohen_kappa", "confusion_matrix", "fleiss_kappa", "icc", "percent_agreement"]
