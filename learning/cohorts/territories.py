"""AHA 17-segment model as the generator draws it: the bull's-eye (polar map) layout and the territory truth.

The segment and territory tables themselves live in `learning.domain`.
"""

from __future__ import annotations

import numpy as np

from learning.domain import ABNORMAL_SUMMED_SCORE, SEGMENT_COUNT, TERRITORY_SEGMENTS

# Bull's-eye ring boundaries as fractions of the map radius: apex, apical, mid, basal.
RING_EDGES = (0.0, 0.22, 0.48, 0.74, 1.0)


def territory_abnormal(stress_scores: tuple[int, ...]) -> dict[str, bool]:
    """Return per-territory abnormality: summed stress score over its segments >= 4."""
    if len(stress_scores) != SEGMENT_COUNT:
        raise ValueError(f"expected {SEGMENT_COUNT} segment scores")
    return {
        name: sum(stress_scores[s - 1] for s in segs) >= ABNORMAL_SUMMED_SCORE
        for name, segs in TERRITORY_SEGMENTS.items()
    }


def segment_of(radius: np.ndarray, angle_deg: np.ndarray) -> np.ndarray:
    """Return AHA segment numbers (0 outside the map) for polar-map coordinates.

    radius is a fraction of the map radius; angle_deg is counter-clockwise from 3 o'clock
    as seen on screen, so anterior (segment 1) is at the top, septum on the left.
    """
    angle = np.mod(angle_deg, 360.0)
    # Six 60-degree sectors counter-clockwise from the top: 1 anterior, 2 anteroseptal,
    # 3 inferoseptal, 4 inferior, 5 inferolateral, 6 anterolateral.
    sector6 = (np.floor(np.mod(angle - 60.0, 360.0) / 60.0).astype(int)) % 6
    # Four 90-degree apical sectors: 13 anterior, 14 septal, 15 inferior, 16 lateral.
    sector4 = (np.floor(np.mod(angle - 45.0, 360.0) / 90.0).astype(int)) % 4
    seg = np.zeros(np.shape(radius), dtype=int)
    seg = np.where(radius < RING_EDGES[1], 17, seg)
    seg = np.where((radius >= RING_EDGES[1]) & (radius < RING_EDGES[2]), 13 + sector4, seg)
    seg = np.where((radius >= RING_EDGES[2]) & (radius < RING_EDGES[3]), 7 + sector6, seg)
    seg = np.where((radius >= RING_EDGES[3]) & (radius <= RING_EDGES[4]), 1 + sector6, seg)
    return seg


def segment_map(size: int, margin: float = 0.03) -> np.ndarray:
    """Return a size x size array of AHA segment numbers of a centred bull's-eye (0 outside)."""
    c = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    radius = np.hypot(rows - c, cols - c) / (size * (0.5 - margin))
    angle = np.degrees(np.arctan2(c - rows, cols - c))
    return segment_of(radius, angle)
