"""Synthetic SPECT myocardial perfusion polar maps with segment scores (task: territories).

The latent truth is each patient's coronary stenoses. They drive ischaemia and scar, which
an "expert reader" turns into 17 segment scores; the images are rendered from those scores
(smooth defects that cross territory borders) plus the patient's normal variation, noise and
attenuation artefacts that are not defects. A subset of patients also had angiography (ICA),
whose stenoses are the latent ones plus measurement error. A second reader optionally scores
every patient again, differing from the first in a set share of segments.

How loosely the pictures follow the scores is a ``SpectDifficulty``; its draws come from a
random stream of their own per patient, so the patients, scores and ICA of a seed are the same
at every difficulty and ``difficulty="easy"`` draws the images of earlier versions bit for bit.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image

from learning.domain import ICA_VESSELS, SEGMENT_TERRITORY, TERRITORIES, TERRITORY_SEGMENTS, ica_obstructive

from .dicom_common import (
    FakePatient,
    FakeStudy,
    base_dataset,
    fake_patient,
    fake_study,
    save_dataset,
)
from .raster import bilinear_sample, blur3, smooth_noise
from .territories import segment_of, territory_abnormal

SC_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
MANIFEST_HEADER = ("patient", "rest_file", "stress_file", "age", "sex", "weight", "height")
ICA_FRACTION = 0.6
READER_DISAGREEMENT = 0.1  # default share of stress segments a second reader scores differently

# Fraction of counts lost for each segment score (0 normal .. 4 absent).
_SCORE_LOSS = np.array([0.0, 0.17, 0.32, 0.48, 0.66])
# Segments of each territory from distal (apical) to proximal (basal).
_DISTAL_TO_PROXIMAL = {
    "LAD": (17, 13, 14, 7, 8, 1, 2),
    "RCA": (15, 10, 4, 9, 3),
    "LCX": (16, 11, 5, 12, 6),
}
_N_RHO, _N_THETA = 96, 360
# Separate random streams per patient (beside the main one), so the knobs never shift the scores.
_LOOK_STREAM, _READER_STREAM = 1, 2
_DIFFICULTY_LIMITS = {
    "defect_contrast": (0.0, 2.0),
    "contrast_spread": (0.0, 0.95),
    "faint_defect_rate": (0.0, 1.0),
    "score_jitter": (0.0, 2.0),
    "artefact_rate": (0.0, 1.0),
    "noise": (0.0, 10.0),
    "intensity_jitter": (0.0, 0.5),
    "misregistration_deg": (0.0, 45.0),
}


@dataclass(frozen=True)
class SpectDifficulty:
    """How loosely the polar maps follow the reader's segment scores; the defaults are the hard setting."""

    defect_contrast: float = 0.6  # count loss of a scored defect, relative to the easy setting
    contrast_spread: float = 0.35  # each territory's defect contrast varies by up to ± this share
    faint_defect_rate: float = 0.15  # share of territories whose defect is drawn at only 10-35 % contrast
    score_jitter: float = 0.45  # SD, in score units, between a segment's read score and the drawn defect
    artefact_rate: float = 0.35  # about this share of patients (more if obese) has a marked attenuation artefact
    noise: float = 1.5  # scale of the count noise (1 = easy)
    intensity_jitter: float = 0.06  # SD of each map's gamma (log) and of its smooth regional gain
    misregistration_deg: float = 6.0  # SD of each map's rotation against the segment grid

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            low, high = _DIFFICULTY_LIMITS[f.name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{f.name} must be a number between {low:g} and {high:g}; got {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{f.name} must be between {low:g} and {high:g}; got {value!r}")


SPECT_DIFFICULTIES: dict[str, SpectDifficulty] = {
    # The cohorts of earlier versions: defects follow the scores closely, mild noise, no extra artefacts.
    "easy": SpectDifficulty(
        defect_contrast=1.0,
        contrast_spread=0.0,
        faint_defect_rate=0.0,
        score_jitter=0.0,
        artefact_rate=0.0,
        noise=1.0,
        intensity_jitter=0.0,
        misregistration_deg=0.0,
    ),
    "hard": SpectDifficulty(),
}


def spect_difficulty(difficulty: str | SpectDifficulty) -> SpectDifficulty:
    """Return the SpectDifficulty named by difficulty ("easy", "hard") or difficulty itself."""
    if isinstance(difficulty, SpectDifficulty):
        return difficulty
    if isinstance(difficulty, str) and difficulty in SPECT_DIFFICULTIES:
        return SPECT_DIFFICULTIES[difficulty]
    known = ", ".join(SPECT_DIFFICULTIES)
    raise ValueError(f"unknown difficulty {difficulty!r}; expected one of {known} or a SpectDifficulty")


@dataclass(frozen=True)
class SpectPatientTruth:
    """Ground truth of one patient's rest and stress polar maps."""

    patient_id: str
    patient_name: str
    rest_path: Path
    stress_path: Path
    age: int
    sex: str  # "M" or "F"
    weight_kg: float
    height_cm: float
    stress_scores: tuple[int, ...]  # 17 segment scores 0..4
    rest_scores: tuple[int, ...]  # 17 segment scores 0..4
    territory_abnormal: dict[str, bool]  # summed stress score of the territory >= 4
    ica_stenosis: dict[str, float] | None  # LM/LAD/LCX/RCA percent; None without angiography
    # A second expert read (None when the cohort has none), and what the maps show that the scores do not.
    second_reader_stress_scores: tuple[int, ...] | None = None
    second_reader_rest_scores: tuple[int, ...] | None = None
    artefact: str = ""  # "" none, "inferior" or "anterior": a marked attenuation artefact that is not a defect
    faint_territories: tuple[str, ...] = ()  # territories with scored defects drawn at only 10-35 % contrast


@dataclass(frozen=True)
class _Disease:
    stenosis: dict[str, float]  # latent LM/LAD/LCX/RCA percent narrowing
    stress_scores: tuple[int, ...]
    rest_scores: tuple[int, ...]


def _sample_disease(rng: np.random.Generator, patient: FakePatient) -> _Disease:
    """Draw stenoses from clinical risk, then the reader's stress and rest segment scores."""
    bmi = patient.weight_kg / (patient.height_cm / 100.0) ** 2
    logit = -0.5 + 0.05 * (patient.age - 63) + 0.7 * (patient.sex == "M") + 0.04 * (bmi - 28)
    has_cad = rng.random() < 1.0 / (1.0 + np.exp(-logit))
    stenosis = {v: float(rng.beta(1.2, 4.0) * 60) for v in ICA_VESSELS}
    stenosis["LM"] *= 0.6
    if has_cad:
        n = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
        for v in rng.choice(["LAD", "RCA", "LCX"], size=n, replace=False, p=[0.45, 0.3, 0.25]):
            stenosis[str(v)] = float(rng.uniform(55, 100))
        if rng.random() < 0.06:
            stenosis["LM"] = float(rng.uniform(50, 90))
    stress = np.zeros(17, int)
    rest = np.zeros(17, int)
    for territory, order in _DISTAL_TO_PROXIMAL.items():
        s = stenosis[territory]
        if territory in ("LAD", "LCX"):
            s = max(s, stenosis["LM"] + 20 if stenosis["LM"] >= 50 else 0.0)
        if s >= 70:
            # Collaterals and balanced ischaemia hide some significant lesions.
            severity = 0.0 if rng.random() < 0.25 else np.clip((s - 55) / 45 + rng.normal(0, 0.15), 0.2, 1)
        elif s >= 50:
            severity = rng.uniform(0.15, 0.45) if rng.random() < 0.25 else 0.0
        else:
            severity = rng.uniform(0.15, 0.35) if rng.random() < 0.04 else 0.0
        if severity <= 0:
            continue
        n_seg = int(np.clip(round(len(order) * rng.uniform(0.3, 1.0) * (0.5 + severity)), 1, len(order)))
        scar = rng.random() < 0.3 * severity
        for j, seg in enumerate(order[:n_seg]):
            # The most distal segments of a territory are hit hardest.
            level = severity * 4.2 * (1.0 - 0.35 * j / max(n_seg, 1)) + rng.normal(0, 0.4)
            score = int(np.clip(round(level), 1, 4))
            stress[seg - 1] = max(stress[seg - 1], score)
            if scar:
                rest[seg - 1] = max(rest[seg - 1], int(np.clip(score - rng.integers(0, 2), 0, 4)))
            elif rng.random() < 0.2:
                rest[seg - 1] = max(rest[seg - 1], int(score >= 3))
    # Reader noise: the odd mild score in a normal segment.
    noise = (rng.random(17) < 0.03) & (stress == 0)
    stress[noise] = 1
    return _Disease(stenosis, tuple(int(x) for x in stress), tuple(int(x) for x in rest))


def _polar_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (radius, angle_deg, segment) arrays of the polar working grid."""
    rho = (np.arange(_N_RHO) + 0.5) / _N_RHO
    theta = (np.arange(_N_THETA) + 0.5) * 360.0 / _N_THETA
    rr, tt = np.meshgrid(rho, theta, indexing="ij")
    return rr, tt, segment_of(rr, tt)


def _smooth_polar(field: np.ndarray, sigma_rho: float, sigma_deg: float) -> np.ndarray:
    """Return field (rho x theta) smoothed with wrap-around in angle and edge clamping in rho."""
    k = np.fft.rfftfreq(_N_THETA, d=360.0 / _N_THETA)
    transfer = np.exp(-2.0 * (np.pi * k * sigma_deg) ** 2)
    out = np.fft.irfft(np.fft.rfft(field, axis=1) * transfer, n=_N_THETA, axis=1)
    half = int(np.ceil(3 * sigma_rho * _N_RHO))
    x = np.arange(-half, half + 1) / _N_RHO
    kernel = np.exp(-0.5 * (x / sigma_rho) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(out, ((half, half), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(_N_THETA)], axis=1)


@dataclass(frozen=True)
class _MapLook:
    """How one map departs from its scores; every field neutral in the easy setting."""

    levels: np.ndarray | None = None  # 18 drawn defect levels (index 0 outside the map); None: the scores
    contrast: np.ndarray | None = None  # 18 per-segment factors on the count loss; None: 1
    attenuation: np.ndarray | None = None  # polar (rho x theta) gain of an attenuation artefact
    rotation_deg: float = 0.0
    noise: float = 1.0
    gain: np.ndarray | None = None  # cartesian smooth regional gain
    gamma: float = 1.0


@dataclass(frozen=True)
class _PatientLook:
    rest: _MapLook
    stress: _MapLook
    artefact: str
    faint_territories: tuple[str, ...]


def _attenuation_field(centre_deg: float, width_deg: float, reach: float, depth: float) -> np.ndarray:
    """Return the polar gain of a soft-tissue shadow centred at centre_deg, from radius reach to the base."""
    rr, tt, _ = _polar_grid()
    offset = (tt - centre_deg + 180) % 360 - 180
    return 1.0 - depth * np.exp(-0.5 * (offset / width_deg) ** 2) * np.clip((rr - reach) / 0.3, 0, 1)


def _artefact_chance(rate: float, bmi: float) -> float:
    """Return the chance of a marked attenuation artefact: rate at the cohort's mean BMI (28), odds x1.12 per point."""
    if rate >= 1.0:
        return 1.0
    odds = rate / (1.0 - rate) * np.exp(0.12 * (bmi - 28.0))
    return float(odds / (1.0 + odds))


def _patient_look(
    rng: np.random.Generator, difficulty: SpectDifficulty, patient: FakePatient, disease: _Disease, size: int
) -> _PatientLook:
    """Draw how this patient's rest and stress maps depart from the reader's scores."""
    d = difficulty
    factors: dict[str, float] = {}
    faint: list[str] = []
    for name in TERRITORIES:
        factor = d.defect_contrast
        if d.contrast_spread:
            factor *= rng.uniform(1 - d.contrast_spread, 1 + d.contrast_spread)
        if d.faint_defect_rate and rng.random() < d.faint_defect_rate:
            factor *= rng.uniform(0.1, 0.35)
            if any(disease.stress_scores[s - 1] for s in TERRITORY_SEGMENTS[name]):
                faint.append(name)
        factors[name] = factor
    contrast = None
    if any(f != 1.0 for f in factors.values()):
        contrast = np.array([1.0] + [factors[SEGMENT_TERRITORY[s]] for s in range(1, 18)])
    artefact, att_rest, att_stress = "", None, None
    bmi = patient.weight_kg / (patient.height_cm / 100.0) ** 2
    if d.artefact_rate and rng.random() < _artefact_chance(d.artefact_rate, bmi):
        # Breast or chest-wall shadow on the anterior wall (LAD), diaphragm on the inferior wall (RCA).
        if patient.sex == "F" or (bmi >= 30 and rng.random() < 0.35):
            artefact, centre, width, reach = "anterior", 90 + rng.normal(0, 15), rng.uniform(30, 45), 0.2
            depth = rng.uniform(0.1, 0.25) + 0.01 * max(bmi - 28, 0)
        else:
            artefact, centre, width, reach = "inferior", 270 + rng.normal(0, 10), rng.uniform(25, 40), 0.3
            depth = rng.uniform(0.12, 0.3)
        depth = min(depth, 0.4)
        # Mostly fixed, like scar; positioning differs between the two acquisitions.
        att_stress = _attenuation_field(centre, width, reach, depth)
        att_rest = _attenuation_field(centre, width, reach, depth * rng.uniform(0.6, 1.15))
    return _PatientLook(
        rest=_map_look(rng, d, disease.rest_scores, contrast, att_rest, size),
        stress=_map_look(rng, d, disease.stress_scores, contrast, att_stress, size),
        artefact=artefact,
        faint_territories=tuple(faint),
    )


def _map_look(
    rng: np.random.Generator,
    d: SpectDifficulty,
    scores: tuple[int, ...],
    contrast: np.ndarray | None,
    attenuation: np.ndarray | None,
    size: int,
) -> _MapLook:
    """Draw one map's drawn defect levels, rotation and intensity variation."""
    levels = None
    if d.score_jitter:
        drawn = np.clip(np.asarray(scores, float) + rng.normal(0, d.score_jitter, 17), 0, 4)
        levels = np.concatenate([[0.0], drawn])
    rotation = float(rng.normal(0, d.misregistration_deg)) if d.misregistration_deg else 0.0
    gain, gamma = None, 1.0
    if d.intensity_jitter:
        gamma = float(np.exp(rng.normal(0, d.intensity_jitter)))
        gain = 1.0 + d.intensity_jitter * smooth_noise(rng, (size, size), size / 4)
    return _MapLook(levels, contrast, attenuation, rotation, d.noise, gain, gamma)


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Return image rotated counter-clockwise by degrees about its centre."""
    size = image.shape[0]
    c = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    a = np.radians(degrees)
    x, y = cols - c, c - rows
    src_x = x * np.cos(a) + y * np.sin(a)
    src_y = -x * np.sin(a) + y * np.cos(a)
    return bilinear_sample(np.asarray(image, np.float32), c - src_y, c + src_x)


def _render_map(
    rng: np.random.Generator,
    scores: tuple[int, ...],
    anatomy: np.ndarray,
    size: int,
    look: _MapLook | None = None,
) -> np.ndarray:
    """Return an 8-bit polar map of scores over the patient's anatomy, normalised to its max."""
    look = look or _MapLook()
    _, _, seg = _polar_grid()
    if look.levels is None:
        loss_by_seg = _SCORE_LOSS[np.array((0,) + tuple(scores))] * rng.uniform(0.85, 1.15, 18)
    else:
        loss_by_seg = np.interp(look.levels, np.arange(len(_SCORE_LOSS)), _SCORE_LOSS) * rng.uniform(0.85, 1.15, 18)
    if look.contrast is not None:
        loss_by_seg = loss_by_seg * look.contrast
    loss = _smooth_polar(loss_by_seg[seg], 0.07, 14.0)
    rho, ri, ti = _cartesian_lookup(size)
    polar = 1.0 - np.clip(loss, 0, 0.9)
    if look.attenuation is not None:
        polar = polar * look.attenuation
    image = anatomy * polar[ri, ti]
    if look.rotation_deg:
        image = _rotate(image, look.rotation_deg)
    # Count noise is spatially correlated after reconstruction and filtering.
    image *= 1.0 + 0.03 * look.noise * smooth_noise(rng, (size, size), size / 25)
    if look.gain is not None:
        image *= look.gain
    edge = np.clip((1.0 - rho) * size * 0.47 / 2.0, 0.0, 1.0)
    image = blur3(image * edge, passes=2)
    image += 0.01 * look.noise * rng.standard_normal(image.shape) * (edge > 0)
    image = np.clip(image, 0, None)
    image /= image.max()
    if look.gamma != 1.0:
        image **= look.gamma
    return np.rint(image * 255).astype(np.uint8)


def _cartesian_lookup(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (radius fraction, polar row index, polar column index) for each map pixel."""
    c = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    rho = np.hypot(rows - c, cols - c) / (size * 0.47)
    ang = np.mod(np.degrees(np.arctan2(c - rows, cols - c)), 360.0)
    ri = np.clip((rho * _N_RHO).astype(int), 0, _N_RHO - 1)
    ti = np.clip((ang / 360.0 * _N_THETA).astype(int), 0, _N_THETA - 1)
    return rho, ri, ti


def _anatomy(rng: np.random.Generator, patient: FakePatient, size: int) -> np.ndarray:
    """Return the patient's normal uptake times soft-tissue attenuation (cartesian map)."""
    rr, tt, _ = _polar_grid()
    normal = 0.95 - 0.07 * np.exp(-0.5 * (rr / 0.12) ** 2)  # apical thinning
    normal -= 0.05 * np.clip((rr - 0.8) / 0.2, 0, 1)  # partial volume at the base
    # The membranous basal septum takes up less tracer.
    normal -= 0.12 * np.exp(-0.5 * (((tt - 180) / 30) ** 2)) * np.clip((rr - 0.75) / 0.25, 0, 1)
    bmi = patient.weight_kg / (patient.height_cm / 100.0) ** 2
    if patient.sex == "M":
        # Diaphragmatic attenuation of the inferior wall.
        depth, centre, reach = rng.uniform(0.05, 0.2), 270.0, 0.35
    else:
        # Breast attenuation of the anterior wall, worse with body size.
        depth = rng.uniform(0.04, 0.12) + 0.006 * max(bmi - 25, 0)
        centre, reach = 90.0 + rng.normal(0, 15), 0.25
    offset = (tt - centre + 180) % 360 - 180
    att = 1.0 - depth * np.exp(-0.5 * (offset / 40) ** 2) * np.clip((rr - reach) / 0.4, 0, 1)
    _, ri, ti = _cartesian_lookup(size)
    image = (normal * att)[ri, ti]
    # Patient-specific heterogeneity, identical at rest and stress.
    return image * (1.0 + 0.04 * smooth_noise(rng, (size, size), size / 8))


def _second_reader(
    rng: np.random.Generator, disease: _Disease, share: float
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return a second reader's (stress, rest) scores: ±1 on share of the stress segments, borderline ones first.

    Each patient gets floor(17 share) changed segments, one more with the fractional chance, so the
    cohort's share is share; rest scores are the first reader's, capped at the second's stress scores.
    """
    stress = np.array(disease.stress_scores)
    n = int(np.floor(17 * share)) + int(rng.random() < 17 * share - np.floor(17 * share))
    if n:
        sums = {name: stress[[s - 1 for s in segs]].sum() for name, segs in TERRITORY_SEGMENTS.items()}
        near_threshold = np.array([2 <= sums[SEGMENT_TERRITORY[s]] <= 6 for s in range(1, 18)])
        # Mild and moderate segments, and territories near the abnormal threshold, are where readers differ.
        weight = 1.0 + 2.0 * np.isin(stress, (1, 2)) + 2.0 * near_threshold
        for j in rng.choice(17, size=n, replace=False, p=weight / weight.sum()):
            step = 1 if stress[j] == 0 else -1 if stress[j] == 4 else int(rng.choice((-1, 1)))
            stress[j] += step
    rest = np.minimum(np.array(disease.rest_scores), stress)
    return tuple(int(x) for x in stress), tuple(int(x) for x in rest)


def _ica(rng: np.random.Generator, disease: _Disease) -> dict[str, float] | None:
    """Return angiographic stenoses (latent + reader error, 5% steps), or None for no ICA."""
    if rng.random() >= ICA_FRACTION:
        return None
    return {v: float(np.clip(5 * round((s + rng.normal(0, 12)) / 5), 0, 100)) for v, s in disease.stenosis.items()}


def _write_sc(
    path: Path,
    image: np.ndarray,
    *,
    rng: np.random.Generator,
    patient: FakePatient,
    study: FakeStudy,
    series_number: int,
    description: str,
) -> None:
    """Write image as a Secondary Capture (modality NM) polar map."""
    ds = base_dataset(
        sop_class_uid=SC_SOP_CLASS,
        rng=rng,
        namespace="spect",
        modality="NM",
        patient=patient,
        study=study,
        series_number=series_number,
        series_description=description,
        manufacturer="LUMEN SYNTHETIC SYSTEMS",
        model_name="PERFSIM QPS",
    )
    ds.StudyDescription = "MYOCARDIAL PERFUSION SPECT"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ConversionType = "WSD"
    ds.DateOfSecondaryCapture = study.study_date
    ds.TimeOfSecondaryCapture = study.study_time
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = image.tobytes()
    save_dataset(ds, path)


def generate_spect_cohort(
    out_dir: Path,
    *,
    n_patients: int,
    size: int = 290,
    seed: int = 0,
    fmt: str = "dicom",
    difficulty: str | SpectDifficulty = "hard",
    reader_disagreement: float = READER_DISAGREEMENT,
) -> list[SpectPatientTruth]:
    """Write rest/stress polar maps of n_patients under out_dir; return their truth.

    fmt "dicom" writes out_dir/patientNNNN/{rest,stress}.dcm; fmt "png" writes
    SPECT-NNNN_{rest,stress}.png plus out_dir/manifest.csv. difficulty ("easy", "hard" or a
    SpectDifficulty) sets how loosely the maps follow the scores; it changes the pictures only.
    reader_disagreement > 0 adds a second reader whose stress scores differ from the first's in
    that share of segments (0: no second reader).
    """
    if fmt not in ("dicom", "png"):
        raise ValueError(f"unknown format {fmt!r}; expected 'dicom' or 'png'")
    setting = spect_difficulty(difficulty)
    if (
        isinstance(reader_disagreement, bool)
        or not isinstance(reader_disagreement, int | float)
        or not 0.0 <= reader_disagreement <= 1.0
    ):
        raise ValueError(f"reader_disagreement must be between 0 and 1; got {reader_disagreement!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truths: list[SpectPatientTruth] = []
    rows: list[tuple[str, ...]] = []
    for i in range(n_patients):
        patient = fake_patient(rng, i)
        disease = _sample_disease(rng, patient)
        anatomy = _anatomy(rng, patient, size)
        look = _patient_look(np.random.default_rng([seed, i, _LOOK_STREAM]), setting, patient, disease, size)
        rest = _render_map(rng, disease.rest_scores, anatomy, size, look.rest)
        stress = _render_map(rng, disease.stress_scores, anatomy, size, look.stress)
        second: tuple[tuple[int, ...], tuple[int, ...]] | tuple[None, None] = (None, None)
        if reader_disagreement > 0:
            second = _second_reader(np.random.default_rng([seed, i, _READER_STREAM]), disease, reader_disagreement)
        if fmt == "dicom":
            study = fake_study(rng, patient, f"spect/{seed}")
            folder = out_dir / f"patient{i + 1:04d}"
            rest_path, stress_path = folder / "rest.dcm", folder / "stress.dcm"
            _write_sc(
                rest_path, rest, rng=rng, patient=patient, study=study, series_number=1, description="REST POLAR MAP"
            )
            _write_sc(
                stress_path,
                stress,
                rng=rng,
                patient=patient,
                study=study,
                series_number=2,
                description="STRESS POLAR MAP",
            )
            patient_id = patient.patient_id
        else:
            patient_id = f"SPECT-{i + 1:04d}"
            rest_path = out_dir / f"{patient_id}_rest.png"
            stress_path = out_dir / f"{patient_id}_stress.png"
            Image.fromarray(rest).save(rest_path)
            Image.fromarray(stress).save(stress_path)
            rows.append(
                (
                    patient_id,
                    rest_path.name,
                    stress_path.name,
                    str(patient.age),
                    patient.sex,
                    f"{patient.weight_kg:.1f}",
                    f"{patient.height_cm:.1f}",
                )
            )
        truths.append(
            SpectPatientTruth(
                patient_id=patient_id,
                patient_name=patient.name,
                rest_path=rest_path,
                stress_path=stress_path,
                age=patient.age,
                sex=patient.sex,
                weight_kg=patient.weight_kg,
                height_cm=patient.height_cm,
                stress_scores=disease.stress_scores,
                rest_scores=disease.rest_scores,
                territory_abnormal=territory_abnormal(disease.stress_scores),
                ica_stenosis=_ica(rng, disease),
                second_reader_stress_scores=second[0],
                second_reader_rest_scores=second[1],
                artefact=look.artefact,
                faint_territories=look.faint_territories,
            )
        )
    if fmt == "png":
        with open(out_dir / "manifest.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(MANIFEST_HEADER)
            writer.writerows(rows)
    return truths


__all__ = [
    "ICA_FRACTION",
    "MANIFEST_HEADER",
    "READER_DISAGREEMENT",
    "SC_SOP_CLASS",
    "SPECT_DIFFICULTIES",
    "SpectDifficulty",
    "SpectPatientTruth",
    "TERRITORY_SEGMENTS",
    "generate_spect_cohort",
    "ica_obstructive",
    "spect_difficulty",
]
