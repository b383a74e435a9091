"""Calcium arc, area and thickness of OCT masks against values worked out by hand."""

import math

import numpy as np
import pytest

from learning.oct_measure import calcium_bins, calcium_measurements, default_centre

SIZE = 201  # odd, so the default centre (100, 100) is a pixel centre and axis pixels have whole radii
C = 100


def grid() -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets of every pixel from the default centre."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    return rows - C, cols - C


def annulus(r1: float, r2: float) -> np.ndarray:
    dy, dx = grid()
    r = np.sqrt(dy * dy + dx * dx)
    return (r >= r1) & (r <= r2)


def test_default_centre_is_the_middle_of_the_frame():
    assert default_centre((101, 101)) == (50.0, 50.0)
    assert default_centre((4, 6)) == (1.5, 2.5)


def test_empty_mask_measures_zero():
    m = calcium_measurements(np.zeros((SIZE, SIZE), bool), pixel_spacing_mm=(0.01, 0.01))
    assert (m.arc_degrees, m.area_px, m.max_thickness_px) == (0, 0, 0.0)
    assert m.area_mm2 == 0.0 and m.max_thickness_mm == 0.0


def test_single_pixel_is_one_degree_one_pixel_and_one_pixel_thick():
    mask = np.zeros((SIZE, SIZE), bool)
    mask[C, C + 3] = True  # straight along +columns: angle 0°, bin 0
    m = calcium_measurements(mask)
    assert (m.arc_degrees, m.area_px, m.max_thickness_px) == (1, 1, 1.0)
    assert m.area_mm2 is None and m.max_thickness_mm is None
    counts, _, _ = calcium_bins(mask)
    assert counts[0] == 1


@pytest.mark.parametrize(
    ("offset", "expected_bin"),
    [
        ((0, 3), 0),  # +columns: 0°
        ((3, 0), 90),  # +rows (down the screen): 90°
        ((0, -3), 180),  # -columns: atan2(+0, -3) = 180°
        ((-3, 0), 270),  # -rows: -90° wraps to 270°
        ((2, 2), 45),  # the diagonal is 45° exactly; the nudge keeps it in bin 45, not 44
        ((-1, 1), 315),  # -45° wraps to 315°
    ],
)
def test_pixel_angles_fall_in_the_hand_computed_bin(offset, expected_bin):
    mask = np.zeros((SIZE, SIZE), bool)
    mask[C + offset[0], C + offset[1]] = True
    counts, _, _ = calcium_bins(mask)
    assert np.flatnonzero(counts).tolist() == [expected_bin]


def test_radial_line_is_one_degree_and_as_thick_as_it_is_long():
    mask = np.zeros((SIZE, SIZE), bool)
    mask[C, C + 10 : C + 20] = True  # radii 10…19, all at 0°: thickness 19 - 10 + 1 = 10
    m = calcium_measurements(mask)
    assert (m.arc_degrees, m.area_px, m.max_thickness_px) == (1, 10, 10.0)


def test_diagonal_line_thickness_uses_euclidean_radius():
    mask = np.zeros((SIZE, SIZE), bool)
    for k in range(1, 6):
        mask[C + k, C + k] = True  # radii k·√2 for k = 1…5, all at 45°
    m = calcium_measurements(mask)
    assert m.arc_degrees == 1
    assert m.max_thickness_px == pytest.approx(4 * math.sqrt(2) + 1)


def test_full_ring_covers_360_degrees():
    # Between radii 60 and 90 every one-degree sector holds about ½·(90² − 60²)·π/180 ≈ 39 pixels, and the
    # ring reaches past 57.3 px (= 1/tan 1°), so even the bins just short of the axes and diagonals, e.g.
    # [89°, 90°) which needs a pixel one column off the axis and ≥ 57.3 rows down, hold calcium.
    # Radii never leave [60, 90], and bin 0 holds the axis pixels at radii exactly 60 and 90: 31 thick.
    mask = annulus(60, 90)
    m = calcium_measurements(mask)
    assert m.arc_degrees == 360
    assert m.max_thickness_px == 31.0
    assert m.area_px == int(mask.sum())
    assert m.area_px == pytest.approx(math.pi * (90**2 - 60**2), rel=0.02)


def test_thin_ring_near_the_centre_misses_bins_next_to_axes_and_diagonals():
    # The documented resolution limit: pixels count as points, so bin [89°, 90°) needs a pixel at column
    # offset 1 and row offset ≥ 57.3, beyond radius 40; likewise the bin just short of each diagonal needs
    # (k, k − 1)-like pixels with 28.6/k < 1°, i.e. radius > 40.5. Four axes + four diagonals: 8 bins empty.
    counts, _, _ = calcium_bins(annulus(30, 40))
    assert np.flatnonzero(counts == 0).tolist() == [44, 89, 134, 179, 224, 269, 314, 359]


def test_quarter_annulus_is_90_degrees():
    # dy ≥ 0 and dx > 0 gives angles in [0°, 90°): bins 0…89, each holding ≈ ½·(90² − 30²)·π/180 ≈ 63 pixels.
    # Area ≈ π(90² − 30²)/4 ≈ 5655 pixels; thickness 90 − 30 + 1 = 61 from the axis pixels in bin 0.
    r1, r2 = 30, 90
    dy, dx = grid()
    mask = annulus(r1, r2) & (dy >= 0) & (dx > 0)
    m = calcium_measurements(mask)
    assert m.arc_degrees == 90
    counts, _, _ = calcium_bins(mask)
    assert np.flatnonzero(counts).tolist() == list(range(90))
    assert m.max_thickness_px == r2 - r1 + 1
    assert m.area_px == pytest.approx(math.pi * (r2**2 - r1**2) / 4, rel=0.02)


def test_two_deposits_add_their_arcs():
    dy, dx = grid()
    ring = annulus(30, 90)
    upper_right = ring & (dy < 0) & (dx > 0)  # (-90°, 0°): bins 270…359
    lower_left = ring & (dy > 0) & (dx < 0)  # (90°, 180°): bins 90…179
    assert calcium_measurements(upper_right | lower_left).arc_degrees == 180


def test_explicit_centre():
    mask = np.zeros((10, 10), bool)
    mask[3, 3] = mask[6, 6] = True  # from (0, 0) both at 45°, radii 3√2 and 6√2
    m = calcium_measurements(mask, centre=(0, 0))
    assert m.arc_degrees == 1
    assert m.max_thickness_px == pytest.approx(3 * math.sqrt(2) + 1)


def test_pixel_spacing_gives_millimetres():
    mask = np.zeros((SIZE, SIZE), bool)
    mask[C, C + 10 : C + 20] = True  # 10 pixels, 10 pixels thick
    m = calcium_measurements(mask, pixel_spacing_mm=(0.01, 0.01))
    assert m.area_mm2 == pytest.approx(10 * 0.01 * 0.01)
    assert m.max_thickness_mm == pytest.approx(0.1)
    uneven = calcium_measurements(mask, pixel_spacing_mm=(0.02, 0.01))
    assert uneven.area_mm2 == pytest.approx(10 * 0.02 * 0.01)
    assert uneven.max_thickness_mm == pytest.approx(10 * 0.015)


def test_non_2d_mask_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        calcium_measurements(np.zeros(5, bool))
