"""Angiography lesion reports: import them from CSV, link each lesion to the runs that show its artery, export the
run ↔ lesion pairs a stenosis model trains on.

The CSV (UTF-8, a byte-order mark is fine; comma-, semicolon- or tab-separated) has a header row naming its columns
(any order, case-insensitive); no other column is accepted, so a file carrying patient names or accession numbers
is refused rather than half-read:

- `study_instance_uid` (required): the exam, by its original StudyInstanceUID as the hospital knows it (mapped with
  the ingest's keyed remap, so it finds the stored study) or by the stored, remapped UID Lumen shows.
- `segment` (required): the lesion's site on the 16-segment coronary map, a whole number 1–16.
- `stenosis_percent` (required): diameter stenosis, a whole number 0–100; "70" and "70%" both read 70.
- `dominance` (optional): right, left or codominant (case-insensitive), or blank when not recorded. The rows of one
  exam that state it must agree; a blank row takes the exam's stated value.
- `note` (optional): free text up to 255 characters, stored with the lesion.

An exam with no significant lesion is reported by one row whose segment and stenosis are both blank: it gets a
report with no lesions (and its dominance). Such a row cannot stand beside lesion rows of the same exam.

Every row is checked before anything is written; one bad row refuses the whole file, with every problem listed by
row number (the header is row 1, as in a spreadsheet) and column. Errors never repeat a UID or a note: an unknown
exam reads "no exam of this project has that study_instance_uid". Importing an exam again supersedes its current
report (kept, stamped `superseded_at`), never deletes it.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.ingest.deid import remap_uid
from annotation.lesion_linkage import PAIR_COLUMNS, lesion_pairs
from annotation.models import Dominance, ExamReport, Lesion, Project, Study
from annotation.tasks import label_task
from learning.domain import CORONARY_ARTERIES

logger = logging.getLogger(__name__)

COLUMNS = ("study_instance_uid", "segment", "stenosis_percent", "dominance", "note")
REQUIRED_COLUMNS = ("study_instance_uid", "segment", "stenosis_percent")
REPORT_MAX_BYTES = 5 * 1024 * 1024  # about 100,000 lesion rows: far past any hospital's batch
NOTE_MAX_CHARS = 255
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_PERCENT = re.compile(r"^([0-9]+)\s*%?$")


# ---------------------------------------------------------------------------------------------------------- import
@dataclass(frozen=True)
class RowError:
    """One problem of an uploaded report file: its row (1 = the header; None: the whole file) and column."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = "file" if self.row is None else f"row {self.row}"
        return f"{where}: {self.column}: {self.message}" if self.column else f"{where}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


class ReportImportError(ValueError):
    """The file was refused and nothing imported; `errors` lists every problem found."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        shown = "; ".join(str(e) for e in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(f"report file refused, nothing imported: {shown}{more}")


@dataclass(frozen=True)
class ReportImportResult:
    source_name: str
    exams: int
    lesions: int
    exams_without_lesions: int
    superseded: int

    def as_json(self) -> dict[str, Any]:
        return {
            "source_name": self.source_name,
            "exams": self.exams,
            "lesions": self.lesions,
            "exams_without_lesions": self.exams_without_lesions,
            "superseded": self.superseded,
        }


@dataclass
class _Exam:
    study: Study
    dominance: str = ""
    dominance_row: int | None = None
    lesions: list[Lesion] = field(default_factory=list)
    empty_rows: list[int] = field(default_factory=list)


def reports_supported(project: Project) -> bool:
    """Return whether the project's runs get coronary vessel types (LCA / RCA), which lesion linkage needs."""
    return set(CORONARY_ARTERIES) <= set(label_task(project.task_type).class_names)


def reports_import(*, project: Project, user: User | None, data: bytes | str, source_name: str) -> ReportImportResult:
    """Import a lesion-report CSV (see the module docstring) in one transaction, or refuse it whole.

    Raises ReportImportError listing every bad row; nothing is written then. Locks the named studies' rows so two
    imports of the same exam take turns (each supersedes the report current when it runs).
    """
    if not reports_supported(project):
        raise ReportImportError(
            [RowError(None, None, "this project's task does not type runs as LCA / RCA: lesions cannot be linked")]
        )
    exams = _parse(project, data)
    now = timezone.now()
    with transaction.atomic():
        study_ids = sorted(exam.study.pk for exam in exams.values())
        list(Study.objects.select_for_update().filter(pk__in=study_ids).order_by("pk").values_list("pk"))
        superseded = ExamReport.objects.filter(study_id__in=study_ids, superseded_at__isnull=True).update(
            superseded_at=now
        )
        lesions: list[Lesion] = []
        for exam in exams.values():
            report = ExamReport.objects.create(
                project=project,
                study=exam.study,
                dominance=exam.dominance,
                source_name=source_name[:255],
                imported_by=user,
            )
            for lesion in exam.lesions:
                lesion.report = report
            lesions += exam.lesions
        Lesion.objects.bulk_create(lesions)
    result = ReportImportResult(
        source_name=source_name,
        exams=len(exams),
        lesions=len(lesions),
        exams_without_lesions=sum(not exam.lesions for exam in exams.values()),
        superseded=superseded,
    )
    # Counts only: the file's UIDs (original ones among them) never reach a log.
    logger.info(
        "lesion reports imported into project %s by user %s: %s exams, %s lesions, %s reports superseded",
        project.pk,
        getattr(user, "pk", None),
        result.exams,
        result.lesions,
        result.superseded,
    )
    return result


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if len(data) > REPORT_MAX_BYTES:
        raise ReportImportError([RowError(None, None, _too_large(len(data)))])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        message = f"not UTF-8 text (first bad byte on line {line}): save the file as “CSV UTF-8” and upload it again"
        raise ReportImportError([RowError(None, None, message)]) from None


def _too_large(size: int) -> str:
    return f"the file has {size:,} bytes; a report file may have at most {REPORT_MAX_BYTES:,}: split it"


def _dialect(text: str) -> str:
    first = text.split("\n", 1)[0]
    if "," not in first:
        for delimiter in (";", "\t"):
            if delimiter in first:
                return delimiter
    return ","


def _header(cells: list[str]) -> tuple[list[str], list[RowError]]:
    names = [cell.strip().lower() for cell in cells]
    errors = []
    for name in sorted(set(names)):
        if not name:
            errors.append(RowError(1, None, "a column has no name: name it or remove it"))
        elif name not in COLUMNS:
            errors.append(RowError(1, name, f"unknown column; the columns are {', '.join(COLUMNS)}"))
        elif names.count(name) > 1:
            errors.append(RowError(1, name, "the column appears more than once"))
    for name in REQUIRED_COLUMNS:
        if name not in names:
            errors.append(RowError(1, name, "required column missing"))
    return names, errors


def _parse(project: Project, data: bytes | str) -> dict[int, _Exam]:
    """Check every row and return the exams to write, keyed by study id; raise ReportImportError otherwise."""
    text = _decode(data)
    if len(text.encode()) > REPORT_MAX_BYTES:
        raise ReportImportError([RowError(None, None, _too_large(len(text.encode())))])
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=_dialect(text), strict=True))
    except csv.Error as error:
        raise ReportImportError([RowError(None, None, f"not a readable CSV file ({error})")]) from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        message = f"the file is empty: expected a header row naming the columns {', '.join(COLUMNS)}"
        raise ReportImportError([RowError(None, None, message)])
    names, errors = _header(rows[0])
    if errors:
        raise ReportImportError(errors)
    records = [(number, row) for number, row in enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    if not records:
        raise ReportImportError([RowError(None, None, "the file has a header but no rows")])
    studies = _studies_named(project, {_cell(names, row, "study_instance_uid") for _, row in records})
    exams: dict[int, _Exam] = {}
    for number, row in records:
        errors += _read_row(number, row, names, studies, exams)
    for exam in exams.values():
        if exam.lesions and exam.empty_rows:
            errors.append(
                RowError(
                    exam.empty_rows[0],
                    "segment",
                    f"a row without a lesion (no significant lesions) cannot stand beside this exam's lesion rows "
                    f"(row {exam.lesions[0].row_number})",
                )
            )
    if errors:
        raise ReportImportError(sorted(errors, key=_error_order))
    return exams


def _error_order(error: RowError) -> tuple[int, int]:
    return error.row or 0, COLUMNS.index(error.column) if error.column in COLUMNS else -1


def _cell(names: list[str], row: list[str], column: str) -> str:
    index = names.index(column) if column in names else None
    return row[index].strip() if index is not None and index < len(row) else ""


def _studies_named(project: Project, values: Iterable[str]) -> dict[str, Study]:
    """Return the project's studies by each value that names one: the stored UID, or the original it remaps from."""
    key = django_settings.PSEUDONYM_KEY
    candidates: dict[str, set[str]] = defaultdict(set)  # stored uid -> the file's values that name it
    for value in values:
        if value and _UID.match(value) and len(value) <= 64:
            candidates[value].add(value)
            candidates[remap_uid(value, key)].add(value)
    found: dict[str, Study] = {}
    stored = Study.objects.filter(project=project, study_instance_uid__in=list(candidates)).select_related("patient")
    for study in stored:
        for value in candidates[study.study_instance_uid]:
            found[value] = study
    return found


def _read_row(
    number: int, row: list[str], names: list[str], studies: dict[str, Study], exams: dict[int, _Exam]
) -> list[RowError]:
    errors = []
    if len(row) > len(names):
        errors.append(RowError(number, None, f"{len(row)} cells but the header names {len(names)} columns"))
    uid = _cell(names, row, "study_instance_uid")
    study = studies.get(uid)
    if not uid:
        errors.append(RowError(number, "study_instance_uid", "missing: name the exam by its StudyInstanceUID"))
    elif not _UID.match(uid) or len(uid) > 64:
        errors.append(
            RowError(
                number,
                "study_instance_uid",
                "not a DICOM UID (digits and dots, at most 64 characters); accession numbers are not accepted",
            )
        )
    elif study is None:
        errors.append(RowError(number, "study_instance_uid", "no exam of this project has that study_instance_uid"))
    segment_text, stenosis_text = _cell(names, row, "segment"), _cell(names, row, "stenosis_percent")
    segment = stenosis = None
    if segment_text or stenosis_text:
        segment = _whole(segment_text, 1, 16)
        if segment is None:
            reason = "missing" if not segment_text else f"got {segment_text[:20]!r}"
            errors.append(RowError(number, "segment", f"must be a whole number from 1 to 16 ({reason})"))
        match = _PERCENT.match(stenosis_text)
        stenosis = _whole(match.group(1), 0, 100) if match else None
        if stenosis is None:
            reason = "missing" if not stenosis_text else f"got {stenosis_text[:20]!r}"
            errors.append(
                RowError(number, "stenosis_percent", f"must be a whole number from 0 to 100, “%” allowed ({reason})")
            )
    dominance = _cell(names, row, "dominance").lower()
    if dominance not in Dominance.values:
        errors.append(RowError(number, "dominance", "must be right, left, codominant or blank (not recorded)"))
        dominance = ""
    note = _cell(names, row, "note")
    if len(note) > NOTE_MAX_CHARS:
        errors.append(RowError(number, "note", f"longer than {NOTE_MAX_CHARS} characters"))
    if study is None:
        return errors
    exam = exams.setdefault(study.pk, _Exam(study=study))
    if dominance:
        if exam.dominance and exam.dominance != dominance:
            message = f"{dominance!r} disagrees with {exam.dominance!r} on row {exam.dominance_row} of the same exam"
            errors.append(RowError(number, "dominance", message))
        elif not exam.dominance:
            exam.dominance, exam.dominance_row = dominance, number
    if segment is not None and stenosis is not None:
        exam.lesions.append(Lesion(segment=segment, stenosis_percent=stenosis, row_number=number, note=note))
    elif not segment_text and not stenosis_text:
        exam.empty_rows.append(number)
    return errors


def _whole(text: str, lowest: int, highest: int) -> int | None:
    if not text.isdigit() or not text.isascii():
        return None
    value = int(text)
    return value if lowest <= value <= highest else None


# ---------------------------------------------------------------------------------------------------------- export
def lesion_pairs_export(*, project: Project) -> str:
    """Return the project's run ↔ lesion training pairs as CSV text (columns PAIR_COLUMNS; stored UIDs only).

    Only unambiguous exams give pairs (annotation.lesion_linkage says which); one row per lesion and run showing it.
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=PAIR_COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows = 0
    for pair in lesion_pairs(project):
        writer.writerow(pair)
        rows += 1
    logger.info("lesion pairs exported from project %s: %s pairs", project.pk, rows)
    return out.getvalue()
