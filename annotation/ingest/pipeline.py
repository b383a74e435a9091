"""Ingest one DICOM file into a project: check, de-identify, render once, store, and make its items."""

from __future__ import annotations

import copy
import datetime as dt
import io
import logging
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from pydicom import Dataset
from pydicom.dataelem import DataElement, RawDataElement

from annotation.ingest import render
from annotation.ingest.burned_in import OcrUnavailable, burned_in_attribute, text_regions
from annotation.ingest.deid import deidentify, patient_key_from, remap_uid
from annotation.ingest.dicom_file import (
    CheckedDicom,
    check_dataset,
    cine_timing,
    decode_frames,
    decode_pixels,
    float_or_none,
    frame_batches,
    is_deferred,
    pixel_spacing,
    read_dataset_file,
)
from annotation.ingest.ecg import ingest_ecg, is_ecg
from annotation.ingest.results import FileResult, Outcome, Reason, Rejection
from annotation.ingest.sources import SourceFile
from annotation.ingest.store import (
    StoragePaths,
    media_path,
    patient_for,
    series_for,
    sha256_of_file,
    study_for,
    undo_files_on_error,
    unpaired_counterpart,
)
from annotation.models import (
    BurnedInReview,
    Instance,
    Item,
    ItemKind,
    Patient,
    PolarMap,
    Project,
    SpectExam,
    Study,
)
from annotation.project_settings import ProjectSettings
from annotation.tasks import StoredDicom, label_task
from annotation.tasks.frames import enqueue

logger = logging.getLogger(__name__)
PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class IngestLimits:
    max_file_bytes: int
    max_decoded_bytes: int


def limits_from_settings() -> IngestLimits:
    return IngestLimits(
        max_file_bytes=settings.LUMEN_MAX_FILE_BYTES,
        max_decoded_bytes=getattr(settings, "LUMEN_MAX_DECODED_BYTES", 4 * 1024**3),
    )


def ingest_dicom(
    project: Project,
    config: ProjectSettings,
    source: SourceFile,
    limits: IngestLimits,
    record: Callable[[FileResult], None] | None = None,
) -> FileResult:
    """Store one DICOM file whole, report it as a duplicate, or reject it with the reason; never half-store.

    `record` is called with a stored file's result inside the transaction that stores it (an import job writes
    the file's row there, so a crash can never leave a stored file without its row, or a row without its file).
    """
    try:
        if source.size > limits.max_file_bytes:
            raise Rejection(
                Reason.TOO_LARGE, f"too large: {source.size} bytes, the limit is {limits.max_file_bytes} bytes per file"
            )
        with _member_errors(), source.local() as path:
            ds = read_dataset_file(path)
            if is_ecg(ds):  # a waveform, not an image: stored with its patient, no items
                return ingest_ecg(
                    project, config, source.name, ds, path, sha256_of_file(path), limits.max_decoded_bytes, record
                )
            checked = check_dataset(
                ds,
                task_type=project.task_type,
                accepted_modalities=config.accepted_modalities,
                max_decoded_bytes=limits.max_decoded_bytes,
            )
            secret = settings.PSEUDONYM_KEY
            new_sop_uid = remap_uid(str(ds.SOPInstanceUID), secret)
            existing = Instance.objects.filter(project=project, sop_instance_uid=new_sop_uid)
            if first := existing.values_list("pk", "sha256").first():
                return _duplicate(source.name, *first, sha256_of_file(path))
            # The file is hashed on a thread of its own while its frames are decoded and cached.
            with ThreadPoolExecutor(max_workers=1) as hasher:
                sha256 = hasher.submit(sha256_of_file, path)
                return _store(project, config, source, checked, path, sha256, new_sop_uid, record)
    except Rejection as rejection:
        return FileResult(source.name, Outcome.REJECTED, str(rejection.reason), rejection.message)
    except OSError as exc:
        # Disk trouble: logged by type only (file names may carry identifiers), reported to the uploader.
        logger.error("import into project %s could not write a file: %s", project.pk, type(exc).__name__)
        return FileResult(
            source.name,
            Outcome.REJECTED,
            str(Reason.STORAGE_FAILED),
            f"could not be stored ({exc.strerror or type(exc).__name__}); nothing was kept",
        )


@contextmanager
def _member_errors() -> Iterator[None]:
    """A damaged zip member (bad CRC, unsupported compression) is that file's rejection, not a server error."""
    try:
        yield
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, EOFError) as exc:
        raise Rejection(Reason.BAD_ARCHIVE, f"the archive member cannot be extracted ({exc})") from None


def render_frame_cache(path: Path, ds: Dataset, directory: Path, fmt: str, lmode: Path | None) -> list[np.ndarray]:
    """Decode a run batch by batch and encode each batch into the frame cache (and the OCT L-mode strip).

    Returns the first, middle and last frames as displayed, for the burned-in text check.
    """
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    to_uint8 = render.display_mapping(ds, decode_frames(path, render.sample_indices(frames)))
    wanted = sorted({0, frames // 2, frames - 1})
    samples: list[np.ndarray] = []
    strips = []
    with render.FrameWriter(directory, fmt=fmt, quality=render.frame_quality(fmt)) as writer:
        for batch in frame_batches(path, settings.LUMEN_INGEST_BATCH_FRAMES):
            display = to_uint8(batch)
            first = writer.written
            samples.extend(display[i - first] for i in wanted if first <= i < first + len(display))
            writer.write(display)
            if lmode is not None:
                strips.append(render.lmode_strip(display))
    if writer.written != frames:
        raise Rejection(Reason.TRUNCATED, f"truncated: {writer.written} of {frames} frames could be decoded")
    if lmode is not None:
        _write_png(np.concatenate(strips, axis=1), lmode)
    return samples


def _text_regions(config: ProjectSettings, frames: list[np.ndarray]) -> tuple[list[list[int]] | None, bool]:
    """The burned-in text check when the project asks for it: (boxes or None when not run, whether a lead must
    look). A check that was asked for but cannot run here (Tesseract missing) leaves the file to a lead."""
    if not config.ocr_burned_in_text or not frames:
        return None, False
    try:
        regions = text_regions(frames)
    except OcrUnavailable:
        logger.error("burned-in text check could not run: tesseract-ocr is not installed on this host")
        return None, True
    return regions, bool(regions)


def _detach_deferred_pixels(ds: Dataset) -> RawDataElement | None:
    """Remove and return the pixel data element when it was left in the file (reading `ds` would load it)."""
    raw = ds.get_item(PIXEL_DATA, keep_deferred=True)
    if is_deferred(raw):
        del ds[PIXEL_DATA]
        return raw
    return None


def _save_copying_pixels(ds: Dataset, pixels: RawDataElement | None, source: Path, target: Path) -> None:
    """Write `ds` to `target`, with detached pixel data copied across from the source file in pieces."""
    if pixels is None:
        ds.save_as(target, enforce_file_format=True)
        return
    vr = pixels.VR or ("OW" if int(ds.get("BitsAllocated", 8) or 8) > 8 else "OB")
    with source.open("rb") as handle:
        ds[PIXEL_DATA] = DataElement(PIXEL_DATA, vr, FileWindow(handle, pixels.value_tell, pixels.length))
        ds.save_as(target, enforce_file_format=True)


class FileWindow(io.BufferedIOBase):
    """A read-only view of `length` bytes of an open file from `start`: pydicom writes such a buffer's value in
    chunks (a buffered element value), so a stored file's pixel data never passes through memory whole."""

    def __init__(self, handle: BinaryIO, start: int, length: int) -> None:
        super().__init__()
        self._handle, self._start, self._length, self._position = handle, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(0, base + offset), self._length)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        remaining = self._length - self._position
        count = remaining if size is None or size < 0 else min(size, remaining)
        self._handle.seek(self._start + self._position)
        data = self._handle.read(count)
        self._position += len(data)
        return data


def _duplicate(name: str, instance_id: int, stored_sha256: str, sha256: str) -> FileResult:
    """The file's SOPInstanceUID is taken: the same file again, or (other bytes) a conflict that keeps the first."""
    if stored_sha256 and sha256 != stored_sha256:
        return FileResult(
            name,
            Outcome.REJECTED,
            str(Reason.UID_CONFLICT),
            f"has the SOPInstanceUID of instance {instance_id} but different content; the stored file is kept and "
            "this one was not stored (a re-export with changed pixels or tags needs a new SOPInstanceUID)",
            instance_id=instance_id,
        )
    return FileResult(
        name,
        Outcome.DUPLICATE,
        "duplicate",
        f"already imported (same SOPInstanceUID and content) as instance {instance_id}",
        instance_id=instance_id,
    )


def _store(
    project: Project,
    config: ProjectSettings,
    source: SourceFile,
    checked: CheckedDicom,
    path: Path,
    hashing: Future[str],
    new_sop_uid: str,
    record: Callable[[FileResult], None] | None,
) -> FileResult:
    ds = checked.dataset
    key = patient_key_from(ds)
    secret = settings.PSEUDONYM_KEY
    frame_time, frame_rate = cine_timing(ds)
    spacing_row, spacing_col = pixel_spacing(ds)
    original_study_uid = str(ds.StudyInstanceUID)
    original_series_uid = str(ds.SeriesInstanceUID)
    fmt = settings.LUMEN_FRAME_FORMAT
    regions, text_found = None, False
    try:
        with undo_files_on_error(project) as paths, ThreadPoolExecutor(max_workers=1) as saver:
            cache = label_task(project.task_type).frame_cache()
            if cache == "polar_maps":
                for index, frame in enumerate(render.frames_as_uint8(ds, decode_pixels(ds))):
                    _write_png(render.normalise_polar_map(frame), media_path(paths.polar(str(index))))
            # The de-identified copy (its own header; pixel data left in the file is copied across in chunks) is
            # written on a thread while the frames are decoded from the file as uploaded and cached batch by batch.
            pixels = _detach_deferred_pixels(ds)  # de-identification walks every element: keep it off the pixels
            stored = copy.deepcopy(ds)
            deidentify(stored, patient=key, key=secret)
            dicom_path = media_path(paths.dicom)
            dicom_path.parent.mkdir(parents=True, exist_ok=True)
            saving = saver.submit(_save_copying_pixels, stored, pixels, path, dicom_path)
            if cache in ("frames", "pullback"):
                lmode = media_path(paths.frames) / render.LMODE_NAME if cache == "pullback" else None
                displayed = render_frame_cache(path, ds, media_path(paths.frames), fmt, lmode)
                regions, text_found = _text_regions(config, displayed)
            saving.result()
            ds = stored  # what the rows below describe is the stored, de-identified file
            burned_in = burned_in_attribute(ds.get("BurnedInAnnotation"))
            flagged = burned_in == "YES" or text_found
            series_description = str(ds.get("SeriesDescription", "") or "")
            sha256 = hashing.result()
            with transaction.atomic():
                patient = patient_for(key, lock=label_task(project.task_type).locks_patient())
                study = study_for(
                    project,
                    patient,
                    uid=remap_uid(original_study_uid, secret),
                    description=str(ds.get("StudyDescription", "") or ""),
                    date=_date(str(ds.get("StudyDate", "") or "")),
                )
                series = series_for(
                    study,
                    uid=remap_uid(original_series_uid, secret),
                    modality=checked.modality,
                    description=series_description,
                    number=_int(ds.get("SeriesNumber")),
                )
                instance = Instance.objects.create(
                    project=project,
                    series=series,
                    sop_instance_uid=new_sop_uid,
                    sop_class_uid=str(ds.SOPClassUID),
                    modality=checked.modality,
                    transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
                    instance_number=_int(ds.get("InstanceNumber")),
                    rows=int(ds.Rows),
                    columns=int(ds.Columns),
                    number_of_frames=checked.frames,
                    samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1),
                    photometric_interpretation=str(ds.get("PhotometricInterpretation", "")),
                    frame_time_ms=frame_time,
                    frame_rate=frame_rate,
                    positioner_primary_angle=float_or_none(ds.get("PositionerPrimaryAngle")),
                    positioner_secondary_angle=float_or_none(ds.get("PositionerSecondaryAngle")),
                    distance_source_to_detector=float_or_none(ds.get("DistanceSourceToDetector")),
                    distance_source_to_patient=float_or_none(ds.get("DistanceSourceToPatient")),
                    pixel_spacing_row_mm=spacing_row,
                    pixel_spacing_col_mm=spacing_col,
                    series_description=series_description[:256],
                    burned_in_annotation=burned_in,
                    text_regions=regions,
                    burned_in_review=BurnedInReview.PENDING if flagged else BurnedInReview.NONE,
                    file_path=paths.dicom,
                    file_size=dicom_path.stat().st_size,
                    sha256=sha256,
                    frames_dir=paths.frames,
                    frame_format=fmt,
                )
                created = _make_items(project, checked, instance, patient, study, paths, sha256)
                message = f"{created} item(s) created" if created else _waiting(checked.phases)
                result = FileResult(
                    source.name, Outcome.STORED, "", message, instance_id=instance.pk, items_created=created
                )
                if record is not None:
                    record(result)
    except IntegrityError:
        # Another import stored the same SOPInstanceUID between our check and our insert.
        existing = Instance.objects.filter(project=project, sop_instance_uid=new_sop_uid).values_list("pk", "sha256")
        if existing:
            return _duplicate(source.name, *existing[0], hashing.result())
        logger.exception("import into project %s failed while storing a file", project.pk)
        raise Rejection(Reason.STORAGE_FAILED, "could not be stored (database constraint); nothing was kept") from None
    return result


def _make_items(
    project: Project,
    checked: CheckedDicom,
    instance: Instance,
    patient: Patient,
    study: Study,
    paths: StoragePaths,
    sha256: str,
) -> int:
    # Burned-in text waits for a lead's decision (annotation.services.burned_in): its items want no labels yet.
    stored = StoredDicom(
        project=project,
        instance=instance,
        patient=patient,
        study=study,
        frames=checked.frames,
        phases=checked.phases,
        clinical=checked.clinical,
        paths=paths,
        sha256=sha256,
        held=instance.burned_in_review == BurnedInReview.PENDING,
    )
    return label_task(project.task_type).items_from_dicom(stored)


def _waiting(phases: tuple[str, ...]) -> str:
    if "" in phases:
        which = "its map" if len(phases) == 1 else "which frame is rest and which is stress"
        return f"stored; the file does not say {which}: a lead sets the phase on the project's SPECT pairing list"
    if len(phases) == 1:
        return f"stored; waiting for the matching {_other(phases[0])} map"
    return "stored"


def pair_polar_map(project: Project, patient: Patient, study: Study | None, polar: PolarMap) -> int:
    """Make a SPECT item when `polar` completes a rest + stress pair; return the number of items created.

    Needs the patient row locked by the caller's transaction so two halves arriving at once pair once. The exam
    takes the clinical features the maps were stored with (either map's, the new one first).
    """
    counterpart = unpaired_counterpart(project, patient, study, polar.phase)
    if counterpart is None:
        return 0
    rest, stress = (polar, counterpart) if polar.phase == "rest" else (counterpart, polar)
    item = Item.objects.create(
        project=project,
        kind=ItemKind.SPECT_PAIR,
        patient=patient,
        instance=None,
        title=f"Patient {patient.pseudonym} · rest + stress",
    )
    enqueue(project, [item.pk])
    clinical = polar.clinical or counterpart.clinical or {}
    SpectExam.objects.create(
        item=item,
        rest=rest,
        stress=stress,
        age=clinical.get("age"),
        sex=clinical.get("sex") or "",
        weight_kg=clinical.get("weight_kg"),
        height_cm=clinical.get("height_cm"),
    )
    return 1


def view_name(instance: Instance) -> str:
    """Describe the C-arm view, e.g. "LAO 30 / CRA 20" (positive primary = LAO, positive secondary = CRA)."""
    primary, secondary = instance.positioner_primary_angle, instance.positioner_secondary_angle
    if primary is None or secondary is None:
        return "view unknown"
    side = "LAO" if primary >= 0 else "RAO"
    tilt = "CRA" if secondary >= 0 else "CAU"
    return f"{side} {abs(primary):.0f} / {tilt} {abs(secondary):.0f}"


def _write_png(image, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render.encode_image(image, "png", 100))


def _other(phase: str) -> str:
    return "stress" if phase == "rest" else "rest"


def _date(value: str) -> dt.date | None:
    """The (already shifted) StudyDate of a stored file as a date; None when it is empty or not a whole date."""
    try:
        return dt.datetime.strptime(value.strip(), "%Y%m%d").date()
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    """Return a DICOM value as an int, or None when it is missing or not a number (pydicom values are untyped)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
