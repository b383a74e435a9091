"""Synthetic SPECT myocardial perfusion polar maps with segment scores (task: territories).

The latent truth is each patient's coronary stenoses. They drive ischaemia and scar, which
an "expert reader" turns into 17 segment scores; the images are rendered from those scores
(smooth defects that cross territory borders) plus the patient's normal variation, noise and
attenuation artefacts that are not defects. A subset of patients also had angiography (ICA),
whose stenoses are the latent ones plus measurement error.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .dicom_common import (
    FakePatient,
    FakeStudy,
    base_dataset,
    fake_patient,
    fake_study,
    save_dataset,
)
from .raster import blur3, smooth_noise
from .territories import TERRITORY_SEGMENTS, segment_of, territory_abnormal

SC_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.7"
MANIFEST_HEADER = ("patient", "rest_file", "stress_file", "age", "sex", "weight", "height")
ICA_FRACTION = 0.6

# Fraction of counts lost for each segment score (0 normal .. 4 absent).
_SCORE_LOSS = np.array([0.0, 0.17, 0.32, 0.48, 0.66])
# Segments of each territory from distal (apical) to proximal (basal).
_DISTAL_TO_PROXIMAL = {
    "LAD": (17, 13, 14, 7, 8, 1, 2),
    "RCA": (15, 10, 4, 9, 3),
    "LCX": (16, 11, 5, 12, 6),
}
_N_RHO, _N_THETA = 96, 360


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
    stenosis = {v: float(rng.beta(1.2, 4.0) * 60) for v in ("LM", "LAD", "LCX", "RCA")}
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


def _render_map(rng: np.random.Generator, scores: tuple[int, ...], anatomy: np.ndarray, size: int) -> np.ndarray:
    """Return an 8-bit polar map of scores over the patient's anatomy, normalised to its max."""
    _, _, seg = _polar_grid()
    loss_by_seg = _SCORE_LOSS[np.array((0,) + tuple(scores))] * rng.uniform(0.85, 1.15, 18)
    loss = _smooth_polar(loss_by_seg[seg], 0.07, 14.0)
    rho, ri, ti = _cartesian_lookup(size)
    image = anatomy * (1.0 - np.clip(loss, 0, 0.9))[ri, ti]
    # Count noise is spatially correlated after reconstruction and filtering.
    image *= 1.0 + 0.03 * smooth_noise(rng, (size, size), size / 25)
    edge = np.clip((1.0 - rho) * size * 0.47 / 2.0, 0.0, 1.0)
    image = blur3(image * edge, passes=2)
    image += 0.01 * rng.standard_normal(image.shape) * (edge > 0)
    image = np.clip(image, 0, None)
    image /= image.max()
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
    out_dir: Path, *, n_patients: int, size: int = 290, seed: int = 0, fmt: str = "dicom"
) -> list[SpectPatientTruth]:
    """Write rest/stress polar maps of n_patients under out_dir; return their truth.

    fmt "dicom" writes out_dir/patientNNNN/{rest,stress}.dcm; fmt "png" writes
    SPECT-NNNN_{rest,stress}.png plus out_dir/manifest.csv.
    """
    if fmt not in ("dicom", "png"):
        raise ValueError(f"unknown format {fmt!r}; expected 'dicom' or 'png'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truths: list[SpectPatientTruth] = []
    rows: list[tuple[str, ...]] = []
    for i in range(n_patients):
        patient = fake_patient(rng, i)
        disease = _sample_disease(rng, patient)
        anatomy = _anatomy(rng, patient, size)
        rest = _render_map(rng, disease.rest_scores, anatomy, size)
        stress = _render_map(rng, disease.stress_scores, anatomy, size)
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
            )
        )
    if fmt == "png":
        with open(out_dir / "manifest.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(MANIFEST_HEADER)
            writer.writerows(rows)
    return truths


def ica_obstructive(ica: dict[str, float | None]) -> dict[str, bool]:
    """Return per-territory obstructive CAD by ICA: LM >= 50% (LAD, LCX) or vessel >= 70%; missing counts as 0."""
    lm = (ica.get("LM") or 0.0) >= 50
    return {
        "LAD": (ica.get("LAD") or 0.0) >= 70 or lm,
        "LCX": (ica.get("LCX") or 0.0) >= 70 or lm,
        "RCA": (ica.get("RCA") or 0.0) >= 70,
    }


__all__ = [
    "ICA_FRACTION",
    "MANIFEST_HEADER",
    "SC_SOP_CLASS",
    "SpectPatientTruth",
    "TERRITORY_SEGMENTS",
    "generate_spect_cohort",
    "ica_obstructive",
]
