"""Mask run-length encoding is lossless and refuses malformed input with a reason."""

import numpy as np
import pytest

from learning.masks import MaskFormatError, mask_decode, mask_encode


@pytest.mark.parametrize("seed", range(5))
def test_random_masks_round_trip(seed):
    mask = np.random.default_rng(seed).random((37, 53)) > 0.6
    np.testing.assert_array_equal(mask_decode(mask_encode(mask)), mask)


def test_hand_computed_runs():
    mask = np.array([[1, 1, 0], [0, 0, 1]], dtype=bool)
    assert mask_encode(mask)["counts"] == [0, 2, 3, 1]
    assert mask_encode(np.zeros((2, 2), bool))["counts"] == [4]
    assert mask_encode(np.ones((1, 3), bool))["counts"] == [0, 3]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"encoding": "png", "shape": [2, 2], "counts": [4]}, "encoding"),
        ({"encoding": "rle-rowmajor-v1", "shape": [2], "counts": [4]}, "shape"),
        ({"encoding": "rle-rowmajor-v1", "shape": [2, 2], "counts": [3]}, "add up to 3"),
        ({"encoding": "rle-rowmajor-v1", "shape": [2, 2], "counts": [-1, 5]}, "non-negative"),
        ([1, 2], "object"),
    ],
)
def test_malformed_masks_are_refused(data, words):
    with pytest.raises(MaskFormatError, match=words):
        mask_decode(data)
