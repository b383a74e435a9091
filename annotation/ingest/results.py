"""Per-file outcomes of an import and the rejection raised while checking one file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class Reason(StrEnum):
    NOT_DICOM = "not_dicom"
    TRUNCATED = "truncated"
    NO_PIXEL_DATA = "no_pixel_data"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
    MODALITY_MISMATCH = "modality_mismatch"
    TOO_LARGE = "too_large"
    NOT_MULTIFRAME = "not_multiframe"
    MISSING_ATTRIBUTE = "missing_attribute"
    UNDECODABLE = "undecodable"
    BAD_ARCHIVE = "bad_archive"
    BAD_MANIFEST = "bad_manifest"
    NOT_IN_MANIFEST = "not_in_manifest"
    STORAGE_FAILED = "storage_failed"
    NOT_RETRIEVED = "not_retrieved"  # a DICOMweb server did not send the file whole
    UID_CONFLICT = "uid_conflict"
    NO_WAVEFORM = "no_waveform"  # an ECG file without waveform data
    NO_12_LEAD_GROUP = "no_12_lead_group"  # an ECG file whose groups lack the twelve standard leads
    BAD_WAVEFORM = "bad_waveform"  # an ECG group whose layout, length or values cannot be read


class StoredKind(StrEnum):
    """A stored file's `reason` when it became something other than the task's items (those leave it empty)."""

    ECG = "ecg"  # a 12-lead ECG, attached to its patient (annotation.ingest.ecg)


class Rejection(Exception):
    """A file cannot be stored; `reason` is the machine code, the message says why in words."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class FileResult:
    name: str
    outcome: Outcome
    reason: str = ""
    message: str = ""
    instance_id: int | None = None
    items_created: int = 0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = str(self.outcome)
        return data


@dataclass
class ImportReport:
    job_id: int | None = None
    files: list[FileResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for result in self.files if result.outcome == outcome)

    @property
    def items_created(self) -> int:
        return sum(result.items_created for result in self.files)

    def summary(self) -> dict[str, int]:
        return {
            "stored": self.count(Outcome.STORED),
            "duplicates": self.count(Outcome.DUPLICATE),
            "rejected": self.count(Outcome.REJECTED),
            "items_created": self.items_created,
        }

    def as_json(self) -> dict[str, Any]:
        return {"job": self.job_id, "summary": self.summary(), "files": [r.as_json() for r in self.files]}
