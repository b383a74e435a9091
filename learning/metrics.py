"""Evaluation metrics in plain numpy: classification, ROC AUC, segmentation overlap, SPECT territories, bootstrap.

Conventions: a ratio whose denominator is zero (e.g. sensitivity with no positives) is ``nan``, never 0 or an
error, so callers can tell "undefined" from "bad"; an AUC with only one class present is ``nan`` for the same
reason. Shape mismatches and empty inputs raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from learning.domain import TERRITORIES

NAN = float("nan")


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: empty input")
    return array


def _paired(y_true: ArrayLike, y_pred: ArrayLike, pred_name: str = "y_pred") -> tuple[np.ndarray, np.ndarray]:
    true = _vector(y_true, "y_true")
    pred = _vector(y_pred, pred_name)
    if true.shape != pred.shape:
        raise ValueError(f"y_true and {pred_name} differ in length: {true.shape[0]} vs {pred.shape[0]}")
    return true, pred


def _binary(values: np.ndarray, name: str) -> np.ndarray:
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"{name}: expected binary labels (0/1 or bool)")
    return values.astype(bool)


def _ratio(numerator: float, denominator: float) -> float:
    return NAN if denominator == 0 else float(numerator) / float(denominator)


# --- classification -------------------------------------------------------------------------------------------


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Return the fraction of predictions equal to the true label."""
    true, pred = _paired(y_true, y_pred)
    return float(np.mean(true == pred))


def f1_scores(y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[Hashable]) -> dict[Hashable, float]:
    """Return one-vs-rest F1 = 2TP / (2TP + FP + FN) per label; nan for a label absent from both arrays."""
    true, pred = _paired(y_true, y_pred)
    if len(labels) == 0:
        raise ValueError("labels: empty")
    scores = {}
    for label in labels:
        is_true, is_pred = true == label, pred == label
        tp = int(np.sum(is_true & is_pred))
        fp = int(np.sum(~is_true & is_pred))
        fn = int(np.sum(is_true & ~is_pred))
        scores[label] = _ratio(2 * tp, 2 * tp + fp + fn)
    return scores


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike, labels: Sequence[Hashable]) -> float:
    """Return the unweighted mean F1 over labels, skipping labels absent from both arrays (nan if all are)."""
    defined = [score for score in f1_scores(y_true, y_pred, labels).values() if not math.isnan(score)]
    return float(np.mean(defined)) if defined else NAN


def binary_confusion(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[int, int, int, int]:
    """Return (tp, fp, tn, fn) for binary labels, 1/True being the positive class."""
    true, pred = _paired(y_true, y_pred)
    true, pred = _binary(true, "y_true"), _binary(pred, "y_pred")
    tp = int(np.sum(true & pred))
    fp = int(np.sum(~true & pred))
    tn = int(np.sum(~true & ~pred))
    fn = int(np.sum(true & ~pred))
    return tp, fp, tn, fn


def sensitivity(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Return TP / (TP + FN), the recall of positives; nan when there are no positives."""
    tp, _fp, _tn, fn = binary_confusion(y_true, y_pred)
    return _ratio(tp, tp + fn)


def specificity(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Return TN / (TN + FP), the recall of negatives; nan when there are no negatives."""
    _tp, fp, tn, _fn = binary_confusion(y_true, y_pred)
    return _ratio(tn, tn + fp)


def precision(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Return TP / (TP + FP); nan when nothing is predicted positive."""
    tp, fp, _tn, _fn = binary_confusion(y_true, y_pred)
    return _ratio(tp, tp + fp)


def balanced_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Return the mean of sensitivity and specificity; nan when either is undefined (one class only)."""
    return (sensitivity(y_true, y_pred) + specificity(y_true, y_pred)) / 2


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Return 1-based ranks of values, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    group_rank = (starts + 1 + ends) / 2  # mean of ranks starts+1 .. ends
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Return the ROC AUC via the Mann-Whitney U statistic (ties count 1/2); nan when only one class is present."""
    true, score = _paired(y_true, scores, "scores")
    true = _binary(true, "y_true")
    score = score.astype(float)
    if not np.isfinite(score).all():
        raise ValueError("scores: must be finite")
    n_pos = int(true.sum())
    n_neg = true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return NAN
    rank_sum = float(_average_ranks(score)[true].sum())
    u_statistic = rank_sum - n_pos * (n_pos + 1) / 2
    return u_statistic / (n_pos * n_neg)


def multiclass_auc_ovr(y_true: ArrayLike, probs: ArrayLike, labels: Sequence[Hashable]) -> float:
    """Return the macro mean of one-vs-rest AUCs, column i of probs scoring labels[i]; nan if any class is absent."""
    true = _vector(y_true, "y_true")
    prob = np.asarray(probs, dtype=float)
    if prob.ndim != 2 or prob.shape != (true.size, len(labels)):
        raise ValueError(f"probs: expected shape ({true.size}, {len(labels)}), got {prob.shape}")
    if len(labels) < 2:
        raise ValueError("labels: need at least two classes")
    return float(np.mean([roc_auc(true == label, prob[:, i]) for i, label in enumerate(labels)]))


# --- segmentation ----------------------------------------------------------------------------------------------


def _masks(pred_mask: ArrayLike, true_mask: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred_mask), np.asarray(true_mask)
    if pred.shape != true.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {true.shape}")
    if pred.size == 0:
        raise ValueError("masks: empty input")
    return _binary(pred, "pred_mask"), _binary(true, "true_mask")


def dice(pred_mask: ArrayLike, true_mask: ArrayLike) -> float:
    """Return 2|A∩B| / (|A| + |B|) for one frame; 1.0 when both masks are empty."""
    pred, true = _masks(pred_mask, true_mask)
    total = int(pred.sum() + true.sum())
    return 1.0 if total == 0 else 2 * int(np.sum(pred & true)) / total


def iou(pred_mask: ArrayLike, true_mask: ArrayLike) -> float:
    """Return |A∩B| / |A∪B| for one frame; 1.0 when both masks are empty."""
    pred, true = _masks(pred_mask, true_mask)
    union = int(np.sum(pred | true))
    return 1.0 if union == 0 else int(np.sum(pred & true)) / union


def segmentation_summary(pairs: Iterable[tuple[ArrayLike, ArrayLike]]) -> dict[str, float]:
    """Return per-frame Dice/IoU mean and population SD, pooled pixel accuracy and the frame count."""
    dices, ious = [], []
    correct = total = 0
    for pred_mask, true_mask in pairs:
        pred, true = _masks(pred_mask, true_mask)
        dices.append(dice(pred, true))
        ious.append(iou(pred, true))
        correct += int(np.sum(pred == true))
        total += pred.size
    if not dices:
        raise ValueError("pairs: no frames")
    return {
        "dice_mean": float(np.mean(dices)),
        "dice_sd": float(np.std(dices)),
        "iou_mean": float(np.mean(ious)),
        "iou_sd": float(np.std(ious)),
        "pixel_accuracy": correct / total,
        "frames": len(dices),
    }


# --- SPECT territories -----------------------------------------------------------------------------------------


def _binary_report(y_true: ArrayLike, scores: np.ndarray, threshold: float) -> dict[str, float]:
    pred = scores >= threshold
    return {
        "auc": roc_auc(y_true, scores),
        "accuracy": accuracy(y_true, pred),
        "sensitivity": sensitivity(y_true, pred),
        "specificity": specificity(y_true, pred),
        "precision": precision(y_true, pred),
        "balanced_accuracy": balanced_accuracy(y_true, pred),
    }


def territory_metrics(y_true: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> dict[str, dict[str, float]]:
    """Return metrics per vessel (columns LAD, RCA, LCX) and per patient (any vessel true, score = max of three)."""
    true = np.asarray(y_true)
    score = np.asarray(scores, dtype=float)
    expected = (len(TERRITORIES),)
    if true.ndim != 2 or true.shape[1:] != expected or score.shape != true.shape:
        raise ValueError(f"y_true and scores: expected equal shapes (n, 3), got {true.shape} and {score.shape}")
    if true.shape[0] == 0:
        raise ValueError("y_true: empty input")
    true = _binary(true, "y_true")
    report = {name: _binary_report(true[:, i], score[:, i], threshold) for i, name in enumerate(TERRITORIES)}
    report["patient"] = _binary_report(true.any(axis=1), score.max(axis=1), threshold)
    return report


# --- bootstrap -------------------------------------------------------------------------------------------------


# A resample that misses one of the sample's strata (classes) is drawn again, at most this many times.
STRATUM_REDRAWS = 50


def _draws(
    n_rows: int, groups: ArrayLike | None, n_boot: int, seed: int, strata: ArrayLike | None = None
) -> list[list[np.ndarray]]:
    """Return the resamples, one list of row-index arrays per scheme: rows drawn with replacement, and, when
    `groups` names two groups or more, whole groups drawn with replacement (a cluster bootstrap: the frames of
    one pullback, or the runs of one patient, move together because they are not independent evidence).

    With `strata` (one key per row, e.g. the true class), a resample holding fewer strata than the sample is
    drawn again (up to STRATUM_REDRAWS times, then left out): on a one-class resample a macro-averaged metric
    answers another question (the majority class is perfect there), and with a few patients a cluster
    bootstrap draws many such resamples, which would make any comparison with the majority class a tie.
    """
    rng = np.random.default_rng(seed)
    classes = None if strata is None else _codes(strata, n_rows, "keys", "strata")
    needed = None if classes is None else int(classes.max()) + 1

    def resamples(draw: Callable[[], np.ndarray]) -> list[np.ndarray]:
        kept = []
        for _ in range(n_boot):
            for _attempt in range(1 if classes is None else STRATUM_REDRAWS):
                rows = draw()
                if classes is None or len(np.unique(classes[rows])) == needed:
                    kept.append(rows)
                    break
        return kept

    schemes = [resamples(lambda: rng.integers(0, n_rows, size=n_rows))]
    if groups is not None:
        codes = _codes(groups, n_rows, "group keys", "groups")
        members = [np.flatnonzero(codes == code) for code in range(int(codes.max()) + 1)]
        if len(members) > 1:
            schemes.append(
                resamples(
                    lambda: np.concatenate([members[g] for g in rng.integers(0, len(members), size=len(members))])
                )
            )
    return schemes


def _codes(keys: ArrayLike, n_rows: int, what: str, name: str) -> np.ndarray:
    """Return one integer code per row for `keys` (0 … distinct keys − 1), refusing a length other than n_rows."""
    array = np.asarray(keys)
    if array.shape != (n_rows,):
        raise ValueError(f"{name}: expected {n_rows} {what}, got shape {array.shape}")
    return np.unique(array, return_inverse=True)[1].ravel()


def _interval(values: list[float], alpha: float) -> tuple[float, float]:
    kept = [v for v in values if not math.isnan(v)]  # e.g. an AUC on a resample that drew one class only
    if not kept:
        return NAN, NAN
    low, high = np.quantile(kept, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _envelope(intervals: list[tuple[float, float]]) -> tuple[float, float]:
    """The widest of the schemes' intervals: the cluster bootstrap is honest about correlated rows but too
    narrow with very few groups (one group: no spread at all), the row bootstrap the other way round."""
    known = [i for i in intervals if not math.isnan(i[0])]
    if not known:
        return NAN, NAN
    return min(low for low, _ in known), max(high for _, high in known)


def _check_alpha(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise ValueError("n_boot: must be at least 1")
    if not 0 < alpha < 1:
        raise ValueError("alpha: must lie strictly between 0 and 1")


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: ArrayLike,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: ArrayLike | None = None,
    strata: ArrayLike | None = None,
) -> tuple[float, float, float]:
    """Return (point, low, high): percentile interval over row resamples, skipping nan ones (bounds nan if all are).

    With `groups` (one key per row, e.g. the patient), the interval is the wider of the row and the group
    (cluster) bootstrap's. With `strata` (one key per row, e.g. the true class), only resamples holding every
    stratum of the sample count (`_draws`).
    """
    if not arrays:
        raise ValueError("bootstrap_ci: pass at least one array")
    _check_alpha(n_boot, alpha)
    data = [np.asarray(array) for array in arrays]
    if any(array.ndim == 0 for array in data):
        raise ValueError("arrays: expected at least 1-D arrays")
    n_rows = data[0].shape[0]
    if n_rows == 0:
        raise ValueError("arrays: empty input")
    if any(array.shape[0] != n_rows for array in data):
        raise ValueError(f"arrays: row counts differ: {[array.shape[0] for array in data]}")
    point = float(metric_fn(*data))
    intervals = [
        _interval([float(metric_fn(*(array[rows] for array in data))) for rows in draws], alpha)
        for draws in _draws(n_rows, groups, n_boot, seed, strata)
    ]
    return (point, *_envelope(intervals))


def expected_calibration_error(y_true: ArrayLike, probs: ArrayLike, n_bins: int = 10) -> float:
    """Return the ECE of the top-class confidence: the bin-size-weighted gap between confidence and accuracy.

    `y_true` holds class indices, `probs` one row of class probabilities per example; equal-width bins.
    """
    true = _vector(y_true, "y_true").astype(int)
    matrix = np.asarray(probs, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != true.shape[0]:
        raise ValueError(f"probs: expected shape ({true.shape[0]}, classes), got {matrix.shape}")
    if n_bins < 1:
        raise ValueError("n_bins: must be at least 1")
    confidence = matrix.max(axis=1)
    correct = (matrix.argmax(axis=1) == true).astype(float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    gap = 0.0
    for b in np.unique(bins):
        inside = bins == b
        gap += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(gap)


def paired_bootstrap(
    metric_fn: Callable[..., float],
    first: Sequence[ArrayLike],
    second: Sequence[ArrayLike],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: ArrayLike | None = None,
    strata: ArrayLike | None = None,
) -> tuple[float, float, float]:
    """Return (difference, low, high) of metric(first) − metric(second) over the same resampled rows.

    `first` and `second` are the per-example arrays each metric is computed from (e.g. truth and one model's
    predictions), row i of every array being the same example; the interval is the two-sided
    (1 − alpha) percentile interval, so `low > 0` at alpha = 0.1 is a one-sided test at 0.05. With `groups`
    (one key per row: the patient), it is the wider of the row and the group (cluster) bootstrap's. With
    `strata` (one key per row: the true class), only resamples holding every class of the sample count
    (`_draws`).
    """
    _check_alpha(n_boot, alpha)
    data_a = [np.asarray(array) for array in first]
    data_b = [np.asarray(array) for array in second]
    rows = {array.shape[0] for array in (*data_a, *data_b)}
    if len(rows) != 1:
        raise ValueError(f"arrays: row counts differ: {sorted(rows)}")
    n_rows = rows.pop()
    if n_rows == 0:
        raise ValueError("arrays: empty input")
    point = float(metric_fn(*data_a)) - float(metric_fn(*data_b))
    intervals = [
        _interval(
            [
                float(metric_fn(*(a[take] for a in data_a))) - float(metric_fn(*(b[take] for b in data_b)))
                for take in draws
            ],
            alpha,
        )
        for draws in _draws(n_rows, groups, n_boot, seed, strata)
    ]
    return (point, *_envelope(intervals))
