"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learning.metrics import (
    accuracy,
    balanced_accuracy,
    binary_confusion,
    bootstrap_ci,
    dice,
    f1_scores,
    iou,
    macro_f1,
    multiclass_auc_ovr,
    precision,
    roc_auc,
    segmentation_summary,
    sensitivity,
    specificity,
    territory_metrics,
)

# index:      0  1  2  3  4  5
Y_TRUE_6 = [1, 1, 1, 1, 0, 0]
Y_PRED_6 = [1, 1, 1, 0, 1, 0]
# 0-2: true 1, pred 1 -> TP = 3; 3: true 1, pred 0 -> FN = 1; 4: true 0, pred 1 -> FP = 1; 5: true 0, pred 0 -> TN = 1


def test_binary_confusion_and_derived_rates_on_six_samples():
    assert binary_confusion(Y_TRUE_6, Y_PRED_6) == (3, 1, 1, 1)  # (tp, fp, tn, fn)
    assert accuracy(Y_TRUE_6, Y_PRED_6) == pytest.approx(4 / 6)  # TP + TN = 4 of 6
    assert sensitivity(Y_TRUE_6, Y_PRED_6) == pytest.approx(3 / 4)  # 3 / (3 + 1)
    assert specificity(Y_TRUE_6, Y_PRED_6) == pytest.approx(1 / 2)  # 1 / (1 + 1)
    assert precision(Y_TRUE_6, Y_PRED_6) == pytest.approx(3 / 4)  # 3 / (3 + 1)
    assert balanced_accuracy(Y_TRUE_6, Y_PRED_6) == pytest.approx(5 / 8)  # (3/4 + 1/2) / 2


def test_undefined_rates_are_nan():
    assert math.isnan(sensitivity([0, 0], [0, 1]))  # no positives
    assert math.isnan(specificity([1, 1], [1, 0]))  # no negatives
    assert math.isnan(precision([1, 0], [0, 0]))  # nothing predicted positive
    assert math.isnan(balanced_accuracy([1, 1], [1, 1]))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="differ in length"):
        accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match="binary"):
        binary_confusion([0, 2], [0, 1])
    with pytest.raises(ValueError, match="1-D"):
        roc_auc([[0, 1]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="no frames"):
        segmentation_summary([])
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        territory_metrics([[0, 1]], [[0.1, 0.2]])


def test_roc_auc_perfect_reversed_and_tied():
    y = [0, 0, 1, 1]
    assert roc_auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_roc_auc_with_ties_by_hand():
    # positives 0.4 and 0.8 against negatives 0.1 and 0.4:
    # 0.4>0.1 -> 1, 0.4=0.4 -> 1/2, 0.8>0.1 -> 1, 0.8>0.4 -> 1; AUC = 3.5 / 4
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8]) == pytest.approx(0.875)
    # order of rows does not matter
    assert roc_auc([1, 0, 1, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)


def test_roc_auc_one_class_only_is_nan():
    assert math.isnan(roc_auc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert math.isnan(roc_auc([0, 0], [0.2, 0.5]))


def test_f1_per_class_on_three_classes_by_hand():
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    # a: TP 2 (0, 1), FP 0, FN 1 (2)       -> 4 / (4 + 0 + 1) = 4/5
    # b: TP 1 (3), FP 1 (2), FN 1 (4)      -> 2 / (2 + 1 + 1) = 1/2
    # c: TP 1 (5), FP 1 (4), FN 0          -> 2 / (2 + 1 + 0) = 2/3
    scores = f1_scores(y_true, y_pred, ["a", "b", "c"])
    assert scores == pytest.approx({"a": 4 / 5, "b": 1 / 2, "c": 2 / 3})
    assert macro_f1(y_true, y_pred, ["a", "b", "c"]) == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)
    # a label seen in neither array has undefined F1 and does not drag the macro mean down
    assert math.isnan(f1_scores(y_true, y_pred, ["a", "d"])["d"])
    assert macro_f1(y_true, y_pred, ["a", "d"]) == pytest.approx(4 / 5)


def test_multiclass_auc_ovr_is_macro_mean_of_one_vs_rest():
    y_true = ["LCA", "LCA", "RCA", "RCA", "neither", "neither"]
    probs = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.6, 0.3, 0.1],
            [0.2, 0.7, 0.1],
            [0.3, 0.4, 0.3],
            [0.1, 0.4, 0.5],
            [0.7, 0.1, 0.2],
        ]
    )
    labels = ["LCA", "RCA", "neither"]
    # LCA: positives 0.8, 0.6 vs negatives 0.2, 0.3, 0.1, 0.7 -> 0.8 beats 4, 0.6 beats 3 -> 7/8
    # RCA: positives 0.7, 0.4 vs 0.1, 0.3, 0.4, 0.1 -> 0.7 beats 4, 0.4 beats 3 + ties 1 -> 7.5/8
    # neither: positives 0.5, 0.2 vs 0.1, 0.1, 0.1, 0.3 -> 0.5 beats 4, 0.2 beats 3 -> 7/8
    expected = (7 / 8 + 7.5 / 8 + 7 / 8) / 3
    assert multiclass_auc_ovr(y_true, probs, labels) == pytest.approx(expected)
    assert math.isnan(multiclass_auc_ovr(["LCA", "RCA"], probs[:2], labels))  # "neither" absent
    with pytest.raises(ValueError, match="shape"):
        multiclass_auc_ovr(y_true, probs[:, :2], labels)


PRED = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]])  # 3 pixels
TRUE = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1]])  # 4 pixels; overlap (0,0) and (1,1) = 2; union 5


def test_dice_and_iou_by_hand():
    assert dice(PRED, TRUE) == pytest.approx(2 * 2 / (3 + 4))
    assert iou(PRED, TRUE) == pytest.approx(2 / 5)


def test_empty_masks():
    empty = np.zeros((3, 3), dtype=bool)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0
    assert dice(empty, TRUE) == 0.0
    assert iou(PRED, empty) == 0.0


def test_segmentation_summary_mean_and_sd():
    empty = np.zeros((3, 3), dtype=int)
    summary = segmentation_summary([(PRED, TRUE), (empty, empty), (empty, TRUE)])
    dices = [4 / 7, 1.0, 0.0]
    ious = [2 / 5, 1.0, 0.0]
    dice_mean = sum(dices) / 3
    iou_mean = sum(ious) / 3
    assert summary["frames"] == 3
    assert summary["dice_mean"] == pytest.approx(dice_mean)
    assert summary["dice_sd"] == pytest.approx(math.sqrt(sum((d - dice_mean) ** 2 for d in dices) / 3))
    assert summary["iou_mean"] == pytest.approx(iou_mean)
    assert summary["iou_sd"] == pytest.approx(math.sqrt(sum((v - iou_mean) ** 2 for v in ious) / 3))
    # correct pixels: frame 1 has 3 disagreements (0,1), (1,2), (2,2) -> 6; frame 2 -> 9; frame 3 -> 9 - 4 = 5
    assert summary["pixel_accuracy"] == pytest.approx((6 + 9 + 5) / 27)


# columns LAD, RCA, LCX
SPECT_TRUE = [[1, 0, 0], [0, 0, 0], [0, 1, 1], [0, 0, 0]]
SPECT_SCORES = [[0.9, 0.2, 0.1], [0.3, 0.8, 0.2], [0.1, 0.4, 0.7], [0.2, 0.1, 0.3]]


def test_territory_metrics_per_vessel():
    report = territory_metrics(SPECT_TRUE, SPECT_SCORES)
    assert list(report) == ["LAD", "RCA", "LCX", "patient"]
    # LAD: true [1,0,0,0], scores [.9,.3,.1,.2] -> perfect
    assert report["LAD"]["auc"] == 1.0
    assert report["LAD"]["sensitivity"] == report["LAD"]["specificity"] == report["LAD"]["precision"] == 1.0
    # RCA: true [0,0,1,0], scores [.2,.8,.4,.1]: positive 0.4 beats 0.2 and 0.1, loses to 0.8 -> 2/3
    # predicted (>= 0.5) [0,1,0,0] -> TP 0, FP 1, TN 2, FN 1
    rca = report["RCA"]
    assert rca["auc"] == pytest.approx(2 / 3)
    assert rca["sensitivity"] == 0.0
    assert rca["specificity"] == pytest.approx(2 / 3)
    assert rca["precision"] == 0.0
    assert rca["balanced_accuracy"] == pytest.approx(1 / 3)
    assert rca["accuracy"] == pytest.approx(2 / 4)


def test_territory_metrics_patient_level_uses_max_rule():
    patient = territory_metrics(SPECT_TRUE, SPECT_SCORES)["patient"]
    # true = any vessel -> [1,0,1,0]; score = max -> [.9,.8,.7,.3]
    # AUC: 0.9 beats 0.8 and 0.3, 0.7 beats 0.3 only -> 3/4 (a mean rule would give 0.5)
    assert patient["auc"] == pytest.approx(3 / 4)
    # predicted [1,1,1,0] -> TP 2, FP 1, TN 1, FN 0 (a mean rule would predict no one positive)
    assert patient["sensitivity"] == 1.0
    assert patient["specificity"] == pytest.approx(1 / 2)
    assert patient["precision"] == pytest.approx(2 / 3)
    assert patient["balanced_accuracy"] == pytest.approx(3 / 4)


def test_territory_metrics_threshold_moves_the_calls():
    patient = territory_metrics(SPECT_TRUE, SPECT_SCORES, threshold=0.85)["patient"]
    # predicted [1,0,0,0] -> TP 1, FP 0, TN 2, FN 1
    assert patient["sensitivity"] == pytest.approx(1 / 2)
    assert patient["specificity"] == 1.0


def _noisy_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return y, y + rng.normal(0, 1.0, n)


def test_bootstrap_ci_contains_point_and_is_deterministic():
    y, s = _noisy_scores(60, seed=1)
    point, low, high = bootstrap_ci(roc_auc, y, s, n_boot=500, seed=3)
    assert point == pytest.approx(roc_auc(y, s))
    assert low < point < high
    assert bootstrap_ci(roc_auc, y, s, n_boot=500, seed=3) == (point, low, high)
    assert bootstrap_ci(roc_auc, y, s, n_boot=500, seed=4) != (point, low, high)


def test_bootstrap_ci_narrows_with_more_data():
    y, s = _noisy_scores(40, seed=2)
    _, low_small, high_small = bootstrap_ci(roc_auc, y, s, n_boot=500)
    # same empirical distribution, ten times the patients
    _, low_big, high_big = bootstrap_ci(roc_auc, np.tile(y, 10), np.tile(s, 10), n_boot=500)
    assert high_big - low_big < (high_small - low_small) / 2


def test_bootstrap_ci_skips_nan_resamples():
    x = np.array([0, 1, 1, 1, 1, 1])

    def mean_unless_zero(values: np.ndarray) -> float:
        return float("nan") if (values == 0).any() else float(values.mean())

    point, low, high = bootstrap_ci(mean_unless_zero, x, n_boot=200)
    # the full sample holds the 0, so the point is nan; every kept resample is all ones
    assert math.isnan(point)
    assert (low, high) == (1.0, 1.0)
    # one-class resamples of a tiny sample are dropped rather than poisoning the interval
    _, low, high = bootstrap_ci(roc_auc, [0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], n_boot=200)
    assert (low, high) == (1.0, 1.0)


def test_bootstrap_ci_all_nan_and_bad_input():
    point, low, high = bootstrap_ci(roc_auc, [1, 1, 1], [0.1, 0.2, 0.3], n_boot=50)
    assert math.isnan(point) and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError, match="row counts differ"):
        bootstrap_ci(roc_auc, [0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(roc_auc, [0, 1], [0.1, 0.2], alpha=1.5)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(roc_auc, [], [])
