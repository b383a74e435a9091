"""C-arm views of XA runs: the per-vessel view mixtures, drawing a view, projecting onto the detector.

Angles follow the DICOM positioner attributes: primary LAO positive / RAO negative, secondary
cranial positive / caudal negative, in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .xa_anatomy import NEITHER, NEITHER_VIEW_LCA, RUN_VESSELS

# A mixture component: (weight, primary angle, secondary angle).
_Component = tuple[float, float, float]

# Standard views. The distributions overlap on purpose: a metadata-only classifier should
# reach F1 ~0.8-0.9.
_VIEW_MIXTURE: dict[str, tuple[_Component, ...]] = {
    "LCA": (
        (0.26, -25.0, -25.0),  # RAO caudal: LCX and OMs
        (0.20, -15.0, 30.0),  # RAO cranial: LAD and diagonals
        (0.18, 40.0, 25.0),  # LAO cranial: LAD/diagonal split
        (0.14, 45.0, -28.0),  # LAO caudal "spider": left main bifurcation
        (0.12, 0.0, 35.0),  # AP cranial
        (0.10, 0.0, -30.0),  # AP caudal
    ),
    "RCA": (
        (0.42, 35.0, 0.0),  # LAO straight: the classic "C"
        (0.24, -30.0, 0.0),  # RAO straight
        (0.18, 25.0, 20.0),  # LAO cranial: crux and PDA
        (0.16, 0.0, 22.0),  # AP cranial
    ),
}
_VIEW_SPREAD_DEG = 8.0

# Less usual views: each vessel is also filmed in projections typical of the other one (the LCA
# straight LAO/RAO, the RCA caudal), plus lateral views for both, so the angle ranges overlap
# much more. An angles-only classifier falls from AUC ~0.93 to ~0.65-0.7.
_ATYPICAL_MIXTURE: dict[str, tuple[_Component, ...]] = {
    "LCA": (
        (0.17, -25.0, -25.0),  # RAO caudal
        (0.13, -15.0, 30.0),  # RAO cranial
        (0.12, 40.0, 25.0),  # LAO cranial
        (0.10, 45.0, -28.0),  # LAO caudal "spider"
        (0.06, 0.0, 35.0),  # AP cranial
        (0.12, 35.0, 0.0),  # LAO straight: left main ostium, proximal LCX
        (0.10, -35.0, 0.0),  # RAO straight: mid LAD
        (0.08, 80.0, 0.0),  # left lateral: LAD in profile
        (0.07, -40.0, 15.0),  # steep RAO, shallow cranial
        (0.05, 20.0, -15.0),  # shallow LAO caudal
    ),
    "RCA": (
        (0.22, 35.0, 0.0),  # LAO straight
        (0.14, -30.0, 0.0),  # RAO straight
        (0.12, 25.0, 20.0),  # LAO cranial
        (0.08, 0.0, 22.0),  # AP cranial
        (0.11, -20.0, -22.0),  # RAO caudal: PDA along the inferior wall
        (0.09, 40.0, -22.0),  # LAO caudal: ostium and proximal RCA
        (0.08, 80.0, 0.0),  # left lateral: mid RCA in profile
        (0.09, -10.0, 30.0),  # RAO cranial: crux, PDA and PLV
        (0.07, 0.0, -25.0),  # AP caudal
    ),
}


def _pooled(mixture: dict[str, tuple[_Component, ...]]) -> dict[str, tuple[_Component, ...]]:
    """Return a mixture in which every vessel draws from the even blend of all vessels' views."""
    blend = tuple((0.5 * w / sum(c[0] for c in comps), a, b) for comps in mixture.values() for w, a, b in comps)
    return dict.fromkeys(mixture, blend)


@dataclass(frozen=True)
class _ViewMix:
    components: dict[str, tuple[_Component, ...]]
    spread_deg: float


# "standard" is today's mixture (what sample_view draws by default); "atypical" shifts it towards
# unusual projections; "pooled" films both vessels alike, so the angles say nothing about the vessel.
_VIEW_MIXES = {
    "standard": _ViewMix(_VIEW_MIXTURE, _VIEW_SPREAD_DEG),
    "atypical": _ViewMix(_ATYPICAL_MIXTURE, 10.0),
    "pooled": _ViewMix(_pooled(_VIEW_MIXTURE), _VIEW_SPREAD_DEG),
}
VIEW_MIXES = tuple(_VIEW_MIXES)
PRIMARY_RANGE = (-60.0, 90.0)
SECONDARY_RANGE = (-45.0, 45.0)


@dataclass(frozen=True)
class XaView:
    """C-arm geometry of one run, as recorded in the DICOM positioner attributes."""

    primary_angle: float  # LAO positive, RAO negative (degrees)
    secondary_angle: float  # cranial positive, caudal negative (degrees)
    source_to_detector_mm: float
    source_to_patient_mm: float


def check_view_mix(view_mix: object) -> str:
    """Return view_mix if it names a view mixture; raise ValueError otherwise."""
    if not isinstance(view_mix, str) or view_mix not in _VIEW_MIXES:
        raise ValueError(f"view_mix must be one of {', '.join(VIEW_MIXES)}; got {view_mix!r}")
    return view_mix


def _detector_distance(rng: np.random.Generator, primary: float, secondary: float) -> float:
    """Draw the source-to-detector distance: steep angulation needs the detector further out."""
    return float(np.clip(rng.normal(980 + 3.0 * abs(secondary) + 1.0 * abs(primary), 45), 880, 1200))


def sample_view(vessel: str, rng: np.random.Generator, mix: str = "standard") -> XaView:
    """Draw a C-arm view for a run of vessel ("LCA", "RCA" or "neither": a coronary view of either).

    mix picks the view mixture (one of VIEW_MIXES); "standard" draws exactly as before the knob.
    """
    view_mix = _VIEW_MIXES[check_view_mix(mix)]
    if vessel == NEITHER:
        vessel = "LCA" if rng.random() < NEITHER_VIEW_LCA else "RCA"
    if vessel not in view_mix.components:
        raise ValueError(f"unknown vessel {vessel!r}; expected one of {RUN_VESSELS}")
    comps = view_mix.components[vessel]
    weights = np.array([c[0] for c in comps])
    k = int(rng.choice(len(comps), p=weights / weights.sum()))
    primary = float(np.clip(rng.normal(comps[k][1], view_mix.spread_deg), *PRIMARY_RANGE))
    secondary = float(np.clip(rng.normal(comps[k][2], view_mix.spread_deg), *SECONDARY_RANGE))
    sid = _detector_distance(rng, primary, secondary)
    sod = float(np.clip(rng.normal(750, 25), 680, 820))
    return XaView(round(primary, 1), round(secondary, 1), round(sid, 1), round(sod, 1))


def jitter_view(view: XaView, rng: np.random.Generator, jitter_deg: float) -> XaView:
    """Return view with both angles moved by N(0, jitter_deg), clipped as drawn; the detector follows."""
    if jitter_deg <= 0:
        return view
    primary = float(np.clip(view.primary_angle + rng.normal(0.0, jitter_deg), *PRIMARY_RANGE))
    secondary = float(np.clip(view.secondary_angle + rng.normal(0.0, jitter_deg), *SECONDARY_RANGE))
    # Keep the view's own detector scatter, moved by what the steeper or shallower angles need.
    steeper = 3.0 * (abs(secondary) - abs(view.secondary_angle)) + abs(primary) - abs(view.primary_angle)
    sid = float(np.clip(view.source_to_detector_mm + steeper, 880, 1200))
    return XaView(round(primary, 1), round(secondary, 1), round(sid, 1), view.source_to_patient_mm)


def view_axes(view: XaView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (d, u, v): patient-to-detector direction, image right and image down."""
    a = np.deg2rad(view.primary_angle)
    b = np.deg2rad(view.secondary_angle)
    d = np.array([np.sin(a) * np.cos(b), -np.cos(a) * np.cos(b), np.sin(b)])
    u = np.cross([0.0, 0.0, 1.0], d)
    u /= np.linalg.norm(u)
    v = np.cross(u, d)
    return d, u, v


def project(points: np.ndarray, view: XaView, pixel_mm: float, centre_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (row/col pixel positions, magnification) of 3D points on the detector."""
    d, u, v = view_axes(view)
    mag = view.source_to_detector_mm / (view.source_to_patient_mm + points @ d)
    rows = centre_px[0] + (points @ v) * mag / pixel_mm
    cols = centre_px[1] + (points @ u) * mag / pixel_mm
    return np.stack([rows, cols], axis=1), mag


def view_name(view: XaView) -> str:
    """Return a series description such as 'CORONARY RAO 25 CAU 20' (no vessel: DICOM has none)."""
    side = "LAO" if view.primary_angle >= 0 else "RAO"
    tilt = "CRA" if view.secondary_angle >= 0 else "CAU"
    return f"CORONARY {side} {abs(view.primary_angle):.0f} {tilt} {abs(view.secondary_angle):.0f}"
