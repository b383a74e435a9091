"""Versioned dataset exports as background jobs: a lead queues one (`export_request`), the import worker runs it
(`export_jobs_run_pending` → `export_run`), and the finished archive is downloaded from the API.

The archive (format FORMAT_VERSION, described in README.md under "Dataset exports") is written under a temporary
name and renamed into place once complete (annotation.exports.archive), so an archive that is offered is whole.
Where it lies, its size and checksum are the job's `result`; its progress is the job's `detail`, sent to the
project's leads as live job events. A job whose worker died is queued again by the stale-job recovery and starts
over (`export_run` first removes what the dead attempt left).

Everything comes from stored, de-identified data: pseudonyms, remapped UIDs, the de-identified DICOM files; never
the lead-only identity table. All label versions are read in one query, so the current labels and the history
agree even while annotators keep labelling.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.contrib.auth.models import User
from django.db.models import F
from django.utils import timezone

from annotation.exports.archive import ArchiveWriter, archive_writer, partial_archives_remove, sha256_of_path
from annotation.exports.base import Cell, TaskExporter, csv_cell, split_name
from annotation.ingest.store import media_path
from annotation.models import (
    Item,
    Job,
    JobKind,
    JobStatus,
    Label,
    ModelStatus,
    ModelVersion,
    Project,
    PseudoLabel,
    Role,
)
from annotation.selectors import project_role
from annotation.services.jobs import job_enqueue, job_finish, job_project, job_report, jobs_run_pending
from annotation.tasks import label_task

logger = logging.getLogger(__name__)

FORMAT = "lumen-dataset-export"
FORMAT_VERSION = 1
EXPORTS_DIR = "exports"
PROGRESS_EVERY_SECONDS = 0.5
CURRENT_CHUNK = 500  # current labels fetched at once for the task's files
SPOOL_BYTES = 8 << 20  # a table is kept in memory up to this size, then in a temporary file

LABEL_COLUMNS = (
    "label_id",
    "item_id",
    "item_kind",
    "item_title",
    "item_excluded",
    "patient",
    "split",
    "author",
    "version",
    "previous_version",
    "source",
    "schema_version",
    "created_at",
    "time_spent_ms",
)
HISTORY_COLUMNS = (
    *LABEL_COLUMNS[:10],
    "previous_label_id",
    "current",
    *LABEL_COLUMNS[10:],
    "superseded_at",
)
SPLIT_COLUMNS = ("item_id", "item_kind", "item_title", "patient", "split", "excluded", "gold")
PSEUDO_COLUMNS = (
    "pseudo_label_id",
    "item_id",
    "item_kind",
    "item_title",
    "patient",
    "split",
    "model_version",
    "model_family",
    "model_status",
    "confidence",
    "created_at",
    "target",
)


class ExportRefused(PermissionError):
    """Only a project's leads export its dataset."""


def export_path(project: Project, job: Job) -> str:
    """Return where a job's archive lies, relative to MEDIA_ROOT."""
    return f"{EXPORTS_DIR}/{project.slug}/{job.pk}.zip"


def export_filename(project: Project, job: Job) -> str:
    """Return the file name a downloaded archive is saved under."""
    return f"{project.slug}-dataset-{job.pk}-{job.created_at:%Y%m%d-%H%M%S}.zip"


def export_request(*, project: Project, by: User) -> Job:
    """Queue a dataset export of the project (leads only; one at a time per project, else JobConflict)."""
    if project_role(project, by) != Role.LEAD:
        raise ExportRefused("only the project's leads can export its dataset")
    return job_enqueue(project=project, kind=JobKind.EXPORT, params={"format_version": FORMAT_VERSION}, by=by)


def export_jobs_run_pending() -> int:
    """Claim and run queued export jobs until none is left; return how many ran."""
    return jobs_run_pending(
        kind=JobKind.EXPORT, run=lambda job: export_run(job=job), failed="the export could not be written: "
    )


def export_run(*, job: Job) -> None:
    """Write a claimed export job's archive and finish the job with where it lies; raise on failure."""
    project = job_project(job)
    exporter = label_task(project.task_type).exporter()
    relative = export_path(project, job)
    target = media_path(relative)
    partial_archives_remove(target)  # an earlier attempt's, if its worker died while writing
    labels = Label.objects.filter(item__project=project)
    pseudo_labels = PseudoLabel.objects.filter(item__project=project)
    items = Item.objects.filter(project=project)
    total = labels.count() + labels.current().count() + pseudo_labels.count() + items.count() + 1
    progress = _Progress(job, total)
    with archive_writer(target) as archive:
        snapshot = _write_labels(archive, project, exporter, progress)
        splits = _write_splits(archive, project, progress)
        models = _write_pseudo_labels(archive, project, progress)
        _write_task_files(archive, exporter, snapshot.current_ids, progress)
        counts = snapshot.counts() | {"items": sum(splits.values()), "splits": splits}
        counts["pseudo_labels"] = sum(model["pseudo_labels"] for model in models)
        counts["files"] = len(archive.members) + 1
        manifest = _manifest(job, project, exporter, snapshot, counts, models, archive)
        archive.add("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False).encode())
        progress.advance("manifest", files=len(archive.members), force=True)
        size = archive.commit()
    result = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "path": relative,
        "filename": export_filename(project, job),
        "bytes": size,
        "sha256": sha256_of_path(target),
        "counts": counts,
    }
    job_finish(job=job, result=result)
    logger.info("export job %s of project %s: %s files, %s bytes", job.pk, project.pk, counts["files"], size)


# ---------------------------------------------------------------------------------------------------- progress
class _Progress:
    """Count the export's steps and report them to the job (and its leads) at most twice a second."""

    def __init__(self, job: Job, total: int) -> None:
        self.job = job
        self.total = max(total, 1)
        self.done = 0
        self.reported = float("-inf")

    def advance(self, phase: str, steps: int = 1, *, files: int, force: bool = False) -> None:
        self.done = min(self.done + steps, self.total)
        now = time.monotonic()
        if not force and now - self.reported < PROGRESS_EVERY_SECONDS:
            return
        self.reported = now
        report = {"phase": phase, "done": self.done, "total": self.total, "files": files}
        job_report(job=self.job, reports=[report])


# ---------------------------------------------------------------------------------------------------- tables
class _Table:
    """Rows written as CSV (and, with `as_json`, as a JSON list) to temporary files until they join the archive."""

    def __init__(self, name: str, columns: tuple[str, ...], *, as_json: bool) -> None:
        self.name = name
        self.columns = columns
        self.rows = 0
        self._files: list[tuple[str, IO[bytes], io.TextIOWrapper]] = []
        self._csv = csv.writer(self._open(".csv"))
        self._csv.writerow(columns)
        self._json = self._open(".json") if as_json else None
        if self._json is not None:
            self._json.write("[")

    def _open(self, suffix: str) -> io.TextIOWrapper:
        raw = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        self._files.append((self.name + suffix, raw, text))
        return text

    def add(self, row: dict[str, Cell], document: dict[str, Any] | None = None) -> None:
        """Add a row: `row` has exactly the table's columns; `document` is the row as the JSON file holds it."""
        if set(row) != set(self.columns):
            differ = sorted(set(row) ^ set(self.columns))
            raise ValueError(f"{self.name}: a row's columns differ from the table's: {differ}")
        self._csv.writerow([csv_cell(row[column]) for column in self.columns])
        if self._json is not None:
            self._json.write(",\n" if self.rows else "\n")
            self._json.write(json.dumps(document if document is not None else row, ensure_ascii=False))
        self.rows += 1

    def write_to(self, archive: ArchiveWriter) -> None:
        if self._json is not None:
            self._json.write("\n]\n")
        for name, raw, text in self._files:
            text.flush()
            text.detach()
            archive.add_spooled(name, raw)
            raw.close()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass
class _LabelSnapshot:
    """What the one pass over the label versions found."""

    current_ids: list[int] = field(default_factory=list)
    versions: int = 0
    authors: set[int] = field(default_factory=set)
    items: set[int] = field(default_factory=set)
    schema_versions: set[int] = field(default_factory=set)
    sources: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, Any]:
        return {
            "labelled_items": len(self.items),
            "current_labels": len(self.current_ids),
            "label_versions": self.versions,
            "authors": len(self.authors),
            "label_sources": dict(sorted(self.sources.items())),
        }


def _label_fields(label: Label) -> dict[str, Cell]:
    item = label.item
    return {
        "label_id": label.pk,
        "item_id": item.pk,
        "item_kind": item.kind,
        "item_title": item.title,
        "item_excluded": item.excluded_at is not None,
        "patient": item.patient.pseudonym,
        "split": split_name(item.split),
        "author": label.author.username,
        "version": label.version,
        "previous_version": getattr(label, "previous_version", None),
        "previous_label_id": label.previous_id,
        "current": label.superseded_at is None,
        "source": label.source,
        "schema_version": label.schema_version,
        "created_at": _iso(label.created_at),
        "superseded_at": _iso(label.superseded_at),
        "time_spent_ms": label.time_spent_ms,
    }


def _write_labels(archive: ArchiveWriter, project: Project, exporter: TaskExporter, progress: _Progress):
    """Write labels.* (current labels) and label_history.* (every version) from one query over the versions."""
    versions = (
        Label.objects.filter(item__project=project)
        .select_related("item__patient", "author")
        .annotate(previous_version=F("previous__version"))
        .order_by("item_id", "author_id", "version")
    )
    current = _Table("labels", (*LABEL_COLUMNS, *exporter.columns), as_json=True)
    history = _Table("label_history", (*HISTORY_COLUMNS, *exporter.columns), as_json=True)
    snapshot = _LabelSnapshot()
    for label in versions.iterator(chunk_size=2000):
        fields = _label_fields(label)
        task_columns = exporter.label_row(label)
        history_row = {column: fields[column] for column in HISTORY_COLUMNS} | task_columns
        history.add(history_row, {column: fields[column] for column in HISTORY_COLUMNS} | {"payload": label.payload})
        snapshot.versions += 1
        snapshot.schema_versions.add(label.schema_version)
        snapshot.sources[label.source] += 1
        if label.superseded_at is None:
            row = {column: fields[column] for column in LABEL_COLUMNS}
            current.add(row | task_columns, row | {"payload": label.payload})
            snapshot.current_ids.append(label.pk)
            snapshot.authors.add(label.author_id)
            snapshot.items.add(label.item_id)
        progress.advance("labels", files=len(archive.members))
    current.write_to(archive)
    history.write_to(archive)
    return snapshot


def _write_splits(archive: ArchiveWriter, project: Project, progress: _Progress) -> dict[str, int]:
    """Write splits.csv (every item of the project and its split); return the item count per split."""
    table = _Table("splits", SPLIT_COLUMNS, as_json=False)
    per_split: Counter[str] = Counter()
    rows = (
        Item.objects.filter(project=project)
        .order_by("pk")
        .values_list("pk", "kind", "title", "patient__pseudonym", "split", "excluded_at", "is_gold")
    )
    for pk, kind, title, pseudonym, split, excluded_at, gold in rows.iterator(chunk_size=5000):
        table.add(
            {
                "item_id": pk,
                "item_kind": kind,
                "item_title": title,
                "patient": pseudonym,
                "split": split_name(split),
                "excluded": excluded_at is not None,
                "gold": gold,
            }
        )
        per_split[split_name(split)] += 1
        progress.advance("splits", files=len(archive.members))
    table.write_to(archive)
    return dict(sorted(per_split.items()))


def _write_pseudo_labels(archive: ArchiveWriter, project: Project, progress: _Progress) -> list[dict[str, Any]]:
    """Write pseudo_labels.* with the model version behind each; return those versions with their counts."""
    table = _Table("pseudo_labels", PSEUDO_COLUMNS, as_json=True)
    rows = (
        PseudoLabel.objects.filter(item__project=project)
        .select_related("item__patient", "model_version")
        .order_by("item_id", "model_version__number")
    )
    per_version: Counter[int] = Counter()
    versions: dict[int, ModelVersion] = {}
    for pseudo in rows.iterator(chunk_size=2000):
        item, version = pseudo.item, pseudo.model_version
        row: dict[str, Cell] = {
            "pseudo_label_id": pseudo.pk,
            "item_id": item.pk,
            "item_kind": item.kind,
            "item_title": item.title,
            "patient": item.patient.pseudonym,
            "split": split_name(item.split),
            "model_version": version.number,
            "model_family": version.family,
            "model_status": version.status,
            "confidence": pseudo.confidence,
            "created_at": _iso(pseudo.created_at),
            "target": json.dumps(pseudo.payload.get("target"), separators=(",", ":")),
        }
        table.add(row, row | {"target": pseudo.payload.get("target")})
        per_version[version.number] += 1
        versions[version.number] = version
        progress.advance("pseudo-labels", files=len(archive.members))
    table.write_to(archive)
    return [_model_json(versions[number]) | {"pseudo_labels": count} for number, count in sorted(per_version.items())]


def _current_labels(ids: list[int], exporter: TaskExporter) -> Iterator[Label]:
    """Yield the snapshot's current labels in its order, a chunk at a time (label rows never change)."""
    for start in range(0, len(ids), CURRENT_CHUNK):
        chunk = ids[start : start + CURRENT_CHUNK]
        rows = Label.objects.filter(pk__in=chunk).select_related("item__patient", "author", *exporter.relations)
        by_id = {label.pk: label for label in rows}
        for pk in chunk:
            yield by_id[pk]


def _write_task_files(archive: ArchiveWriter, exporter: TaskExporter, ids: list[int], progress: _Progress) -> None:
    position = {pk: index for index, pk in enumerate(ids)}
    done = 0
    for export_file in exporter.files(_current_labels(ids, exporter)):
        archive.add(export_file.path, export_file.data, compress=export_file.compress, label_id=export_file.label_id)
        reached = position.get(export_file.label_id, -1) + 1 if export_file.label_id is not None else done
        progress.advance("task files", max(reached - done, 0), files=len(archive.members))
        done = max(done, reached)
    progress.advance("task files", len(ids) - done, files=len(archive.members))


# ---------------------------------------------------------------------------------------------------- manifest
def _model_json(version: ModelVersion) -> dict[str, Any]:
    return {
        "number": version.number,
        "family": version.family,
        "status": version.status,
        "trained_at": _iso(version.trained_at),
        "promoted_at": _iso(version.promoted_at),
    }


def _manifest(
    job: Job,
    project: Project,
    exporter: TaskExporter,
    snapshot: _LabelSnapshot,
    counts: dict[str, Any],
    models: list[dict[str, Any]],
    archive: ArchiveWriter,
) -> dict[str, Any]:
    task = label_task(project.task_type)
    champion = ModelVersion.objects.filter(project=project, status=ModelStatus.CHAMPION).first()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "project": {"slug": project.slug, "name": project.name, "task": task.name, "task_title": task.title},
        "job": job.pk,
        "created_at": _iso(job.created_at),
        "created_by": job.created_by.username if job.created_by else None,
        "written_at": _iso(timezone.now()),
        "label_schema": {"task": task.name, "versions": sorted(snapshot.schema_versions)},
        "counts": counts,
        "champion": _model_json(champion) if champion else None,
        "pseudo_label_models": models,
        "task_files": dict(exporter.describes),
        "files": [member.as_json() for member in archive.members],
    }


def export_archive(job: Job) -> Path | None:
    """Return the finished archive of an export job, or None while it has none (queued, running, failed, gone)."""
    finished = job.kind == JobKind.EXPORT and job.status == JobStatus.SUCCEEDED
    relative = (job.result or {}).get("path") if finished else None
    if not relative:
        return None
    path = media_path(relative)
    return path if path.is_file() else None
