"""Agreement statistics checked against values worked out by hand (and the classic published examples)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from learning.agreement import cohen_kappa, confusion_matrix, fleiss_kappa, icc, percent_agreement


def from_matrix(matrix, labels):
    """Return two rating lists whose confusion matrix is `matrix`."""
    first, second = [], []
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            first += [labels[i]] * count
            second += [labels[j]] * count
    return first, second


def test_cohen_kappa_two_classes_by_hand():
    a = ["A", "A", "B", "B", "A", "B", "A", "A", "B", "B"]
    b = ["A", "B", "B", "B", "A", "A", "A", "A", "B", "B"]
    # observed 8/10; both annotators 5 A / 5 B, so chance 0.5; (0.8 - 0.5) / 0.5
    assert percent_agreement(a, b) == 0.8
    assert cohen_kappa(a, b) == pytest.approx(0.6)


def test_cohen_kappa_three_classes_and_the_confusion_matrix():
    labels = ["LCA", "RCA", "neither"]
    matrix = [[25, 2, 3], [4, 20, 1], [1, 2, 42]]
    a, b = from_matrix(matrix, labels)
    np.testing.assert_array_equal(confusion_matrix(a, b, labels), matrix)
    # po = 87/100; pe = (30*30 + 25*24 + 45*46) / 100^2 = 0.357; kappa = 0.513 / 0.643
    assert cohen_kappa(a, b, labels) == pytest.approx(0.513 / 0.643)


def test_weighted_kappa_for_ordinal_scores_by_hand():
    a, b = [0, 1, 2], [0, 2, 2]
    assert cohen_kappa(a, b, labels=[0, 1, 2]) == pytest.approx(0.5)
    assert cohen_kappa(a, b, labels=[0, 1, 2], weights="linear") == pytest.approx(2 / 3)
    assert cohen_kappa(a, b, labels=[0, 1, 2], weights="quadratic") == pytest.approx(0.8)
    with pytest.raises(ValueError, match="weights must be"):
        cohen_kappa(a, b, labels=[0, 1, 2], weights="cubic")


def test_kappa_edge_cases_one_class_and_perfect_agreement():
    assert cohen_kappa(["A"] * 4, ["A"] * 4) == 1.0  # nothing to disagree about
    assert cohen_kappa(["A"] * 3, ["B"] * 3, labels=["A", "B"]) == 0.0
    assert cohen_kappa(["A", "B", "C"], ["A", "B", "C"]) == 1.0
    assert cohen_kappa([True, False, True, False], [False, True, False, True]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="different numbers"):
        cohen_kappa(["A"], ["A", "B"])
    with pytest.raises(ValueError, match="no items"):
        cohen_kappa([], [])
    with pytest.raises(ValueError, match="outside the categories"):
        cohen_kappa(["A", "X"], ["A", "A"], labels=["A", "B"])


def test_fleiss_kappa_on_the_published_example():
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    # Fleiss (1971) as worked on Wikipedia: P-bar 0.378, P-e 0.213, kappa 0.210.
    assert fleiss_kappa(counts) == pytest.approx(0.20993, abs=1e-4)


def test_fleiss_kappa_with_varying_annotators_by_hand():
    # P_i = 1, 0, 1 -> 2/3; shares 3/7 and 4/7 -> P_e = 25/49; kappa = (2/3 - 25/49) / (24/49) = 23/72
    assert fleiss_kappa([[2, 0], [1, 1], [0, 3], [1, 0]]) == pytest.approx(23 / 72)  # the 1-rater item is left out
    assert fleiss_kappa([[3, 0], [2, 0]]) == 1.0
    with pytest.raises(ValueError, match="two or more"):
        fleiss_kappa([[1, 0], [0, 1]])


def test_two_annotators_fleiss_equals_its_own_formula_not_cohen():
    a = ["A", "A", "B", "B"]
    b = ["A", "B", "B", "B"]
    counts = [[2, 0], [1, 1], [0, 2], [0, 2]]
    # P-bar = 3/4; shares 3/8, 5/8 -> P_e = 34/64; (0.75 - 34/64) / (30/64) = 14/30
    assert fleiss_kappa(counts) == pytest.approx(14 / 30)
    assert cohen_kappa(a, b) == pytest.approx(0.5)


def test_icc_on_shrout_and_fleiss_example():
    ratings = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    assert icc(ratings) == pytest.approx(0.29, abs=0.005)


def test_icc_edge_cases():
    assert icc([[1, 1], [2, 2], [3, 3]]) == pytest.approx(1.0)
    assert math.isnan(icc([[2, 2], [2, 2]]))  # no variance at all: undefined
    with pytest.raises(ValueError, match="items >= 2"):
        icc([[1, 2]])
    with pytest.raises(ValueError, match="finite"):
        icc([[1, float("nan")], [2, 3]])
