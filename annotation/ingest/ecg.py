"""12-lead ECGs as DICOM waveforms: find the 12-lead group, check it, and store the file with its patient.

An ECG is no labelling item: it is stored de-identified exactly like an image (the same patient lookup, UID remap,
date shift and profile, `annotation.ingest.deid`) and attached to the pseudonymous patient, for the ECG ↔
angiography pairs (`annotation.services.ecg`). Only projects that take coronary angiography (XA) keep ECGs.

A file may hold several multiplex groups (a 10 s rhythm strip and a median beat, say). The 12-lead group is the
one whose channels include the twelve standard leads; when several do, the one with the most samples (the rhythm
strip) is used, the first of those on a tie. The stored file keeps every group; readers pick the same one.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from pydicom import Dataset
from pydicom.uid import (
    AmbulatoryECGWaveformStorage,
    General32bitECGWaveformStorage,
    GeneralECGWaveformStorage,
    TwelveLeadECGWaveformStorage,
)
from pydicom.valuerep import DT

from annotation.ingest.deid import deidentify, patient_key_from, remap_uid
from annotation.ingest.results import FileResult, Outcome, Reason, Rejection, StoredKind
from annotation.ingest.store import media_path, patient_for, undo_files_on_error
from annotation.models import Ecg, Project
from annotation.project_settings import ProjectSettings

ECG_SOP_CLASSES = frozenset(
    {
        TwelveLeadECGWaveformStorage,
        GeneralECGWaveformStorage,
        General32bitECGWaveformStorage,
        AmbulatoryECGWaveformStorage,
    }
)
STANDARD_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
# The project modality that admits ECGs: they pair with coronary angiography.
ANGIOGRAPHY = "XA"
# (WaveformBitsAllocated, WaveformSampleInterpretation) read as plain integers; mu-law / A-law (MB, AB) are not.
SAMPLE_TYPES = {
    (8, "SB"): np.int8,
    (8, "UB"): np.uint8,
    (16, "SS"): np.int16,
    (16, "US"): np.uint16,
    (32, "SL"): np.int32,
    (32, "UL"): np.uint32,
}
READABLE = ", ".join(f"{bits}-bit {kind}" for bits, kind in SAMPLE_TYPES)
_LEAD = re.compile(r"^(?:lead\s+)?(i{1,3}|av[rlf]|v[1-6])(?:\s*\(.*\))?$", re.IGNORECASE)
_CANONICAL = {name.lower(): name for name in STANDARD_LEADS}


def is_ecg(ds: Dataset) -> bool:
    """Return whether a parsed file is an ECG waveform (by its SOP class), to be stored as an ECG."""
    return str(ds.get("SOPClassUID", "") or "") in ECG_SOP_CLASSES


def lead_name(meaning: str) -> str:
    """Name a channel by its standard lead ("Lead I (Einthoven)" → "I", "Lead aVR" → "aVR"); others as written."""
    match = _LEAD.match(meaning.strip())
    return _CANONICAL[match.group(1).lower()] if match else meaning.strip()


@dataclass(frozen=True)
class EcgGroup:
    """The 12-lead multiplex group of a file: its index in WaveformSequence, channel names and units."""

    index: int
    leads: tuple[str, ...]
    units: tuple[str, ...]
    sampling_frequency: float
    sample_count: int

    @property
    def duration_s(self) -> float:
        return self.sample_count / self.sampling_frequency


def twelve_lead_group(ds: Dataset) -> EcgGroup:
    """Return the file's 12-lead group after checking every group's layout; raise a Rejection naming the problem."""
    groups = list(ds.get("WaveformSequence") or [])
    if not groups:
        raise Rejection(Reason.NO_WAVEFORM, "no waveform: the ECG file has no Waveform Sequence (5400,0100)")
    found: list[EcgGroup] = []
    seen: list[str] = []
    for index, item in enumerate(groups):
        group = _checked_group(index, item)
        seen.append(f"group {index + 1}: {len(group.leads)} channel(s) ({', '.join(group.leads) or 'unnamed'})")
        if set(STANDARD_LEADS) <= set(group.leads):
            found.append(group)
    if not found:
        raise Rejection(
            Reason.NO_12_LEAD_GROUP,
            f"no 12-lead group: no multiplex group holds the leads {', '.join(STANDARD_LEADS)}; the file has "
            + "; ".join(seen),
        )
    return max(found, key=lambda g: (g.sample_count, -g.index))


def _checked_group(index: int, item: Dataset) -> EcgGroup:
    where = f"waveform group {index + 1}"
    for keyword in (
        "NumberOfWaveformChannels",
        "NumberOfWaveformSamples",
        "SamplingFrequency",
        "WaveformBitsAllocated",
        "WaveformSampleInterpretation",
        "WaveformData",
        "ChannelDefinitionSequence",
    ):
        if item.get(keyword) in (None, ""):
            raise Rejection(Reason.BAD_WAVEFORM, f"bad waveform: {where} lacks {keyword}")
    try:
        channels, samples = int(item.NumberOfWaveformChannels), int(item.NumberOfWaveformSamples)
        frequency = float(item.SamplingFrequency)
        kind = (int(item.WaveformBitsAllocated), str(item.WaveformSampleInterpretation))
    except (TypeError, ValueError) as exc:
        raise Rejection(Reason.BAD_WAVEFORM, f"bad waveform: {where} has an unreadable size or rate ({exc})") from None
    if channels < 1 or samples < 1 or not np.isfinite(frequency) or frequency <= 0:
        raise Rejection(
            Reason.BAD_WAVEFORM,
            f"bad waveform: {where} declares {channels} channel(s), {samples} sample(s) at {frequency} Hz",
        )
    if kind not in SAMPLE_TYPES:
        raise Rejection(
            Reason.BAD_WAVEFORM,
            f"bad waveform: {where} stores {kind[0]}-bit {kind[1]} samples; only {READABLE} samples are read",
        )
    definitions = list(item.ChannelDefinitionSequence)
    if len(definitions) != channels:
        raise Rejection(
            Reason.BAD_WAVEFORM,
            f"bad waveform: {where} declares {channels} channel(s) but defines {len(definitions)}",
        )
    expected = channels * samples * kind[0] // 8
    present = len(item.WaveformData)
    if present not in (expected, expected + 1):  # one pad byte evens an odd length
        raise Rejection(
            Reason.BAD_WAVEFORM,
            f"bad waveform: {where} holds {present} bytes of Waveform Data, but {channels} channel(s) × {samples} "
            f"sample(s) × {kind[0] // 8} byte(s) need {expected}",
        )
    leads = tuple(lead_name(_channel_meaning(d)) for d in definitions)
    units = tuple(_channel_units(d) for d in definitions)
    return EcgGroup(index=index, leads=leads, units=units, sampling_frequency=frequency, sample_count=samples)


def _channel_meaning(definition: Dataset) -> str:
    sources = definition.get("ChannelSourceSequence") or []
    return str(sources[0].get("CodeMeaning", "") or "") if sources else ""


def _channel_units(definition: Dataset) -> str:
    units = definition.get("ChannelSensitivityUnitsSequence") or []
    return str(units[0].get("CodeValue", "") or "") if units else ""


def group_samples(ds: Dataset, group: EcgGroup) -> np.ndarray:
    """Return the group's samples as floats, (samples, channels), scaled as pydicom's `waveform_array` does."""
    try:
        values = np.asarray(ds.waveform_array(group.index), dtype=np.float64)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise Rejection(Reason.BAD_WAVEFORM, f"bad waveform: the 12-lead group cannot be decoded ({exc})") from None
    if values.shape != (group.sample_count, len(group.leads)):
        raise Rejection(Reason.BAD_WAVEFORM, f"bad waveform: the 12-lead group decodes to shape {values.shape}")
    if not np.isfinite(values).all():
        raise Rejection(
            Reason.BAD_WAVEFORM, "bad waveform: scaled by the channel sensitivities, some samples are not numbers"
        )
    return values


def ingest_ecg(
    project: Project,
    config: ProjectSettings,
    name: str,
    ds: Dataset,
    path: Path,
    sha256: str,
    max_decoded_bytes: int,
    record: Callable[[FileResult], None] | None,
) -> FileResult:
    """Store one ECG waveform file de-identified with an `Ecg` row, report a duplicate, or raise a Rejection."""
    if ANGIOGRAPHY not in config.accepted_modalities:
        raise Rejection(
            Reason.MODALITY_MISMATCH,
            f"an ECG waveform is kept only by a project that takes coronary angiography ({ANGIOGRAPHY}); this "
            f"project accepts {', '.join(config.accepted_modalities)}",
        )
    if not ds.get("SOPInstanceUID"):
        raise Rejection(Reason.MISSING_ATTRIBUTE, "required attribute SOPInstanceUID is missing or empty")
    group = twelve_lead_group(ds)
    decoded = group.sample_count * len(group.leads) * 8
    if decoded > max_decoded_bytes:
        raise Rejection(Reason.TOO_LARGE, f"too large: {decoded} bytes once decoded, the limit is {max_decoded_bytes}")
    group_samples(ds, group)  # every sample decodes to a finite number before anything is written
    secret = settings.PSEUDONYM_KEY
    new_sop_uid = remap_uid(str(ds.SOPInstanceUID), secret)
    if existing := Ecg.objects.filter(project=project, sop_instance_uid=new_sop_uid).values_list("pk", "sha256"):
        return _duplicate(name, *existing[0], sha256)
    key = patient_key_from(ds)
    try:
        with undo_files_on_error(project) as paths:
            stored = copy.deepcopy(ds)
            deidentify(stored, patient=key, key=secret)
            target = media_path(paths.dicom)
            target.parent.mkdir(parents=True, exist_ok=True)
            stored.save_as(target, enforce_file_format=True)
            with transaction.atomic():
                patient = patient_for(key)
                ecg = Ecg.objects.create(
                    project=project,
                    patient=patient,
                    sop_instance_uid=new_sop_uid,
                    sop_class_uid=str(stored.SOPClassUID),
                    acquired_at=acquired_at(stored),
                    sampling_frequency=group.sampling_frequency,
                    sample_count=group.sample_count,
                    leads=list(group.leads),
                    file_path=paths.dicom,
                    file_size=target.stat().st_size,
                    sha256=sha256,
                )
                result = FileResult(
                    name,
                    Outcome.STORED,
                    str(StoredKind.ECG),
                    f"stored as ECG {ecg.pk} of patient {patient.pseudonym}: {len(group.leads)} leads, "
                    f"{group.duration_s:.1f} s at {group.sampling_frequency:g} Hz",
                )
                if record is not None:
                    record(result)
    except IntegrityError:
        # Another import stored the same SOPInstanceUID between our check and our insert.
        existing = Ecg.objects.filter(project=project, sop_instance_uid=new_sop_uid).values_list("pk", "sha256")
        if existing:
            return _duplicate(name, *existing[0], sha256)
        raise Rejection(Reason.STORAGE_FAILED, "could not be stored (database constraint); nothing was kept") from None
    return result


def acquired_at(ds: Dataset) -> dt.datetime | None:
    """When a (de-identified, so date-shifted) ECG was recorded: AcquisitionDateTime, else the content or study
    date and time. A time without an offset is read in the deployment's time zone."""
    candidates = [str(ds.get("AcquisitionDateTime", "") or "")]
    for date, time in (("ContentDate", "ContentTime"), ("StudyDate", "StudyTime")):
        day = str(ds.get(date, "") or "").strip()
        if day:
            candidates.append(day + str(ds.get(time, "") or "").strip())
    for text in candidates:
        try:
            value = DT(text.strip()) if text.strip() else None
        except ValueError:
            continue
        if value is not None:
            moment = dt.datetime.fromisoformat(value.isoformat())
            return moment if timezone.is_aware(moment) else timezone.make_aware(moment)
    return None


def _duplicate(name: str, ecg_id: int, stored_sha256: str, sha256: str) -> FileResult:
    if stored_sha256 and stored_sha256 != sha256:
        return FileResult(
            name,
            Outcome.REJECTED,
            str(Reason.UID_CONFLICT),
            f"has the SOPInstanceUID of ECG {ecg_id} but different content; the stored ECG is kept and this file "
            "was not stored (a changed recording needs a new SOPInstanceUID)",
        )
    return FileResult(
        name, Outcome.DUPLICATE, "duplicate", f"already imported (same SOPInstanceUID and content) as ECG {ecg_id}"
    )
