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
    deterministic_uid,
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
    depth: float  # mm from the lumen border to the structure's front
    thickness: float  # mm
    seed: int

    def span(self, k: int) -> float:
        """Return the arc span at frame k: grows from the run's ends to the middle."""
        x = (k - self.start + 0.5) / (self.stop - self.start)
        return self.max_span * (0.3 + 0.7 * np.sin(np.pi * x))

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


def render_oct_pullback(*, rng: np.random.Generator, frames: int = 60, size: int = 400) -> OctRender:
    """Render an IVOCT pullback with calcium, lipid, side branches, blood and guide frames."""
    px = _FOV_MM / size
    c0 = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r_cath = np.hypot(yy - c0, xx - c0) * px
    th_cath = np.arctan2(yy - c0, xx - c0)
    fov = r_cath < _FOV_MM / 2 - 0.05

    # Frame quality: the pullback starts inside the guide catheter, blood runs come later.
    n_guide = int(np.clip(round(frames * rng.uniform(0.04, 0.1)), 2, 40))
    quality = ["ok"] * frames
    for k in range(n_guide):
        quality[k] = "guide"
    n_blood_runs = int(rng.integers(1, 2 + min(2, frames // 40)))
    blood_len = (2, max(2, int(frames * 0.06)))
    for s, e in _runs(rng, frames, n_guide + 1, frames, n_blood_runs, blood_len):
        for k in range(s, e):
            quality[k] = "blood"

    # Slowly varying lumen: centre offset, mean radius (with a stenosis), shape harmonics.
    steps = np.arange(frames)
    smooth = max(frames / 6.0, 3.0)
    walk = np.cumsum(rng.normal(0, 1, (frames, 2)), axis=0)
    walk = np.stack(
        [np.convolve(np.pad(walk[:, j], (20, 20), mode="edge"), np.ones(9) / 9, mode="same")[20:-20] for j in range(2)],
        1,
    )
    walk -= walk.mean(axis=0)
    # Short pullbacks drift less: the wander is ~0.35 mm over 60+ frames (12 mm).
    walk *= 0.35 * min(1.0, frames / 60) / max(float(np.abs(walk).max()), 1e-6)
    base_r = rng.uniform(1.3, 1.8)
    sten_at = rng.uniform(0.3, 0.8) * frames
    radius_mm = base_r * (1 - rng.uniform(0.1, 0.35) * np.exp(-0.5 * ((steps - sten_at) / smooth) ** 2))
    harm_amp = rng.uniform(0.01, 0.05, 5) * base_r / np.arange(1, 6) ** 0.7
    harm_phase = rng.uniform(0, 2 * np.pi, 5)[None, :] + 0.02 * np.cumsum(rng.normal(0, 1, (frames, 5)), 0)
    # The catheter lies off-centre in the lumen but always inside it.
    centres_mm = walk * np.clip(radius_mm[:, None] - harm_amp.sum() - 0.7, 0.05, None) / 0.35
    intima_base = rng.uniform(0.08, 0.18)
    plaque_angle = rng.uniform(-np.pi, np.pi)
    plaque_thick = rng.uniform(0.1, 0.6)

    span_calc = rng.uniform(np.deg2rad(30), np.deg2rad(270))
    calc_runs = _runs(
        rng, frames, n_guide, frames, int(rng.integers(1, 4)), (max(3, frames // 12), max(4, frames // 4))
    )
    calcium = [
        _Arc(
            s,
            e,
            rng.uniform(-np.pi, np.pi),
            rng.normal(0, 0.02),
            rng.uniform(np.deg2rad(40), span_calc if i == 0 else np.deg2rad(180)),
            rng.uniform(0.05, 0.35),
            rng.uniform(0.35, 0.9),
            int(rng.integers(1 << 30)),
        )
        for i, (s, e) in enumerate(calc_runs)
    ]
    lipid = [
        _Arc(
            s,
            e,
            rng.uniform(-np.pi, np.pi),
            rng.normal(0, 0.02),
            rng.uniform(1.0, 3.0),
            rng.uniform(0.06, 0.18),
            0.0,
            0,
        )
        for s, e in _runs(
            rng, frames, n_guide, frames, int(rng.integers(0, 3)), (max(3, frames // 10), max(4, frames // 4))
        )
    ]
    branches = [
        _Arc(s, e, rng.uniform(-np.pi, np.pi), 0.0, rng.uniform(0.5, 1.1), 0.0, 0.0, 0)
        for s, e in _runs(rng, frames, n_guide, frames, int(rng.integers(0, 3)), (2, max(3, frames // 15)))
    ]
    gw_angle = rng.uniform(-np.pi, np.pi) + np.cumsum(rng.normal(0, 0.02, frames))
    gw_radius = rng.uniform(0.6, 0.9)

    texture = smooth_noise(rng, (size, size), 3.0)
    out = np.zeros((frames, size, size, 3), np.uint8)
    masks = np.zeros((frames, size, size), bool)
    centres_px = np.zeros((frames, 2))
    lut_phi = np.linspace(-np.pi, np.pi, 1025)
    for k in range(frames):
        ck = centres_mm[k]
        centres_px[k] = (c0 + ck[0] / px, c0 + ck[1] / px)
        dy = (yy - centres_px[k, 0]) * px
        dx = (xx - centres_px[k, 1]) * px
        rho = np.hypot(dy, dx)
        phi = np.arctan2(dy, dx)
        m = np.arange(2, 7)[None, :]
        shape_lut = radius_mm[k] + (harm_amp[None, :] * np.cos(m * lut_phi[:, None] + harm_phase[k])).sum(1)
        idx = np.rint((phi + np.pi) / (2 * np.pi) * 1024).astype(np.int32)
        border = shape_lut[idx]
        for br in (b for b in branches if b.active(k)):
            w = np.clip(1.0 - np.abs(_angle_diff(phi, br.centre)) / (br.span(k) / 2), 0, 1)
            border = border + 1.6 * np.sqrt(w)
        depth = rho - border
        # Texture drifts between frames so neighbouring frames correlate but differ.
        tex = np.roll(texture, (k % size, (3 * k) % size), axis=(0, 1))
        wall = np.where(depth > 0, 1.0, 0.0).astype(np.float32)
        # Layered wall: bright intima, dark media, brighter adventitia, decaying with depth.
        # Eccentric intimal thickening pushes the media band outwards on one side.
        intima = intima_base + plaque_thick * 0.5 * (1 + np.cos(phi - plaque_angle))
        layers = (
            0.85 * np.exp(-depth / 0.9)
            + 0.12
            - 0.45 * np.exp(-0.5 * ((depth - intima - 0.07) / 0.05) ** 2)
            + 0.15 * np.exp(-0.5 * ((depth - intima - 0.3) / 0.12) ** 2)
        )
        signal = wall * np.clip(layers * (1.0 + 0.18 * tex), 0, 1.2)
        for lp in (a for a in lipid if a.active(k)):
            ang = np.abs(_angle_diff(phi, lp.centre + lp.drift * (k - lp.start)))
            inside = np.clip((lp.span(k) / 2 - ang) / 0.35 + 0.5, 0, 1)  # diffuse edges
            fall = np.exp(-np.clip(depth - lp.depth, 0, None) / 0.12)
            signal *= 1 - inside * (1 - fall)
        calc = np.zeros((size, size), bool)
        for ca in (a for a in calcium if a.active(k)):
            ang = _angle_diff(phi, ca.centre + ca.drift * (k - ca.start)) / (ca.span(k) / 2)
            along = np.clip(np.abs(ang), 0, 1)
            wobble = 0.08 * np.sin(3 * ang + ca.seed % 7)
            front = ca.depth + wobble
            thick = ca.thickness * np.sqrt(np.clip(1 - along**4, 0, 1)) * (1 + 0.2 * np.cos(2 * ang))
            calc |= (np.abs(ang) < 1) & (depth > front) & (depth < front + thick)
        calc &= fov & (depth > 0)
        calc_tex = np.roll(texture, (size // 2 + 7 * k, size // 3), axis=(0, 1))
        signal = np.where(calc, 0.2 + 0.08 * calc_tex + 0.04 * tex, signal)
        # Light fades with distance from the catheter (beam divergence, roll-off).
        signal *= np.exp(-np.clip(r_cath - 1.0, 0, None) / 3.5)
        if quality[k] == "blood":
            # Blood scatters strongly: bright speckle in the lumen, everything behind veiled.
            fog = rng.uniform(0.6, 1.0)
            lumen_blood = (depth <= 0) & (r_cath > _CATHETER_MM)
            veil = np.exp(-np.clip(r_cath - _CATHETER_MM, 0, None) / (0.4 + 0.6 * (1 - fog)))
            signal = signal * (1 - fog + fog * veil) + lumen_blood * 0.9 * fog * (0.3 + veil)
        gw_d = _angle_diff(th_cath, gw_angle[k])
        shadow = (np.abs(gw_d) < 0.09 + 0.02 * np.sin(k)) & (r_cath > gw_radius)
        signal = np.where(shadow, signal * 0.04, signal)
        gw_y = c0 + gw_radius * np.sin(gw_angle[k]) / px
        gw_x = c0 + gw_radius * np.cos(gw_angle[k]) / px
        signal += 1.1 * np.exp(-(((yy - gw_y) ** 2 + (xx - gw_x) ** 2) * px * px) / (2 * 0.05**2))
        if quality[k] == "guide":
            signal = signal * 0.25 + 0.9 * np.exp(-0.5 * ((rho - _GUIDE_MM) / 0.05) ** 2)
            signal += 0.35 * np.exp(-0.5 * ((rho - _GUIDE_MM - 0.18) / 0.08) ** 2)
            calc[:] = False
        # Catheter: dark core, bright lens reflection and a bright sheath.
        signal = np.where(r_cath < _CATHETER_MM, 0.05, signal)
        signal += 0.9 * np.exp(-0.5 * ((r_cath - _CATHETER_MM) / 0.02) ** 2)
        signal += 0.7 * np.exp(-0.5 * ((r_cath - 0.15) / 0.02) ** 2)
        speckle = rng.exponential(1.0, (size, size)).astype(np.float32)
        image = 1.25 * signal * (0.45 + 0.55 * np.minimum(speckle, 3.0))
        image += 0.03 * rng.random((size, size))
        image = np.where(fov, np.clip(image, 0, 1), 0.0)
        out[k] = _LUT[(image * 255).astype(np.uint8)]
        masks[k] = calc
    return OctRender(out, masks, tuple(quality), centres_px, px)


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
    sop_uid = deterministic_uid(rng, f"ivoct/sop/{patient.patient_id}/{series_number}")
    series_uid = deterministic_uid(rng, f"ivoct/series/{patient.patient_id}/{series_number}")
    ds = base_dataset(
        sop_class_uid=IVOCT_SOP_CLASS,
        sop_instance_uid=sop_uid,
        series_uid=series_uid,
        modality="IVOCT",
        patient=patient,
        study=study,
        series_number=series_number,
        series_description="OCT PULLBACK",
        manufacturer="LUMEN SYNTHETIC SYSTEMS",
        model_name="OCTSIM 54",
    )
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
