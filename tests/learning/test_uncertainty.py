"""Uncertainty scores against hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learning.uncertainty import (
    bald,
    crop_spread,
    entropy,
    least_confidence,
    margin,
    mean_pixel_entropy,
    summed_binary_entropy,
    tta_disagreement,
)

UNIFORM3 = [1 / 3, 1 / 3, 1 / 3]
ONE_HOT = [0.0, 1.0, 0.0]


def test_uniform_three_class_probs_are_maximally_uncertain():
    assert entropy(UNIFORM3) == pytest.approx(math.log(3))
    assert margin(UNIFORM3) == pytest.approx(1.0)
    assert least_confidence(UNIFORM3) == pytest.approx(2 / 3)


def test_one_hot_probs_are_certain_and_finite():
    assert entropy(ONE_HOT) == pytest.approx(0.0, abs=1e-9)
    assert margin(ONE_HOT) == pytest.approx(0.0)
    assert least_confidence(ONE_HOT) == pytest.approx(0.0)


def test_hand_computed_binary_case():
    assert entropy([0.25, 0.75]) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert margin([0.25, 0.75]) == pytest.approx(0.5)


def test_batched_scores_are_per_row():
    np.testing.assert_allclose(entropy([UNIFORM3, ONE_HOT]), [math.log(3), 0.0], atol=1e-9)
    np.testing.assert_allclose(margin([UNIFORM3, [0.2, 0.5, 0.3]]), [1.0, 0.8])
    np.testing.assert_allclose(least_confidence([UNIFORM3, ONE_HOT]), [2 / 3, 0.0])


def test_crop_spread_is_zero_for_identical_crops_and_grows_with_disagreement():
    assert crop_spread([[0.7, 0.3]] * 10) == pytest.approx(0.0)
    # Two crops at 0.9/0.1 and 0.5/0.5: each class has std 0.2 across crops.
    assert crop_spread([[0.9, 0.1], [0.5, 0.5]]) == pytest.approx(0.2)
    np.testing.assert_allclose(crop_spread([[[0.7, 0.3]] * 2, [[0.9, 0.1], [0.5, 0.5]]]), [0.0, 0.2])


def test_bald_is_zero_when_samples_agree_and_ln2_when_confident_samples_disagree():
    assert bald([[0.6, 0.4]] * 5) == pytest.approx(0.0, abs=1e-9)
    assert bald([[1.0, 0.0], [0.0, 1.0]]) == pytest.approx(math.log(2))
    np.testing.assert_allclose(bald([[[0.6, 0.4]] * 2, [[1.0, 0.0], [0.0, 1.0]]]), [0.0, math.log(2)], atol=1e-9)


def test_mean_pixel_entropy():
    assert mean_pixel_entropy(np.full((4, 4), 0.5)) == pytest.approx(math.log(2))
    assert mean_pixel_entropy(np.zeros((4, 4))) == pytest.approx(0.0, abs=1e-9)
    half_certain = np.zeros((2, 2))
    half_certain[0] = 0.5
    assert mean_pixel_entropy(half_certain) == pytest.approx(math.log(2) / 2)


def test_tta_disagreement_known_answers():
    mask = np.zeros((8, 8))
    mask[2:5, 2:5] = 0.9
    assert tta_disagreement(np.stack([mask] * 4)) == pytest.approx(0.0)
    assert tta_disagreement(np.zeros((4, 8, 8))) == pytest.approx(0.0)
    left, right = np.zeros((8, 8)), np.zeros((8, 8))
    left[:, :4] = 1.0
    right[:, 4:] = 1.0
    assert tta_disagreement(np.stack([left, right])) == pytest.approx(1.0)


def test_tta_disagreement_averages_pairs_and_counts_empty_against_nonempty_as_zero():
    mask = np.zeros((4, 4))
    mask[0, 0] = 1.0
    # Pairs: (mask, mask) Dice 1, (mask, empty) 0 twice -> mean 1/3.
    assert tta_disagreement(np.stack([mask, mask, np.zeros((4, 4))])) == pytest.approx(2 / 3)


def test_tta_disagreement_respects_threshold():
    maps = np.stack([np.full((2, 2), 0.6), np.full((2, 2), 0.4)])
    assert tta_disagreement(maps) == pytest.approx(1.0)
    assert tta_disagreement(maps, threshold=0.3) == pytest.approx(0.0)


def test_summed_binary_entropy():
    assert summed_binary_entropy([0.5, 0.5, 0.5]) == pytest.approx(3 * math.log(2))
    assert summed_binary_entropy([0.0, 1.0, 0.0]) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(summed_binary_entropy([[0.5] * 3, [0.5, 1.0, 1.0]]), [3 * math.log(2), math.log(2)])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: margin([1.0]), "at least 2 classes"),
        (lambda: entropy([]), "non-empty"),
        (lambda: entropy([0.5, 1.5]), r"\[0, 1\]"),
        (lambda: entropy([0.5, float("nan")]), "finite"),
        (lambda: crop_spread([0.5, 0.5]), "2-D or 3-D"),
        (lambda: bald(np.full((2, 2, 2, 2), 0.5)), "2-D or 3-D"),
        (lambda: mean_pixel_entropy(np.full((2, 2, 2), 0.5)), "2-D"),
        (lambda: tta_disagreement(np.full((4, 4), 0.5)), "3-D"),
        (lambda: tta_disagreement(np.full((1, 4, 4), 0.5)), "at least 2"),
        (lambda: tta_disagreement(np.full((2, 4, 4), 0.5), threshold=1.0), "threshold"),
        (lambda: summed_binary_entropy([0.5, 0.5]), "3 sigmoid outputs"),
        (lambda: summed_binary_entropy(np.full((2, 2, 3), 0.5)), "1-D or 2-D"),
    ],
)
def test_bad_shapes_and_values_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
