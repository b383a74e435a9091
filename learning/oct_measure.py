"""Calcium measurements of one OCT frame's mask: arc, area and maximum thickness (mirrored in oct-measure.js).

The definitions are deliberately simple so that the browser (`frontend/static/frontend/lib/oct-measure.js`)
computes the same numbers from the same mask:

- Every calcium pixel is taken as the point at its centre. Seen from the lumen centre (cy, cx) it has the
  angle atan2(row - cy, col - cx) in degrees (0° points along +columns, 90° along +rows, i.e. clockwise on
  screen) and the radius sqrt((row - cy)² + (col - cx)²) in pixels.
- Angles fall into 360 one-degree bins, bin b holding [b°, b + 1°). A nudge of 1e-9° before flooring makes
  angles that are whole degrees in exact arithmetic (0°, 45°, 90°, …) land in the same bin in every
  language despite last-bit differences between atan2 implementations.
- The calcium arc is the number of bins holding at least one calcium pixel, in degrees. Bins need not be
  contiguous: two separate deposits add up. Because pixels count as points, a degree at radius r spans only
  r·π/180 pixels, so a calcium layer thinner than about 57/r pixels can leave a bin empty; calcium sits in
  the vessel wall, far enough from the catheter in real frames for this not to matter.
- The thickness of a bin is max radius − min radius + 1 (a single pixel is one pixel thick); the maximum
  thickness is the largest over the bins.
- Areas use the pixel spacing (row mm × column mm). Thickness in mm assumes square pixels, as OCT frames
  have; with unequal spacing the mean of the two is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS = 360
ANGLE_NUDGE_DEG = 1e-9


@dataclass(frozen=True)
class OctMeasurements:
    arc_degrees: int
    area_px: int
    area_mm2: float | None
    max_thickness_px: float
    max_thickness_mm: float | None


def default_centre(shape: tuple[int, ...]) -> tuple[float, float]:
    """Return the image centre (row, column), where the catheter sits in an OCT frame."""
    return (shape[0] - 1) / 2, (shape[1] - 1) / 2


def calcium_bins(
    mask: np.ndarray, centre: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per-degree-bin pixel counts, minimum radii and maximum radii (inf/-inf where empty)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    cy, cx = default_centre(mask.shape) if centre is None else centre
    rows, cols = np.nonzero(mask)
    dy = rows - float(cy)
    dx = cols - float(cx)
    degrees = np.arctan2(dy, dx) * (180.0 / np.pi)
    bins = np.floor(degrees + ANGLE_NUDGE_DEG).astype(np.int64) % BINS
    radii = np.sqrt(dy * dy + dx * dx)
    counts = np.bincount(bins, minlength=BINS)
    r_min = np.full(BINS, np.inf)
    r_max = np.full(BINS, -np.inf)
    np.minimum.at(r_min, bins, radii)
    np.maximum.at(r_max, bins, radii)
    return counts, r_min, r_max


def calcium_measurements(
    mask: np.ndarray,
    centre: tuple[float, float] | None = None,
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> OctMeasurements:
    """Measure the calcium arc (degrees), area and maximum radial thickness of a binary mask."""
    counts, r_min, r_max = calcium_bins(mask, centre)
    occupied = counts > 0
    area_px = int(counts.sum())
    thickness_px = float((r_max[occupied] - r_min[occupied] + 1).max()) if area_px else 0.0
    area_mm2 = thickness_mm = None
    if pixel_spacing_mm is not None:
        row_mm, col_mm = (float(v) for v in pixel_spacing_mm)
        area_mm2 = area_px * row_mm * col_mm
        thickness_mm = thickness_px * (row_mm + col_mm) / 2
    return OctMeasurements(
        arc_degrees=int(occupied.sum()),
        area_px=area_px,
        area_mm2=area_mm2,
        max_thickness_px=thickness_px,
        max_thickness_mm=thickness_mm,
    )
