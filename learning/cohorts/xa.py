"""Synthetic X-ray angiography cine runs of the left or right coronary tree (task: vessel type)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from .dicom_common import (
    FakePatient,
    FakeStudy,
    base_dataset,
    fake_patient,
    fake_study,
    save_dataset,
    to_uint,
)
from .raster import (
    bilinear_sample,
    blur3,
    box_blur,
    draw_tube,
    interp_rows,
    resample_polyline,
    shift_window,
    smooth_noise,
)
from .xa_anatomy import NEITHER, NEITHER_KINDS, RUN_VESSELS, VESSELS, Tree3d, sample_tree
from .xa_knobs import ANGLE_JITTER_RANGE, MAX_FRAMES, NOISE_RANGE, SIZE_RANGE, check_int, check_number, check_xa_knobs
from .xa_views import VIEW_MIXES, XaView, jitter_view, project, sample_view, view_name

XA_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.12.1"
FRAME_TIME_TAG = Tag(0x0018, 0x1063)

# Iodine attenuation per mm of contrast-filled lumen, in log-intensity units.
_MU_CONTRAST = 0.24
_MU_CATHETER = 0.12
# Seeds of the knobs' own random streams, [seed, patient, run, stream]: the main stream never sees them.
_VIEW_MIX_STREAM, _ANGLE_JITTER_STREAM, _KNOB_STREAM = 1, 2, 3


@dataclass(frozen=True)
class XaRunTruth:
    """Ground truth of one written XA cine run."""

    path: Path
    patient_id: str
    patient_name: str
    study_uid: str
    sop_instance_uid: str
    vessel: str  # "LCA", "RCA" or "neither"
    frames: int
    rows: int
    columns: int
    frame_time_ms: float
    primary_angle: float
    secondary_angle: float
    source_to_detector_mm: float
    source_to_patient_mm: float
    series_uid: str = ""
    heart_rate_bpm: float = 0.0
    neither_kind: str = ""  # for "neither" runs: "aortogram", "ventriculogram" or "no_fill"


@dataclass(frozen=True)
class XaRender:
    """Rendered frames plus the noise-free vessel map they were made from."""

    frames: np.ndarray  # (frames, size, size) float32 in [0, 1], bright background
    vessel_mm: np.ndarray  # (size, size) iodine path length (mm) of the fully filled tree
    view: XaView
    heart_rate_bpm: float
    pixel_mm: float
    neither_kind: str = ""


def _rasterise(
    tree: Tree3d, view: XaView, size: int, pixel_mm: float, centre_px: np.ndarray, pad: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (vessel thickness mm, contrast arrival mm, catheter thickness mm) images.

    With pad > 0 the images extend pad pixels beyond the detector on every side.
    """
    shape = (size + 2 * pad, size + 2 * pad)
    centre_px = centre_px + pad
    thick = np.zeros(shape, np.float32)
    arrival = np.full(shape, np.inf, np.float32)
    step = max(1.0, size / 256.0)
    for v in tree.vessels:
        px, mag = project(v.points, view, pixel_mm, centre_px)
        params = resample_polyline(px, step)
        pts = interp_rows(px, params)
        mm_per_px = pixel_mm / interp_rows(mag, params)
        rad = interp_rows(v.radius, params) / mm_per_px
        arr = interp_rows(v.arrival, params)
        t, a, (r0, r1, c0, c1) = draw_tube(shape, pts, rad, mm_per_px, arr)
        if v.density != 1.0:  # diluted contrast (aortic root, LV cavity, refluxing coronaries)
            t *= np.float32(v.density)
        region = thick[r0:r1, c0:c1]
        aregion = arrival[r0:r1, c0:c1]
        # Overlapping branches add up (crossings look darker); arrival follows the thicker.
        take = t > region
        aregion[take] = a[take]
        region += t
    cpx, cmag = project(tree.catheter, view, pixel_mm, centre_px)
    params = resample_polyline(cpx, step)
    pts = interp_rows(cpx, params)
    mm_per_px = pixel_mm / interp_rows(cmag, params)
    rad = 1.0 / mm_per_px  # 6F catheter: 2 mm outer diameter
    cath = np.zeros(shape, np.float32)
    t, _, (r0, r1, c0, c1) = draw_tube(shape, pts, rad, mm_per_px, np.zeros(len(pts)))
    cath[r0:r1, c0:c1] = t
    return blur3(thick), arrival, blur3(cath)


def _background(
    rng: np.random.Generator,
    tree: Tree3d,
    view: XaView,
    size: int,
    pixel_mm: float,
    centre_px: np.ndarray,
    pad: int = 0,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Return the anatomical attenuation (lungs, heart, spine, diaphragm, ribs) and the collimator shutters.

    The anatomy extends pad pixels beyond the detector on every side, so the table can move it;
    the shutters, fixed to the tube, are terms to add to the detector's (size, size) part in order.
    """
    rows = np.arange(-pad, size + pad, dtype=np.float32)[:, None]
    cols = np.arange(-pad, size + pad, dtype=np.float32)[None, :]
    mu = np.full((size + 2 * pad, size + 2 * pad), 1.0, np.float32)
    (hc,), (hmag,) = project(tree.heart_centre[None, :], view, pixel_mm, centre_px)
    heart_r = 1.35 * tree.heart_radius * hmag / pixel_mm
    dist = np.hypot((rows - hc[0]) / 1.1, cols - hc[1]) / heart_r
    mu += 0.5 / (1.0 + np.exp(np.clip((dist - 1.0) * 10.0, -50, 50)))
    # Spine: a posterior vertical column, projected with the same geometry as the heart.
    spine = np.array([[0.0, 80.0, -200.0], [0.0, 80.0, 200.0]]) + rng.normal(0, 5, 3)
    sp, smag = project(spine, view, pixel_mm, centre_px)
    direction = sp[1] - sp[0]
    direction /= np.linalg.norm(direction)
    normal = np.array([-direction[1], direction[0]])
    across = (rows - sp[0][0]) * normal[0] + (cols - sp[0][1]) * normal[1]
    along = (rows - sp[0][0]) * direction[0] + (cols - sp[0][1]) * direction[1]
    half_w = 22.0 * float(smag.mean()) / pixel_mm
    band = 1.0 / (1.0 + np.exp((np.abs(across) - half_w) / (0.12 * half_w)))
    period = 27.0 * float(smag.mean()) / pixel_mm
    vertebrae = 0.8 + 0.2 * np.cos(2 * np.pi * along / period + rng.uniform(0, 6.3))
    mu += 0.55 * band * vertebrae
    # Diaphragm: a dome whose height in the image follows the cranio-caudal angle.
    xs = np.linspace(-200, 200, 41)
    dome_z = rng.uniform(-80, -50) - xs**2 / 300.0
    dome = np.stack([xs, np.zeros_like(xs), dome_z], axis=1)
    dp, _ = project(dome, view, pixel_mm, centre_px)
    order = np.argsort(dp[:, 1])
    edge = np.interp(cols[0], dp[order, 1], dp[order, 0])[None, :]
    mu += 0.8 / (1.0 + np.exp(-(rows - edge) / (0.015 * size)))
    # Ribs: a few broad curved bands; the cortical edges make them faintly visible.
    tilt = rng.uniform(-0.5, 0.5)
    spacing = rng.uniform(0.22, 0.32) * size
    curve = rng.uniform(0.6, 1.4) / size
    rib_phase = (rows + tilt * cols - curve * (cols - size / 2) ** 2) / spacing
    ribs = (0.5 + 0.5 * np.cos(2 * np.pi * (rib_phase + rng.uniform(0, 1)))) ** 3
    mu += rng.uniform(0.06, 0.14) * ribs
    coarse, fine = smooth_noise(rng, (size, size), size / 8), smooth_noise(rng, (size, size), size / 40)
    if pad:  # the fields are periodic, so tiling them extends them seamlessly
        coarse, fine = np.pad(coarse, pad, mode="wrap"), np.pad(fine, pad, mode="wrap")
    mu += 0.06 * coarse + 0.03 * fine
    # Collimator shutters on some runs.
    shutters = []
    rows, cols = rows[pad : pad + size], cols[:, pad : pad + size]
    if rng.random() < 0.5:
        for side in rng.choice(4, size=int(rng.integers(1, 3)), replace=False):
            pos = rng.uniform(0.02, 0.08) * size
            coord = {0: rows, 1: size - 1 - rows, 2: cols, 3: size - 1 - cols}[int(side)]
            shutters.append(1.5 / (1.0 + np.exp(np.clip((coord - pos) / 1.5, -50, 50))))
    return mu, shutters


def _systole(phase: np.ndarray) -> np.ndarray:
    """Return ventricular contraction (0 relaxed .. 1 end-systole) for cardiac phase in [0, 1)."""
    ph = np.mod(phase, 1.0)
    return np.where(ph < 0.7, 0.5 * (1 - np.cos(2 * np.pi * ph / 0.7)), 0.0) ** 1.3


@dataclass(frozen=True)
class _Systole:
    """End-systolic motion of a run: contraction towards the heart centre, twist and a sideways swing (px)."""

    squeeze: float
    twist: float
    shift: np.ndarray  # (rows, cols)


def _draw_systole(rng: np.random.Generator, pixel_mm: float) -> _Systole:
    """Draw a run's end-systolic motion."""
    squeeze = rng.uniform(0.07, 0.12)
    twist = rng.normal(0, 0.05)
    shift = rng.normal(0, 2.5, 2) / pixel_mm
    return _Systole(squeeze, twist, shift)


def _systolic_displacement(
    systole: _Systole, heart_px: np.ndarray, heart_radius_px: float, size: int, pad: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return the backward-mapping displacement (rows, cols) at end-systole, pad pixels beyond the detector.

    The heart contracts towards its centre, twists a little and swings sideways; the
    motion fades with distance so the catheter shaft far from the heart barely moves.
    """
    rows = np.arange(-pad, size + pad, dtype=np.float32)[:, None]
    cols = np.arange(-pad, size + pad, dtype=np.float32)[None, :]
    dr, dc = rows - heart_px[0], cols - heart_px[1]
    sigma = 1.2 * heart_radius_px
    weight = np.exp(-(dr**2 + dc**2) / (2 * sigma**2)).astype(np.float32)
    disp_r = (-systole.squeeze * dr + systole.twist * dc + systole.shift[0]) * weight
    disp_c = (-systole.squeeze * dc - systole.twist * dr + systole.shift[1]) * weight
    return disp_r, disp_c


def _placement(
    tree: Tree3d, view: XaView, size: int, pixel_mm: float, centre_jitter: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return (isocentre, heart centre) in detector pixels: operators centre the table on the tree, not perfectly."""
    (hc,), _ = project(tree.heart_centre[None, :], view, pixel_mm, np.zeros(2))
    framed = tree.framing if tree.framing is not None else np.concatenate([v.points for v in tree.vessels])
    tree_px, _ = project(framed, view, pixel_mm, np.zeros(2))
    mid = 0.5 * (tree_px.min(axis=0) + tree_px.max(axis=0))
    centre_px = size / 2 - mid + centre_jitter
    return centre_px, centre_px + hc


def _tree_layers(
    tree: Tree3d, view: XaView, size: int, pixel_mm: float, centre_px: np.ndarray, pad: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Return (iodine mm, contrast arrival mm, catheter mm) images and the farthest arrival on the detector."""
    thick, arrival, cath = _rasterise(tree, view, size, pixel_mm, centre_px, pad)
    seen = arrival[pad : pad + size, pad : pad + size]
    finite = seen[np.isfinite(seen)]
    reach = float(finite.max()) if finite.size else 1.0
    valid = np.isfinite(arrival)
    return thick * valid, np.where(valid, arrival, 0.0).astype(np.float32), cath, reach


def _support(
    thick: np.ndarray, cath: np.ndarray, disp: tuple[np.ndarray, np.ndarray], size: int, pad: int, pan_px: float
) -> np.ndarray:
    """Return the detector pixels (flat indices) the tree and catheter can move to; per-frame work stays there."""
    reach = int(np.ceil(float(np.hypot(*disp).max()))) + 2 + int(np.ceil(pan_px))
    occupied = (thick > 0) | (cath > 0)
    near = box_blur(occupied.astype(np.float32), reach)[pad : pad + size, pad : pad + size]
    return np.flatnonzero(near > 0.5 / (2 * reach + 1) ** 2)


def render_xa_run(
    *,
    vessel: str,
    rng: np.random.Generator,
    frames: int = 40,
    size: int = 512,
    frame_time_ms: float = 66.7,
    view: XaView | None = None,
    neither_kind: str | None = None,
    noise: float = 1.0,
    table_panning: float = 0.0,
    standard_view: XaView | None = None,
    knob_rng: np.random.Generator | None = None,
) -> XaRender:
    """Render a cine run of the LCA, the RCA or "neither" as float frames in [0, 1].

    A "neither" run is a non-selective aortic root injection, a left ventriculogram or a catheter
    at an ostium with no coronary filling (neither_kind picks one; random if None). noise scales
    the quantum noise; table_panning > 0 moves the table by that many pixels during the run.
    A run filmed in another view than standard_view (the one drawn from rng for it; default: view)
    or panned draws its extra randomness from knob_rng (spawned from rng if None) and leaves rng
    where the standard, unpanned run would have left it.
    """
    if vessel not in RUN_VESSELS:
        raise ValueError(f"unknown vessel {vessel!r}; expected one of {RUN_VESSELS}")
    if neither_kind is not None and (vessel != NEITHER or neither_kind not in NEITHER_KINDS):
        raise ValueError(f"neither_kind must be one of {NEITHER_KINDS}, and only for vessel {NEITHER!r}")
    check_int("frames", frames, 1, MAX_FRAMES)
    check_int("size", size, *SIZE_RANGE)
    check_number("noise", noise, *NOISE_RANGE)
    check_number("table_panning", table_panning, 0.0, size / 2, f" pixels (half the image size {size})")
    view = view or sample_view(vessel, rng)
    standard_view = standard_view or view
    tree = sample_tree(vessel, rng, neither_kind) if vessel == NEITHER else sample_tree(vessel, rng)
    fov_mm = rng.uniform(110, 160)
    pixel_mm = fov_mm / size
    centre_jitter = rng.normal(0, 0.05 * size, 2)
    centre_px, heart_px = _placement(tree, view, size, pixel_mm, centre_jitter)
    # Panning renders the anatomy and the tree on a canvas wider than the detector by the pan.
    pad = int(np.ceil(table_panning)) + 2 if table_panning > 0 else 0
    thick, arrival, cath, reach = _tree_layers(tree, view, size, pixel_mm, centre_px, pad)
    anatomy, shutters = _background(rng, tree, view, size, pixel_mm, centre_px, pad)
    bg = anatomy[pad : pad + size, pad : pad + size].copy() if pad else anatomy  # the detector at the start
    for shutter in shutters:
        bg += shutter

    t = np.arange(frames) * frame_time_ms / 1000.0
    duration = max(float(t[-1]), 1e-3)
    t_in = rng.uniform(0.03, 0.2) * duration
    t_out = rng.uniform(0.5, 0.7) * duration
    v_in = reach / (rng.uniform(0.12, 0.25) * duration)
    v_out = reach / (rng.uniform(0.3, 0.5) * duration)
    ramp = 0.08 * reach
    dose = rng.uniform(0.8, 1.2)

    heart_rate = float(rng.uniform(60, 100))
    phase = t * heart_rate / 60.0 + rng.uniform(0, 1)
    contraction = _systole(phase)
    systole = _draw_systole(rng, pixel_mm)
    disp_r, disp_c = _systolic_displacement(systole, heart_px, tree.heart_radius / pixel_mm, size, pad)
    support = _support(thick, cath, (disp_r, disp_c), size, pad, table_panning)
    varied = pad > 0 or standard_view != view
    if varied:  # rng gives the vessels' extra noise as many values per frame as in the standard run
        knob_rng = knob_rng or rng.spawn(1)[0]
        std_centre, std_heart = _placement(tree, standard_view, size, pixel_mm, centre_jitter)
        std_thick, _, std_cath, _ = _tree_layers(tree, standard_view, size, pixel_mm, std_centre)
        std_disp = _systolic_displacement(systole, std_heart, tree.heart_radius / pixel_mm, size)
        main_draws = _support(std_thick, std_cath, std_disp, size, 0, 0.0).size
    sup_r, sup_c = (support // size).astype(np.float32), (support % size).astype(np.float32)
    if not pad:
        sup_disp_r, sup_disp_c = disp_r.ravel()[support], disp_c.ravel()[support]
    vessel_idx = np.flatnonzero(thick > 0)
    vessel_thick = thick.ravel()[vessel_idx]
    vessel_arrival = arrival.ravel()[vessel_idx]

    out = rng.standard_normal((frames, size, size), dtype=np.float32)
    quantum = rng.uniform(0.035, 0.06) * noise
    # Window: lungs just below white, the iodine-filled proximal vessels well above black.
    lo = float(np.percentile(bg, 2)) - rng.uniform(0.1, 0.3)
    hi = float(np.percentile(bg, 98)) + rng.uniform(0.9, 1.3)
    # Quantum noise grows where fewer photons arrive (log-domain std ~ 1/sqrt(I)).
    noise_bg = (quantum * np.exp(0.5 * np.minimum(bg - lo, 2.0))).astype(np.float32)
    sup_noise_bg = noise_bg.ravel()[support]
    # In place: a 512x512x100 run is 100 MB per float32 copy.
    if not pad:
        out *= -noise_bg
        out += hi - bg
        out *= np.float32(1.0 / (hi - lo))
    else:
        assert knob_rng is not None  # spawned above: a panned run is varied
        pan = _pan_path(knob_rng, t, table_panning)
    for k in range(frames):
        if pad:  # the anatomy moves with the table, the shutters and the detector noise do not
            bg_k = shift_window(anatomy, pad, size, pan[k])
            for shutter in shutters:
                bg_k += shutter
            noise_bg_k = (quantum * np.exp(0.5 * np.minimum(bg_k - lo, 2.0))).astype(np.float32)
            sup_noise_bg = noise_bg_k.ravel()[support]
            out[k] *= -noise_bg_k
            out[k] += hi - bg_k
            out[k] *= np.float32(1.0 / (hi - lo))
        fill = np.clip((v_in * (t[k] - t_in) - vessel_arrival) / ramp, 0.0, 1.0)
        gone = np.clip((v_out * (t[k] - t_out) - vessel_arrival) / ramp, 0.0, 0.9)
        injecting = float(np.clip((t[k] - t_in) / 0.15, 0, 1) * np.clip((t_out - t[k]) / 0.3 + 1, 0, 1))
        moving = cath * np.float32(_MU_CATHETER + _MU_CONTRAST * 0.6 * injecting)
        moving.ravel()[vessel_idx] += _MU_CONTRAST * dose * vessel_thick * fill * (1.0 - gone)
        c = float(contraction[k])
        if pad:  # detector pixel p shows canvas point q = p + pad - pan, displaced by the heart at q
            src_r, src_c = sup_r + np.float32(pad - pan[k, 0]), sup_c + np.float32(pad - pan[k, 1])
            if c > 1e-3:
                src_r, src_c = (
                    src_r - c * bilinear_sample(disp_r, src_r, src_c),
                    src_c - c * bilinear_sample(disp_c, src_r, src_c),
                )
            mu = bilinear_sample(moving, src_r, src_c)
        elif c > 1e-3:
            mu = bilinear_sample(moving, sup_r - c * sup_disp_r, sup_c - c * sup_disp_c)
        else:
            mu = moving.ravel()[support]
        # Iodine absorbs photons, so vessels are noisier: the background noise std times
        # exp(mu / 2) ~ 1 + x, topped up here with independent noise of std sqrt(x^2 + 2x).
        x = 0.5 * mu * (1.0 + 0.25 * mu)
        if varied:
            assert knob_rng is not None  # spawned above for every varied run
            rng.standard_normal(main_draws, dtype=np.float32)
            gauss = knob_rng.standard_normal(mu.size, dtype=np.float32)
        else:
            gauss = rng.standard_normal(mu.size, dtype=np.float32)
        extra = sup_noise_bg * np.sqrt(x * (x + 2.0)) * gauss
        frame = out[k].reshape(-1)
        frame[support] -= (mu + extra) / (hi - lo)
    np.clip(out, 0.0, 1.0, out=out)
    vessel_mm = thick[pad : pad + size, pad : pad + size] if pad else thick
    return XaRender(out, vessel_mm, view, heart_rate, pixel_mm, tree.kind)


def _pan_path(rng: np.random.Generator, t: np.ndarray, amount: float) -> np.ndarray:
    """Return the table's (rows, cols) offset in pixels at times t: one smooth glide of amount pixels.

    The operator starts following the contrast 10-40 % into the run and stops by the last frame; the
    direction is random, so it says nothing about the vessel.
    """
    angle = rng.uniform(0.0, 2.0 * np.pi)
    duration = max(float(t[-1]), 1e-3)
    start = rng.uniform(0.1, 0.4) * duration
    end = start + rng.uniform(0.4, 1.0) * (duration - start)
    s = np.clip((t - start) / max(end - start, 1e-6), 0.0, 1.0)
    glide = s * s * (3.0 - 2.0 * s)
    return amount * glide[:, None] * np.array([np.sin(angle), np.cos(angle)])


def write_xa_run(
    path: Path,
    *,
    vessel: str,
    rng: np.random.Generator,
    patient: FakePatient,
    frames: int = 40,
    size: int = 512,
    frame_time_ms: float = 66.7,
    bits: int = 8,
    bits_stored: int | None = None,
    study: FakeStudy | None = None,
    series_number: int = 1,
    view: XaView | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    neither_kind: str | None = None,
    noise: float = 1.0,
    table_panning: float = 0.0,
    standard_view: XaView | None = None,
    knob_rng: np.random.Generator | None = None,
) -> XaRunTruth:
    """Render a run (vessel "LCA", "RCA" or "neither"), write it as a multi-frame XA DICOM file; return its truth.

    noise, table_panning, standard_view and knob_rng are render_xa_run's.
    """
    if bits not in (8, 16):
        raise ValueError("bits must be 8 or 16")
    stored = bits_stored or (8 if bits == 8 else 12)
    if stored > bits or (bits == 16 and stored not in (10, 12, 16)):
        raise ValueError(f"bits_stored {stored} does not fit bits {bits}")
    study = study or fake_study(rng, patient, "xa")
    render = render_xa_run(
        vessel=vessel,
        rng=rng,
        frames=frames,
        size=size,
        frame_time_ms=frame_time_ms,
        view=view,
        neither_kind=neither_kind,
        noise=noise,
        table_panning=table_panning,
        standard_view=standard_view,
        knob_rng=knob_rng,
    )
    pixels = to_uint(render.frames, stored)
    if bits == 16:
        pixels = pixels.astype(np.uint16)
    v = render.view
    ds = base_dataset(
        sop_class_uid=XA_SOP_CLASS,
        rng=rng,
        namespace="xa",
        modality="XA",
        patient=patient,
        study=study,
        series_number=series_number,
        series_description=view_name(v),
        manufacturer="LUMEN SYNTHETIC SYSTEMS",
        model_name="CARDIOSIM 3000",
    )
    sop_uid, series_uid = str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = bits
    ds.BitsStored = stored
    ds.HighBit = stored - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    ds.LossyImageCompression = "00"
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = FRAME_TIME_TAG
    ds.FrameTime = f"{frame_time_ms:.1f}"
    ds.CineRate = int(round(1000.0 / frame_time_ms))
    ds.RecommendedDisplayFrameRate = int(round(1000.0 / frame_time_ms))
    ds.ActualFrameDuration = int(round(frame_time_ms))
    ds.StartTrim = 1
    ds.StopTrim = frames
    ds.HeartRate = int(round(render.heart_rate_bpm))
    ds.PositionerMotion = "STATIC"
    ds.PositionerPrimaryAngle = f"{v.primary_angle:.1f}"
    ds.PositionerSecondaryAngle = f"{v.secondary_angle:.1f}"
    ds.DistanceSourceToDetector = f"{v.source_to_detector_mm:.1f}"
    ds.DistanceSourceToPatient = f"{v.source_to_patient_mm:.1f}"
    ds.ImagerPixelSpacing = [f"{render.pixel_mm:.4f}", f"{render.pixel_mm:.4f}"]
    ds.EstimatedRadiographicMagnificationFactor = f"{v.source_to_detector_mm / v.source_to_patient_mm:.3f}"
    ds.RadiationSetting = "GR"
    ds.KVP = f"{rng.uniform(70, 95):.0f}"
    ds.XRayTubeCurrent = int(rng.uniform(400, 900))
    ds.ExposureTime = int(rng.uniform(5, 9))
    ds.FieldOfViewShape = "RECTANGLE"
    ds.IntensifierSize = f"{render.pixel_mm * size:.0f}"
    top = (1 << stored) - 1
    ds.WindowCenter = f"{top / 2:.1f}"
    ds.WindowWidth = f"{top + 1:.0f}"
    ds.PixelData = pixels.tobytes()
    if transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax)
    save_dataset(ds, path)
    return XaRunTruth(
        path=path,
        patient_id=patient.patient_id,
        patient_name=patient.name,
        study_uid=study.study_uid,
        sop_instance_uid=sop_uid,
        vessel=vessel,
        frames=frames,
        rows=size,
        columns=size,
        frame_time_ms=float(f"{frame_time_ms:.1f}"),
        primary_angle=v.primary_angle,
        secondary_angle=v.secondary_angle,
        source_to_detector_mm=v.source_to_detector_mm,
        source_to_patient_mm=v.source_to_patient_mm,
        series_uid=series_uid,
        heart_rate_bpm=round(render.heart_rate_bpm, 1),
        neither_kind=render.neither_kind,
    )


def write_xa_run_rle(path: Path, **kwargs: object) -> XaRunTruth:
    """Write a run like write_xa_run but RLE Lossless compressed."""
    return write_xa_run(path, transfer_syntax=RLELossless, **kwargs)  # type: ignore[arg-type]


def generate_xa_cohort(
    out_dir: Path,
    *,
    n_patients: int,
    runs_per_patient: int = 4,
    frames: tuple[int, int] = (24, 48),
    size: int = 256,
    seed: int = 0,
    neither_rate: float = 0.0,
    view_mix: str = "standard",
    angle_jitter_deg: float = 0.0,
    noise: float = 1.0,
    table_panning: float = 0.0,
) -> list[XaRunTruth]:
    """Write n_patients exams of mixed LCA/RCA runs under out_dir; return their truth.

    neither_rate is the chance that a run is "neither" (aortogram, ventriculogram or a catheter
    with no coronary filling) instead of the coronary run it would have been. view_mix (one of
    VIEW_MIXES) picks the C-arm view mixture and angle_jitter_deg adds that SD to both angles;
    noise scales the quantum noise; table_panning moves the table by that many pixels during each
    run. At their defaults every knob leaves the cohort exactly as without it; the others draw
    from their own random streams, so the patients, vessels and run lengths stay the same.
    """
    check_xa_knobs(
        n_patients=n_patients,
        runs_per_patient=runs_per_patient,
        frames=frames,
        size=size,
        neither_rate=neither_rate,
        view_mix=view_mix,
        angle_jitter_deg=angle_jitter_deg,
        noise=noise,
        table_panning=table_panning,
    )
    rng = np.random.default_rng(seed)
    truths: list[XaRunTruth] = []
    for i in range(n_patients):
        patient = fake_patient(rng, i)
        study = fake_study(rng, patient, f"xa/{seed}")
        # Real exams show the left tree more often than the right (~2:1).
        vessels = ["LCA", "RCA"] + ["LCA" if rng.random() < 0.6 else "RCA" for _ in range(max(runs_per_patient - 2, 0))]
        vessels = [vessels[j] for j in rng.permutation(len(vessels))][:runs_per_patient]
        if neither_rate > 0:  # no extra draws at 0, so existing seeds give the same files
            vessels = [NEITHER if rng.random() < neither_rate else v for v in vessels]
        for j, vessel in enumerate(vessels):
            n_frames = int(rng.integers(frames[0], frames[1] + 1))
            frame_time = float(rng.choice([66.7, 66.7, 33.3, 133.3]))
            # The draw render_xa_run would make, so the main stream is the same at any view_mix.
            standard = view = sample_view(vessel, rng)
            if view_mix != "standard":
                view = sample_view(vessel, np.random.default_rng([seed, i, j, _VIEW_MIX_STREAM]), view_mix)
            if angle_jitter_deg > 0:
                view = jitter_view(view, np.random.default_rng([seed, i, j, _ANGLE_JITTER_STREAM]), angle_jitter_deg)
            path = Path(out_dir) / f"patient{i + 1:04d}" / f"run{j + 1:02d}.dcm"
            truths.append(
                write_xa_run(
                    path,
                    vessel=vessel,
                    rng=rng,
                    patient=patient,
                    frames=n_frames,
                    size=size,
                    frame_time_ms=frame_time,
                    study=study,
                    series_number=j + 1,
                    view=view,
                    noise=noise,
                    table_panning=table_panning,
                    standard_view=standard,
                    knob_rng=np.random.default_rng([seed, i, j, _KNOB_STREAM]),
                )
            )
    return truths


__all__ = [
    "ANGLE_JITTER_RANGE",
    "MAX_FRAMES",
    "NEITHER",
    "NEITHER_KINDS",
    "NOISE_RANGE",
    "RUN_VESSELS",
    "SIZE_RANGE",
    "VESSELS",
    "VIEW_MIXES",
    "XA_SOP_CLASS",
    "XaRender",
    "XaRunTruth",
    "XaView",
    "check_xa_knobs",
    "generate_xa_cohort",
    "render_xa_run",
    "write_xa_run",
    "write_xa_run_rle",
]
