"""Tiny hand-built DICOM files for the ingest checks (fast; realistic data comes from learning.cohorts)."""

from __future__ import annotations

import io

import numpy as np
from pydicom import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

XA_CLASS = "1.2.840.10008.5.1.4.1.1.12.1"
IVOCT_CLASS = "1.2.840.10008.5.1.4.1.1.14.1"  # IVOCT Image Storage - For Presentation
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
MPEG4 = "1.2.840.10008.1.2.4.102"


def dataset(
    *,
    modality: str = "XA",
    frames: int = 4,
    size: int = 32,
    sop_class: str = XA_CLASS,
    patient_id: str = "MRN0001",
    patient_name: str = "DOE^JANE",
    seed: int = 0,
    series_description: str = "",
    samples: int = 1,
) -> Dataset:
    """Return a minimal valid image dataset with identifying data filled in."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19580312"
    ds.PatientSex = "F"
    ds.PatientAge = "067Y"
    ds.PatientWeight = "71"
    ds.PatientSize = "1.64"
    ds.InstitutionName = "St. Example Hospital"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.AccessionNumber = "ACC998877"
    ds.StudyDate = "20240105"
    ds.SeriesNumber = 3
    ds.InstanceNumber = 1
    ds.SeriesDescription = series_description
    rng = np.random.default_rng(seed)
    shape = (frames, size, size) if samples == 1 else (frames, size, size, 3)
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    if frames == 1:
        pixels = pixels[0]
    else:
        ds.NumberOfFrames = frames
        ds.FrameTime = 66.7
    ds.Rows = size
    ds.Columns = size
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PositionerPrimaryAngle = 30
    ds.PositionerSecondaryAngle = -20
    ds.DistanceSourceToDetector = 1040
    ds.DistanceSourceToPatient = 760
    ds.PixelData = pixels.tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def xa_bytes(**kwargs) -> bytes:
    return to_bytes(dataset(**kwargs))


def mpeg4_bytes() -> bytes:
    """An XA run claiming H.264 video transfer syntax (common for cine exports; no decoder here)."""
    ds = dataset()
    ds.file_meta.TransferSyntaxUID = UID(MPEG4)
    ds.PixelData = encapsulate([b"\x00\x00\x00\x01" + b"\x65" * 64])
    ds["PixelData"].VR = "OB"
    return to_bytes(ds)


def no_pixels_bytes() -> bytes:
    ds = dataset()
    del ds.PixelData
    return to_bytes(ds)
