"""Synthetic intravascular OCT pullbacks with exact calcium masks (task: calcium segmentation).

Frames are cartesian, catheter at the image centre, field of view 10 mm across. Each frame
is composed in a display ("log-compressed") intensity domain and coloured with a sepia
lookup table the way commercial consoles show it. Calcium is a signal-poor region with
sharp borders inside the wall; lipid pools (diffuse borders, shadowing), side branches and
the guidewire shadow are dark too but are not calcium.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from .dicom_common import (
    FakePatient,
    FakeStudy,
    base_dataset,
    fake_patient,
    fake_study,
    save_dataset,
)
from .raster import smooth_noise

# Intravascular OCT Image Storage - For Presentation. (1.2.840.10008.5.1.4.1.1.77.1.5.1, which
# is sometimes quoted for it, is Ophthalmic Photography 8 Bit Image Storage.)
IVOCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.14.1"
FRAME_QUALITIES = ("ok", "blood", "guide")

_FOV_MM = 10.0
_FRAME_TIME_MS = 5.6  # 180 frames/s
_PULLBACK_MM_S = 36.0
_CATHETER_MM = 0.45
_GUIDE_MM = 0.95


@dataclass(frozen=True)
class OctPullbackTruth:
    """Ground truth of one written IVOCT pullback."""

    path: Path
    patient_id: str
    sop_instance_uid: str
    frames: int
    size: int
    masks: np.ndarray = field(repr=False)  # bool (frames, size, size), True = calcium
    frame_quality: tuple[str, ...] = ()  # per frame: "ok", "blood" or "guide"
    lumen_centres: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)
    study_uid: str = ""
    frame_time_ms: float = _FRAME_TIME_MS
    pixel_spacing_mm: float = 0.0


@dataclass(frozen=True)
class OctRender:
    """Rendered RGB frames with their truth."""

    frames: np.ndarray  # (frames, size, size, 3) uint8
    masks: np.ndarray  # (frames, size, size) bool
    frame_quality: tuple[str, ...]
    lumen_centres: np.ndarray  # (frames, 2) row, col in pixels
    pixel_mm: float


@dataclass(frozen=True)
class _Arc:
    """A structure spanning consecutive frames and an arc of the wall."""

    start: int
    stop: int  # exclusive
    centre: float  # radians, lumen-centred angle
    drift: float  # radians per frame
    max_span: float  # radians
    depth: float = 0.0  # mm from the lumen border to the structure's front
    thickness: float = 0.0  # mm
    seed: int = 0

    def span(self, k: int) -> float:
        """Return the arc span at frame k: grows from the run's ends to the middle."""
        x = (k - self.start + 0.5) / (self.stop - self.start)
        return self.max_span * (0.5 + 0.5 * np.sin(np.pi * x))

    def active(self, k: int) -> bool:
        """Return whether frame k is inside the run."""
        return self.start <= k < self.stop


def _sepia_lut() -> np.ndarray:
    """Return a 256x3 uint8 lookup table from black through amber to white."""
    x = np.linspace(0.0, 1.0, 256)
    knots = np.array([0.0, 0.22, 0.5, 0.78, 1.0])
    colours = np.array([[0, 0, 0], [110, 45, 10], [225, 140, 50], [255, 215, 140], [255, 252, 235]], float)
    return np.stack([np.interp(x, knots, colours[:, c]) for c in range(3)], 1).astype(np.uint8)


_LUT = _sepia_lut()


def _runs(
    rng: np.random.Generator, n: int, lo: int, hi: int, count: int, length: tuple[int, int]
) -> list[tuple[int, int]]:
    """Return up to count non-overlapping [start, stop) runs inside [lo, hi)."""
    taken = np.zeros(n, bool)
    out: list[tuple[int, int]] = []
    for _ in range(count * 4):
        if len(out) == count or hi - lo < length[0]:
            break
        ln = int(rng.integers(length[0], length[1] + 1))
        ln = min(ln, hi - lo)
        start = int(rng.integers(lo, hi - ln + 1))
        if taken[max(start - 1, 0) : start + ln + 1].any():
            continue
        taken[start : start + ln] = True
        out.append((start, start + ln))
    return sorted(out)


def _angle_diff(a: np.ndarray, b: float) -> np.ndarray:
    """Return a - b wrapped to (-pi, pi]."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


@dataclass(frozen=True)
class _Plan:
    """Everything about a pullback that varies slowly along it (drawn once, up front)."""

    quality: tuple[str, ...]
    centres_mm: np.ndarray  # (frames, 2) lumen centre offset from the catheter, row/col
    radius_mm: np.ndarray  # (frames,) mean lumen radius
    harm_amp: np.ndarray  # (5,) lumen shape harmonics 2..6
    harm_phase: np.ndarray  # (frames, 5)
    intima_mm: float
    plaque_angle: float
    plaque_mm: float
    calcium: tuple[_Arc, ...]
    lipid: tuple[_Arc, ...]
    branches: tuple[_Arc, ...]
    guidewire_angle: np.ndarray  # (frames,) catheter-centred angle
    guidewire_mm: float


def _plan_pullback(rng: np.random.Generator, frames: int) -> _Plan:
    """Draw frame quality, lumen geometry and plaque runs for a pullback."""
    # The pullback starts inside the guide catheter; blood runs come later.
    n_guide = int(np.clip(round(frames * rng.uniform(0.04, 0.1)), 2, 40))
    quality = ["guide"] * n_guide + ["ok"] * (frames - n_guide)
    n_blood = int(rng.integers(1, 2 + min(2, frames // 40)))
    for s, e in _runs(rng, frames, n_guide + 1, frames, n_blood, (2, max(2, int(frames * 0.06)))):
        quality[s:e] = ["blood"] * (e - s)

    walk = np.cumsum(rng.normal(0, 1, (frames, 2)), axis=0)
    kernel = np.ones(9) / 9
    walk = np.stack([np.convolve(np.pad(w, 20, mode="edge"), kernel, mode="same")[20:-20] for w in walk.T], 1)
    walk -= walk.mean(axis=0)
    # Short pullbacks drift less: the full wander needs 60+ frames (12 mm).
    walk *= min(1.0, frames / 60) / max(float(np.abs(walk).max()), 1e-6)
    base = rng.uniform(1.3, 1.8)
    stenosis_at, width = rng.uniform(0.3, 0.8) * frames, max(frames / 6.0, 3.0)
    steps = np.arange(frames)
    radius = base * (1 - rng.uniform(0.1, 0.35) * np.exp(-0.5 * ((steps - stenosis_at) / width) ** 2))
    harm_amp = rng.uniform(0.01, 0.05, 5) * base / np.arange(1, 6) ** 0.7
    harm_phase = rng.uniform(0, 2 * np.pi, 5)[None, :] + 0.02 * np.cumsum(rng.normal(0, 1, (frames, 5)), 0)
    # The catheter lies off-centre in the lumen but always inside it.
    centres = walk * np.clip(radius[:, None] - harm_amp.sum() - 0.7, 0.05, None)

    # One run may be very wide (up to 270 degrees); the others stay under 180.
    widest_calcium = rng.uniform(np.deg2rad(60), np.deg2rad(270))
    calcium = tuple(
        _Arc(
            start=s,
            stop=e,
            centre=rng.uniform(-np.pi, np.pi),
            drift=rng.normal(0, 0.02),
            max_span=rng.uniform(np.deg2rad(45), widest_calcium if i == 0 else np.deg2rad(180)),
            depth=rng.uniform(0.05, 0.35),
            thickness=rng.uniform(0.35, 0.9),
            seed=int(rng.integers(1 << 30)),
        )
        for i, (s, e) in enumerate(
            _runs(rng, frames, n_guide, frames, int(rng.integers(1, 4)), (max(3, frames // 12), max(4, frames // 4)))
        )
    )
    lipid = tuple(
        _Arc(s, e, rng.uniform(-np.pi, np.pi), rng.normal(0, 0.02), rng.uniform(1.0, 3.0), rng.uniform(0.06, 0.18))
        for s, e in _runs(
            rng, frames, n_guide, frames, int(rng.integers(0, 3)), (max(3, frames // 10), max(4, frames // 4))
        )
    )
    branches = tuple(
        _Arc(s, e, rng.uniform(-np.pi, np.pi), 0.0, rng.uniform(0.5, 1.1))
        for s, e in _runs(rng, frames, n_guide, frames, int(rng.integers(0, 3)), (2, max(3, frames // 15)))
    )
    return _Plan(
        quality=tuple(quality),
        centres_mm=centres,
        radius_mm=radius,
        harm_amp=harm_amp,
        harm_phase=harm_phase,
        intima_mm=rng.uniform(0.08, 0.18),
        plaque_angle=rng.uniform(-np.pi, np.pi),
        plaque_mm=rng.uniform(0.1, 0.6),
        calcium=calcium,
        lipid=lipid,
        branches=branches,
        guidewire_angle=rng.uniform(-np.pi, np.pi) + np.cumsum(rng.normal(0, 0.02, frames)),
        guidewire_mm=rng.uniform(0.6, 0.9),
    )


class _Grid:
    """Per-pixel catheter-centred coordinates of a square frame (computed once)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.px = _FOV_MM / size
        self.c0 = (size - 1) / 2.0
        self.yy, self.xx = np.mgrid[0:size, 0:size].astype(np.float32)
        self.r = np.hypot(self.yy - self.c0, self.xx - self.c0) * self.px
        self.theta = np.arctan2(self.yy - self.c0, self.xx - self.c0)
        self.fov = self.r < _FOV_MM / 2 - 0.05


_HARMONICS = np.arange(2, 7)
_SHAPE_ANGLES = np.linspace(-np.pi, np.pi, 1025)


def _wall_signal(plan: _Plan, k: int, phi: np.ndarray, depth: np.ndarray, tex: np.ndarray) -> np.ndarray:
    """Return the layered wall signal with lipid pools (no calcium yet) for frame k."""
    # Bright intima, dark media, brighter adventitia, decaying with depth; eccentric
    # intimal thickening pushes the media band outwards on one side.
    intima = plan.intima_mm + plan.plaque_mm * 0.5 * (1 + np.cos(phi - plan.plaque_angle))
    layers = (
        0.85 * np.exp(-depth / 0.9)
        + 0.12
        - 0.45 * np.exp(-0.5 * ((depth - intima - 0.07) / 0.05) ** 2)
        + 0.15 * np.exp(-0.5 * ((depth - intima - 0.3) / 0.12) ** 2)
    )
    signal = (depth > 0) * np.clip(layers * (1.0 + 0.18 * tex), 0, 1.2)
    for lp in (a for a in plan.lipid if a.active(k)):
        ang = np.abs(_angle_diff(phi, lp.centre + lp.drift * (k - lp.start)))
        inside = np.clip((lp.span(k) / 2 - ang) / 0.35 + 0.5, 0, 1)  # diffuse edges
        # A bright fibrous cap, then the signal dies fast: lipid shadows what lies behind.
        fall = np.exp(-np.clip(depth - lp.depth, 0, None) / 0.12)
        signal = signal * (1 - inside * (1 - fall))
    return signal


def _calcium_mask(plan: _Plan, k: int, phi: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Return the exact calcium mask of frame k: arcs with sharp borders inside the wall."""
    calc = np.zeros(phi.shape, bool)
    for ca in (a for a in plan.calcium if a.active(k)):
        ang = _angle_diff(phi, ca.centre + ca.drift * (k - ca.start)) / (ca.span(k) / 2)
        along = np.clip(np.abs(ang), 0, 1)
        front = ca.depth + 0.08 * np.sin(3 * ang + ca.seed % 7)
        thick = ca.thickness * np.sqrt(np.clip(1 - along**4, 0, 1)) * (1 + 0.2 * np.cos(2 * ang))
        calc |= (np.abs(ang) < 1) & (depth > front) & (depth < front + thick)
    return calc & (depth > 0)


def _render_frame(
    rng: np.random.Generator, plan: _Plan, k: int, grid: _Grid, texture: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return (display intensity in [0, 1], calcium mask) of frame k."""
    centre = grid.c0 + plan.centres_mm[k] / grid.px
    dy = (grid.yy - centre[0]) * grid.px
    dx = (grid.xx - centre[1]) * grid.px
    rho, phi = np.hypot(dy, dx), np.arctan2(dy, dx)
    shape = plan.radius_mm[k] + (plan.harm_amp * np.cos(_HARMONICS * _SHAPE_ANGLES[:, None] + plan.harm_phase[k])).sum(
        1
    )
    border = shape[np.rint((phi + np.pi) / (2 * np.pi) * 1024).astype(np.int32)]
    for br in (b for b in plan.branches if b.active(k)):
        # A side branch opens the lumen outwards over its arc.
        w = np.clip(1.0 - np.abs(_angle_diff(phi, br.centre)) / (br.span(k) / 2), 0, 1)
        border = border + 1.6 * np.sqrt(w)
    depth = rho - border
    # Texture drifts between frames so neighbouring frames correlate but differ.
    tex = np.roll(texture, (k % grid.size, (3 * k) % grid.size), axis=(0, 1))
    signal = _wall_signal(plan, k, phi, depth, tex)
    calc = _calcium_mask(plan, k, phi, depth) & grid.fov
    calc_tex = np.roll(texture, (grid.size // 2 + 7 * k, grid.size // 3), axis=(0, 1))
    signal = np.where(calc, 0.2 + 0.08 * calc_tex + 0.04 * tex, signal)
    # Light fades with distance from the catheter (beam divergence, roll-off).
    signal *= np.exp(-np.clip(grid.r - 1.0, 0, None) / 3.5)
    if plan.quality[k] == "blood":
        # Blood scatters strongly: bright speckle in the lumen, everything behind veiled.
        fog = rng.uniform(0.6, 1.0)
        in_lumen = (depth <= 0) & (grid.r > _CATHETER_MM)
        veil = np.exp(-np.clip(grid.r - _CATHETER_MM, 0, None) / (0.4 + 0.6 * (1 - fog)))
        signal = signal * (1 - fog + fog * veil) + in_lumen * 0.9 * fog * (0.3 + veil)
    gw_angle, gw_mm = plan.guidewire_angle[k], plan.guidewire_mm
    shadow = (np.abs(_angle_diff(grid.theta, gw_angle)) < 0.09 + 0.02 * np.sin(k)) & (grid.r > gw_mm)
    signal = np.where(shadow, signal * 0.04, signal)
    gw_y = grid.c0 + gw_mm * np.sin(gw_angle) / grid.px
    gw_x = grid.c0 + gw_mm * np.cos(gw_angle) / grid.px
    signal += 1.1 * np.exp(-(((grid.yy - gw_y) ** 2 + (grid.xx - gw_x) ** 2) * grid.px**2) / (2 * 0.05**2))
    if plan.quality[k] == "guide":
        # Inside the guide catheter: its wall is a bright ring that hides the vessel.
        signal = signal * 0.25 + 0.9 * np.exp(-0.5 * ((rho - _GUIDE_MM) / 0.05) ** 2)
        signal += 0.35 * np.exp(-0.5 * ((rho - _GUIDE_MM - 0.18) / 0.08) ** 2)
        calc[:] = False
    # Imaging catheter: dark core, bright sheath and lens reflection.
    signal = np.where(grid.r < _CATHETER_MM, 0.05, signal)
    signal += 0.9 * np.exp(-0.5 * ((grid.r - _CATHETER_MM) / 0.02) ** 2)
    signal += 0.7 * np.exp(-0.5 * ((grid.r - 0.15) / 0.02) ** 2)
    speckle = np.minimum(rng.exponential(1.0, signal.shape), 3.0).astype(np.float32)
    image = 1.25 * signal * (0.45 + 0.55 * speckle) + 0.03 * rng.random(signal.shape)
    return np.where(grid.fov, np.clip(image, 0, 1), 0.0), calc


def render_oct_pullback(*, rng: np.random.Generator, frames: int = 60, size: int = 400) -> OctRender:
    """Render an IVOCT pullback with calcium, lipid, side branches, blood and guide frames."""
    plan = _plan_pullback(rng, frames)
    grid = _Grid(size)
    texture = smooth_noise(rng, (size, size), 3.0)
    out = np.zeros((frames, size, size, 3), np.uint8)
    masks = np.zeros((frames, size, size), bool)
    for k in range(frames):
        image, masks[k] = _render_frame(rng, plan, k, grid, texture)
        out[k] = _LUT[(image * 255).astype(np.uint8)]
    centres_px = grid.c0 + plan.centres_mm / grid.px
    return OctRender(out, masks, plan.quality, centres_px, grid.px)


def write_oct_pullback(
    path: Path,
    *,
    rng: np.random.Generator,
    patient: FakePatient,
    frames: int = 60,
    size: int = 400,
    study: FakeStudy | None = None,
    series_number: int = 1,
) -> OctPullbackTruth:
    """Render a pullback and write it as an IVOCT For Presentation DICOM file; return truth."""
    study = study or fake_study(rng, patient, "ivoct")
    render = render_oct_pullback(rng=rng, frames=frames, size=size)
    ds = base_dataset(
        sop_class_uid=IVOCT_SOP_CLASS,
        rng=rng,
        namespace="ivoct",
        modality="IVOCT",
        patient=patient,
        study=study,
        series_number=series_number,
        series_description="OCT PULLBACK",
        manufacturer="LUMEN SYNTHETIC SYSTEMS",
        model_name="OCTSIM 54",
    )
    sop_uid = str(ds.SOPInstanceUID)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ContentQualification = "RESEARCH"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "00"
    ds.NumberOfFrames = frames
    ds.FrameTime = f"{_FRAME_TIME_MS:.1f}"
    ds.IVUSPullbackRate = f"{_PULLBACK_MM_S:.1f}"
    ds.CatheterRotationalRate = round(1000.0 / _FRAME_TIME_MS, 1)
    ds.OCTZOffsetApplied = "YES"
    ds.CatheterDirectionOfRotation = "CW"
    start = dt.datetime.strptime(study.study_date + study.study_time, "%Y%m%d%H%M%S")
    ds.AcquisitionDateTime = start.strftime("%Y%m%d%H%M%S.%f")
    ds.PixelSpacing = [f"{render.pixel_mm:.5f}", f"{render.pixel_mm:.5f}"]
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [f"{render.pixel_mm:.5f}", f"{render.pixel_mm:.5f}"]
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    mm_per_frame = _PULLBACK_MM_S * _FRAME_TIME_MS / 1000.0
    per_frame = []
    for k in range(frames):
        item = Dataset()
        content = Dataset()
        content.FrameAcquisitionNumber = k + 1
        stamp = start + dt.timedelta(milliseconds=k * _FRAME_TIME_MS)
        content.FrameAcquisitionDateTime = stamp.strftime("%Y%m%d%H%M%S.%f")
        content.FrameReferenceDateTime = content.FrameAcquisitionDateTime
        content.FrameAcquisitionDuration = _FRAME_TIME_MS
        item.FrameContentSequence = Sequence([content])
        ivus = Dataset()
        # Pullback runs distal to proximal; distance is from the distal start.
        ivus.IntravascularLongitudinalDistance = round(k * mm_per_frame, 3)
        item.IntravascularFrameContentSequence = Sequence([ivus])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = np.ascontiguousarray(render.frames).tobytes()
    save_dataset(ds, path)
    return OctPullbackTruth(
        path=path,
        patient_id=patient.patient_id,
        sop_instance_uid=sop_uid,
        frames=frames,
        size=size,
        masks=render.masks,
        frame_quality=render.frame_quality,
        lumen_centres=render.lumen_centres,
        study_uid=study.study_uid,
        frame_time_ms=_FRAME_TIME_MS,
        pixel_spacing_mm=render.pixel_mm,
    )


def generate_oct_cohort(
    out_dir: Path, *, n_pullbacks: int, frames: int = 60, size: int = 256, seed: int = 0
) -> list[OctPullbackTruth]:
    """Write n_pullbacks pullbacks (one patient each) under out_dir; return their truth."""
    rng = np.random.default_rng(seed)
    truths = []
    for i in range(n_pullbacks):
        patient = fake_patient(rng, i)
        study = fake_study(rng, patient, f"ivoct/{seed}")
        path = Path(out_dir) / f"pullback{i + 1:04d}.dcm"
        truths.append(write_oct_pullback(path, rng=rng, patient=patient, frames=frames, size=size, study=study))
    return truths
