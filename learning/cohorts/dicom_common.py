"""Shared DICOM writing: fake patients and studies, deterministic UIDs, common modules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

_FIRST_F = (
    "JANE",
    "MARY",
    "LINDA",
    "SUSAN",
    "KAREN",
    "ANNA",
    "MARIA",
    "ELENA",
    "SOFIA",
    "HELGA",
    "INGRID",
    "CLAIRE",
    "MONIQUE",
    "YUKI",
    "PRIYA",
    "FATIMA",
    "ROSA",
    "GRETA",
    "NORA",
    "IRIS",
)
_FIRST_M = (
    "JOHN",
    "ROBERT",
    "MICHAEL",
    "DAVID",
    "JAMES",
    "PETER",
    "HANS",
    "KLAUS",
    "PIERRE",
    "LUCA",
    "AHMED",
    "HIROSHI",
    "RAJ",
    "CARLOS",
    "IVAN",
    "OLAF",
    "MARCO",
    "THOMAS",
    "ERIK",
    "SAMUEL",
)
_LAST = (
    "DOE",
    "SMITH",
    "MUELLER",
    "SCHMIDT",
    "GARCIA",
    "ROSSI",
    "DUBOIS",
    "TANAKA",
    "KOWALSKI",
    "JOHANSSON",
    "NOVAK",
    "PATEL",
    "NGUYEN",
    "OKAFOR",
    "MARTIN",
    "BAUER",
    "FISCHER",
    "WEBER",
    "HOFFMANN",
    "SILVA",
    "JENSEN",
    "MORENO",
    "KIM",
    "LEHMANN",
    "WAGNER",
    "BECKER",
    "HUBER",
)
_INSTITUTIONS = (
    "ST. ELSEWHERE HEART CENTER",
    "GENERAL HOSPITAL CARDIOLOGY",
    "UNIVERSITY CLINIC NORTH",
    "MERCY CARDIAC INSTITUTE",
    "RIVERSIDE MEDICAL CENTER",
)
_DOCTORS = ("HOUSE^GREGORY", "GREY^MEREDITH", "ROSS^DOUG", "KILDARE^JAMES", "QUINN^MICHAELA")
_OPERATORS = ("TECH^ALEX", "TECH^SAM", "RADIOGRAPHER^KIM", "NURSE^PAT", "TECH^JORDAN")

# Pydicom's root keeps generated UIDs valid; the entropy makes them reproducible from a seed.
_UID_PREFIX = "1.2.826.0.1.3680043.8.498."


@dataclass(frozen=True)
class FakePatient:
    """A synthetic patient whose identifiers look like real PHI."""

    index: int
    name: str  # DICOM PN, e.g. "DOE^JANE"
    patient_id: str  # e.g. "MRN0012345"
    birth_date: str  # YYYYMMDD
    sex: str  # "M" or "F"
    age: int
    weight_kg: float
    height_cm: float


@dataclass(frozen=True)
class FakeStudy:
    """A synthetic study (exam) shared by all series of one patient visit."""

    study_uid: str
    accession_number: str
    study_id: str
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    institution: str
    referring_physician: str
    operator: str
    performing_physician: str


def fake_patient(rng: np.random.Generator, index: int) -> FakePatient:
    """Return a plausible fake patient, drawn from rng."""
    sex = "M" if rng.random() < 0.6 else "F"
    first = rng.choice(_FIRST_M if sex == "M" else _FIRST_F)
    last = rng.choice(_LAST)
    age = int(np.clip(rng.normal(64, 10), 30, 92))
    birth = dt.date(2024 - age, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
    height = float(rng.normal(176, 7) if sex == "M" else rng.normal(163, 6))
    bmi = float(np.clip(rng.normal(28, 4.5), 18, 45))
    weight = bmi * (height / 100.0) ** 2
    return FakePatient(
        index=index,
        name=f"{last}^{first}",
        patient_id=f"MRN{int(rng.integers(100_000, 9_999_999)):07d}",
        birth_date=birth.strftime("%Y%m%d"),
        sex=sex,
        age=age,
        weight_kg=round(weight, 1),
        height_cm=round(height, 1),
    )


def deterministic_uid(rng: np.random.Generator, namespace: str) -> str:
    """Return a valid DICOM UID that depends only on rng's state and namespace."""
    token = rng.integers(0, 2**63 - 1, size=2)
    return str(generate_uid(prefix=_UID_PREFIX, entropy_srcs=[namespace, *map(str, token)]))


def fake_study(rng: np.random.Generator, patient: FakePatient, namespace: str) -> FakeStudy:
    """Return a fake study for patient with reproducible UIDs and PHI-like fields."""
    day = dt.date(2016, 1, 1) + dt.timedelta(days=int(rng.integers(0, 9 * 365)))
    seconds = int(rng.integers(7 * 3600, 18 * 3600))
    return FakeStudy(
        study_uid=deterministic_uid(rng, f"{namespace}/study/{patient.patient_id}"),
        accession_number=f"ACC{int(rng.integers(10**7, 10**8 - 1))}",
        study_id=str(int(rng.integers(1000, 99999))),
        study_date=day.strftime("%Y%m%d"),
        study_time=f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}",
        institution=str(rng.choice(_INSTITUTIONS)),
        referring_physician=str(rng.choice(_DOCTORS)),
        operator=str(rng.choice(_OPERATORS)),
        performing_physician=str(rng.choice(_DOCTORS)),
    )


def patient_age_string(age: int) -> str:
    """Return a DICOM AS value such as '063Y'."""
    return f"{age:03d}Y"


def base_dataset(
    *,
    sop_class_uid: str,
    rng: np.random.Generator,
    namespace: str,
    modality: str,
    patient: FakePatient,
    study: FakeStudy,
    series_number: int,
    series_description: str,
    manufacturer: str,
    model_name: str,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Dataset:
    """Return a dataset with SOP common, patient, study, series and equipment modules.

    SOP instance and series UIDs are drawn from `rng` under `namespace` (e.g. "xa"), so a seed fixes them.
    """
    sop_instance_uid = deterministic_uid(rng, f"{namespace}/sop/{patient.patient_id}/{series_number}")
    series_uid = deterministic_uid(rng, f"{namespace}/series/{patient.patient_id}/{series_number}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "LUMEN_COHORTS"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = UID(sop_class_uid)
    ds.SOPInstanceUID = UID(sop_instance_uid)
    # Patient module: everything here is fake PHI the platform must strip on ingest.
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = "LUMEN-SYNTH-HIS"
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = patient_age_string(patient.age)
    ds.PatientWeight = f"{patient.weight_kg:.1f}"
    ds.PatientSize = f"{patient.height_cm / 100.0:.2f}"
    ds.OtherPatientIDs = f"H{patient.patient_id[3:]}"
    # General study.
    ds.StudyInstanceUID = UID(study.study_uid)
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.ReferringPhysicianName = study.referring_physician
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    ds.StudyDescription = "CARDIAC CATH" if modality == "XA" else f"CARDIAC {modality}"
    # General series.
    ds.Modality = modality
    ds.SeriesInstanceUID = UID(series_uid)
    ds.SeriesNumber = series_number
    ds.SeriesDate = study.study_date
    ds.SeriesTime = study.study_time
    ds.SeriesDescription = series_description
    ds.OperatorsName = study.operator
    ds.PerformingPhysicianName = study.performing_physician
    ds.BodyPartExamined = "HEART"
    # General equipment.
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = model_name
    ds.InstitutionName = study.institution
    ds.InstitutionAddress = "1 HOSPITAL WAY, SPRINGFIELD"
    ds.StationName = "CATHLAB1" if modality == "XA" else f"{modality}STATION"
    ds.DeviceSerialNumber = "SN0042"
    ds.SoftwareVersions = "lumen-cohorts 1.0"
    # General image.
    ds.InstanceNumber = 1
    ds.ContentDate = study.study_date
    ds.ContentTime = study.study_time
    ds.AcquisitionDate = study.study_date
    ds.AcquisitionTime = study.study_time
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "NO"
    return ds


def save_dataset(ds: Dataset, path: Path) -> None:
    """Write ds as a DICOM Part 10 file, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def to_uint(image: np.ndarray, bits_stored: int) -> np.ndarray:
    """Scale a [0, 1] float image to unsigned integers of bits_stored bits."""
    top = (1 << bits_stored) - 1
    dtype = np.uint8 if bits_stored <= 8 else np.uint16
    scaled = image * np.float32(top)
    np.clip(scaled, 0, top, out=scaled)
    scaled += 0.5  # round half up; values are non-negative
    return scaled.astype(dtype)
