"""Read and check one DICOM file against a project's task, in the order that gives the most useful error."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder, iter_pixels
from pydicom.uid import UID

from annotation.ingest.results import Reason, Rejection

UNDEFINED_LENGTH = 0xFFFFFFFF
_STRESS = re.compile(r"\bSTRESS\b", re.IGNORECASE)
_REST = re.compile(r"\bREST\b", re.IGNORECASE)
PHASE_SOURCES = ("SeriesDescription", "ImageComments", "DerivationDescription", "ProtocolName", "ImageType")


@dataclass(frozen=True)
class Clinical:
    age: int | None
    sex: str
    weight_kg: float | None
    height_cm: float | None


@dataclass(frozen=True)
class CheckedDicom:
    """A dataset that passed every check, still carrying its original identifiers."""

    dataset: Dataset
    modality: str
    frames: int
    # SPECT polar maps: each frame's phase, "rest" / "stress", or "" where the file does not say (a lead sets it
    # on the pairing list); empty for the other tasks.
    phases: tuple[str, ...]
    clinical: Clinical


# Values longer than this stay in the file when a dataset is read from disk (pixel data above all): they are
# decoded frame by frame and copied into the stored file in pieces, never held whole.
DEFER_BYTES = 256 * 1024


def is_deferred(raw: object) -> TypeGuard[RawDataElement]:
    """Return whether an element's value was left in the file when the dataset was read (see DEFER_BYTES)."""
    return isinstance(raw, RawDataElement) and raw.value is None and raw.length != UNDEFINED_LENGTH


def read_dataset_file(path: Path) -> Dataset:
    """Parse a DICOM Part 10 file, leaving its large values (pixel data) in the file, or raise a Rejection saying
    why it is not usable (not DICOM, truncated: also when a value left in the file would run past its end)."""
    size = path.stat().st_size
    ds = _parse(path, size, defer_size=DEFER_BYTES)
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if is_deferred(raw):
            present = max(0, size - (raw.value_tell or 0))
            if raw.length > present:
                raise Rejection(
                    Reason.TRUNCATED,
                    f"truncated: element {raw.tag} declares {raw.length} bytes but only {present} are in the file",
                )
    return ds


def _parse(source: Path, size: int, defer_size: int | None = None) -> Dataset:
    try:
        ds = pydicom.dcmread(source, defer_size=defer_size)
    except InvalidDicomError:
        raise Rejection(Reason.NOT_DICOM, "not a DICOM file: no 'DICM' marker after the 128-byte preamble") from None
    except (EOFError, struct.error, OSError) as exc:
        raise Rejection(Reason.TRUNCATED, f"truncated: the file ends inside a DICOM element ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: any parser failure is this file's rejection
        raise Rejection(Reason.NOT_DICOM, f"not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    short = _first_short_element(ds)
    if short is not None:
        tag, declared, present = short
        raise Rejection(
            Reason.TRUNCATED, f"truncated: element {tag} declares {declared} bytes but only {present} are in the file"
        )
    if not list(ds.keys()):
        raise Rejection(Reason.TRUNCATED, "truncated: the file ends before its first data element")
    parsed_to = _end_of_last_element(ds)
    if parsed_to is not None and parsed_to < size:
        raise Rejection(
            Reason.TRUNCATED,
            f"truncated: the file ends inside an element header ({size - parsed_to} stray bytes after byte "
            f"{parsed_to})",
        )
    _strip_nul(ds)
    return ds


TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)


def _strip_nul(ds: Dataset) -> None:
    """Remove NUL characters from top-level text values (padding some writers leave, or worse): no database
    stores them in text, and they mean nothing in DICOM text."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if raw is None or is_deferred(raw):
            continue
        vr = raw.VR
        if vr is None:  # implicit VR: the file does not say, the data dictionary does (unknown tags are skipped)
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
        if vr not in TEXT_VRS:
            continue
        if isinstance(raw, RawDataElement) and b"\x00" not in (raw.value or b""):
            continue
        element = ds[tag]
        values = element.value if element.VM > 1 else [element.value]
        if not any("\x00" in str(value) for value in values):
            continue
        cleaned = [str(value).replace("\x00", "").strip() for value in values]
        element.value = cleaned if element.VM > 1 else cleaned[0]


def _end_of_last_element(ds: Dataset) -> int | None:
    """Return the byte offset where the last top-level element ends, or None if it cannot be known."""
    tags = list(ds.keys())
    if not tags:
        return None
    raw = ds.get_item(tags[-1], keep_deferred=True)
    if not isinstance(raw, RawDataElement) or raw.length == UNDEFINED_LENGTH or raw.value_tell is None:
        return None
    return raw.value_tell + raw.length


def _first_short_element(ds: Dataset) -> tuple[str, int, int] | None:
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if (
            isinstance(raw, RawDataElement)
            and raw.length != UNDEFINED_LENGTH
            and raw.value is not None
            and len(raw.value) < raw.length
        ):
            return str(raw.tag), raw.length, len(raw.value)
    return None


def check_dataset(
    ds: Dataset, *, task_type: str, accepted_modalities: tuple[str, ...], max_decoded_bytes: int
) -> CheckedDicom:
    """Check a parsed dataset against the project's task; raise a Rejection naming the first problem."""
    modality = str(ds.get("Modality", "") or "").upper()
    if modality not in accepted_modalities:
        raise Rejection(
            Reason.MODALITY_MISMATCH,
            f"modality {modality or '(none)'} does not fit this {task_type} project "
            f"(it accepts {', '.join(accepted_modalities)})",
        )
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Rows", "Columns"):
        if not ds.get(keyword):
            raise Rejection(Reason.MISSING_ATTRIBUTE, f"required attribute {keyword} is missing or empty")
    if "PixelData" not in ds:
        raise Rejection(Reason.NO_PIXEL_DATA, "no pixel data: the file holds no image (Pixel Data element absent)")
    _check_transfer_syntax(ds)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    decoded = frames * int(ds.Rows) * int(ds.Columns) * samples * max(1, int(ds.get("BitsAllocated", 8)) // 8)
    if decoded > max_decoded_bytes:
        raise Rejection(Reason.TOO_LARGE, f"too large: {decoded} bytes once decoded, the limit is {max_decoded_bytes}")
    from annotation.tasks import label_task  # the tasks import this module's phase reading

    phases = label_task(task_type).check_dicom(ds, frames)
    return CheckedDicom(dataset=ds, modality=modality, frames=frames, phases=phases, clinical=clinical_from(ds))


def _check_transfer_syntax(ds: Dataset) -> None:
    syntax = UID(str(getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID", "") or ""))
    if not syntax:
        raise Rejection(Reason.UNSUPPORTED_TRANSFER_SYNTAX, "the file meta has no TransferSyntaxUID")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise Rejection(
            Reason.UNSUPPORTED_TRANSFER_SYNTAX,
            f"unsupported transfer syntax {syntax} ({syntax.name}): no decoder exists",
        ) from None
    if not decoder.is_available:
        raise Rejection(
            Reason.UNSUPPORTED_TRANSFER_SYNTAX,
            f"unsupported transfer syntax {syntax} ({syntax.name}): no decoder plugin is installed",
        )
    raw = ds.get_item(0x7FE00010, keep_deferred=True)
    if isinstance(raw, RawDataElement):
        encapsulated = raw.length == UNDEFINED_LENGTH
    else:
        encapsulated = bool(getattr(raw, "is_undefined_length", False))
    if encapsulated != syntax.is_encapsulated:
        data = "compressed (encapsulated in fragments)" if encapsulated else "uncompressed"
        said = "compressed" if syntax.is_encapsulated else "uncompressed"
        raise Rejection(
            Reason.UNDECODABLE,
            f"the file contradicts itself: its pixel data is {data}, but its transfer syntax {syntax} "
            f"({syntax.name}) says {said}; it was not decoded",
        )


def decode_pixels(ds: Dataset) -> np.ndarray:
    """Decode all frames, turning decoder failures into rejections."""
    with _decoding():
        return ds.pixel_array


def decode_frames(path: Path, indices: Iterable[int]) -> np.ndarray:
    """Decode only the frames at `indices` of a file, stacked (frames first)."""
    with _decoding():
        return np.stack(list(iter_pixels(path, indices=list(indices))))


def frame_batches(path: Path, batch: int) -> Iterator[np.ndarray]:
    """Yield a file's frames decoded in batches of at most `batch` (frames first), reading the file as it goes."""
    chunk: list[np.ndarray] = []
    with _decoding():
        for frame in iter_pixels(path):
            chunk.append(frame)
            if len(chunk) == batch:
                yield np.stack(chunk)
                chunk = []
        if chunk:
            yield np.stack(chunk)


@contextmanager
def _decoding() -> Iterator[None]:
    """Turn decoder failures into rejections that say what is wrong with the file."""
    try:
        yield
    except ValueError as exc:
        if "less than expected" in str(exc):
            raise Rejection(Reason.TRUNCATED, f"truncated: {exc}".split(" - ")[0]) from None
        raise Rejection(Reason.UNDECODABLE, f"pixel data could not be decoded: {exc}") from None
    except (RuntimeError, NotImplementedError, AttributeError, TypeError, IndexError, EOFError) as exc:
        raise Rejection(Reason.UNDECODABLE, f"pixel data could not be decoded: {exc}") from None


def polar_map_phases(ds: Dataset, frames: int) -> tuple[str, ...]:
    """Return each frame's phase ("rest" / "stress"), or "" for the frames whose phase the file does not state.

    One frame: its descriptions name exactly one of REST and STRESS. Two frames (rest and stress in one file): a
    FrameLabelVector naming each, else descriptions naming both in frame order ("REST/STRESS"). Anything else is
    left to a lead, who sets the phase on the project's pairing list.
    """
    text = " ".join(str(ds.get(keyword, "") or "") for keyword in PHASE_SOURCES)
    if frames == 1:
        stress, rest = _STRESS.search(text), _REST.search(text)
        return ("" if bool(stress) == bool(rest) else "stress" if stress else "rest",)
    labels = [str(v) for v in (ds.get("FrameLabelVector") or [])] if "FrameLabelVector" in ds else []
    if len(labels) == frames:
        named = tuple(_phase_of(label) for label in labels)
        if sorted(named) == ["rest", "stress"]:
            return named
    stress, rest = _STRESS.search(text), _REST.search(text)
    if stress and rest:
        return ("rest", "stress") if rest.start() < stress.start() else ("stress", "rest")
    return ("", "")


def _phase_of(label: str) -> str:
    stress, rest = _STRESS.search(label), _REST.search(label)
    return "" if bool(stress) == bool(rest) else "stress" if stress else "rest"


def clinical_from(ds: Dataset) -> Clinical:
    """Read age, sex, weight and height (kept as clinical features before de-identification removes them)."""
    age = None
    match = re.fullmatch(r"(\d{3})([DWMY])", str(ds.get("PatientAge", "") or ""))
    if match:
        value, unit = int(match.group(1)), match.group(2)
        age = value if unit == "Y" else 0
    sex = str(ds.get("PatientSex", "") or "").upper()
    weight = _positive_float(ds.get("PatientWeight"))
    size_m = _positive_float(ds.get("PatientSize"))
    return Clinical(
        age=age,
        sex=sex if sex in ("F", "M", "O") else "",
        weight_kg=weight,
        height_cm=round(size_m * 100, 1) if size_m else None,
    )


def _positive_float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def cine_timing(ds: Dataset) -> tuple[float | None, float | None]:
    """Return (frame time in ms, frames per second) from FrameTime, CineRate or RecommendedDisplayFrameRate."""
    frame_time = _positive_float(ds.get("FrameTime"))
    if frame_time:
        return frame_time, round(1000.0 / frame_time, 3)
    rate = _positive_float(ds.get("CineRate")) or _positive_float(ds.get("RecommendedDisplayFrameRate"))
    if rate:
        return round(1000.0 / rate, 3), rate
    vector = ds.get("FrameTimeVector")
    if vector:
        times = [float(v) for v in vector[1:] if float(v) > 0]
        if times:
            mean = sum(times) / len(times)
            return round(mean, 3), round(1000.0 / mean, 3)
    return None, None


def float_or_none(value: object) -> float | None:
    """Return a DICOM DS/IS value as float, or None when absent or not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def pixel_spacing(ds: Dataset) -> tuple[float | None, float | None]:
    """Return (row, column) pixel spacing in mm from PixelSpacing or the shared functional groups."""
    spacing = ds.get("PixelSpacing")
    if spacing is None:
        groups = ds.get("SharedFunctionalGroupsSequence") or []
        measures = groups[0].get("PixelMeasuresSequence") if groups else None
        spacing = measures[0].get("PixelSpacing") if measures else None
    if not spacing or len(spacing) != 2:
        return None, None
    row, col = (_positive_float(v) for v in spacing)
    return row, col
