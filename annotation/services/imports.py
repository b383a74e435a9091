"""Import files into a project as a job: each file's outcome is a row, progress is reported as files finish.

Uploads never import inside the request: `import_enqueue` records the staged files as a queued import job and
the import worker (`import_job_run`, a thread of the orchestrator, or `manage.py import_worker`) processes them.
`import_run` does the work for a job or in-process (`import_dicom`, the demo); a job that was interrupted runs
again from where it stopped: the files it has rows for are skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.models import User
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from annotation.ingest.pipeline import ingest_dicom, limits_from_settings
from annotation.ingest.results import FileResult, ImportReport, Outcome, Reason
from annotation.ingest.sources import ArchiveLimits, BadSource, SourceFile
from annotation.ingest.staging import StagedEntry, sources_from_staged, staging_remove
from annotation.ingest.store import orphaned_files, remove_stored
from annotation.models import ImportFile, Job, JobKind, JobStatus, Project
from annotation.project_settings import parse_settings
from annotation.services.jobs import (
    job_event_send,
    job_project,
    jobs_recover_stale,
    jobs_run_pending,
)
from annotation.tasks import label_task

logger = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 0.5


@dataclass(frozen=True)
class ImportProgress:
    """Where an import stands, for a progress bar: files done of the total and the counts so far."""

    done: int
    total: int
    stored: int
    duplicates: int
    rejected: int

    def as_json(self) -> dict[str, int | str]:
        return {
            "phase": "importing",
            "done": self.done,
            "total": self.total,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


ProgressCallback = Callable[[ImportProgress, FileResult | None], None]


def import_enqueue(*, project: Project, staged_directory: str, files: list[StagedEntry], user=None) -> Job:
    """Queue an import job for files already staged on disk; the worker imports them in this order."""
    with transaction.atomic():
        job = Job.objects.create(
            project=project,
            kind=JobKind.IMPORT,
            status=JobStatus.QUEUED,
            created_by=user,
            params={"staging": staged_directory, "files": [f.as_json() for f in files]},
            detail=ImportProgress(0, len(files), 0, 0, 0).as_json(),
        )
        job_event_send(job)
    return job


def import_job_run(*, job: Job) -> ImportReport:
    """Import a claimed job's staged files (resuming after the last file it recorded), then drop the staging."""
    if job.params.get("source") == "dicomweb":  # studies retrieved from the project's PACS, not an upload
        from annotation.services.dicomweb import dicomweb_job_run  # (that module imports this one)

        return dicomweb_job_run(job=job)
    entries = job.params.get("files", [])
    sources = sources_from_staged(entries, limits=ArchiveLimits.from_settings())
    report = import_run(project=job_project(job), sources=sources, user=job.created_by, job=job)
    staging_remove(job.params.get("staging", ""))
    return report


def import_run(
    *,
    project: Project,
    sources: Iterable[SourceFile | BadSource],
    user: User | None = None,
    job: Job | None = None,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import every source; each file is stored whole or rejected with its reason, the rest of the batch goes on.

    Without `job` a running import job is created here. With one (claimed by a worker), files that already have
    a row are skipped, so an interrupted job finishes the rest. `progress` is called after every file.
    """
    config = parse_settings(project.task_type, project.settings)
    limits = limits_from_settings()
    sources = list(sources)
    if job is None:
        job = Job.objects.create(
            project=project,
            kind=JobKind.IMPORT,
            status=JobStatus.RUNNING,
            created_by=user,
            started_at=timezone.now(),
            params={"files": len(sources)},
        )
    task = label_task(project.task_type)
    # Files the task ingests itself (SPECT: PNG polar maps and their manifest) go together at the end.
    claimed = [s for s in sources if isinstance(s, SourceFile) and task.claims_upload(s.name)]
    dicoms = [s for s in sources if not (isinstance(s, SourceFile) and task.claims_upload(s.name))]
    recorder = _Recorder(job, total=len(sources), progress=progress)
    for position, source in enumerate(dicoms):
        if position in recorder.done:
            continue
        if isinstance(source, BadSource):
            result = FileResult(source.name, Outcome.REJECTED, str(source.rejection.reason), source.rejection.message)
        else:
            try:
                result = ingest_dicom(project, config, source, limits, record=partial(recorder.row, position))
            except Exception as error:  # noqa: BLE001 — one file's failure is its own outcome; the batch goes on
                # By type only: messages of a failed file may quote its identifiers.
                logger.error("import job %s: file %s failed with %s", job.pk, position, type(error).__name__)
                result = FileResult(
                    source.name,
                    Outcome.REJECTED,
                    str(Reason.STORAGE_FAILED),
                    f"could not be stored (an unexpected {type(error).__name__}); nothing was kept",
                )
        if result.outcome != Outcome.STORED:  # a stored file's row was written in the transaction that stored it
            recorder.done.discard(position)  # (that transaction may still have failed at its commit)
            recorder.row(position, result)
        recorder.after(result)
    # The task's own files run (and are recorded) as one step at the end, as they may need each other.
    later = len(dicoms)
    if claimed and not any(position >= later for position in recorder.done):
        results = task.ingest_uploads(project, claimed)
        with transaction.atomic():
            for offset, result in enumerate(results):
                recorder.row(later + offset, result)
        for result in results:
            recorder.after(result)
    report = ImportReport(job_id=job.pk, files=[_result(row) for row in ImportFile.objects.filter(job=job)])
    nothing_stored = report.count(Outcome.STORED) == 0 and report.count(Outcome.REJECTED) > 0
    job.status = JobStatus.FAILED if nothing_stored else JobStatus.SUCCEEDED
    job.progress = 1.0
    job.finished_at = timezone.now()
    job.result = report.as_json()
    job.detail = {**recorder.state().as_json(), "done": recorder.total, "total": recorder.total}
    job.error = "no file in the batch could be stored" if nothing_stored else ""
    with transaction.atomic():
        job.save(update_fields=["status", "progress", "finished_at", "result", "detail", "error"])
        job_event_send(job)
    # Counts only: file names may carry patient identifiers.
    logger.info("import job %s into project %s: %s", job.pk, project.pk, report.summary())
    return report


class _Recorder:
    """Write each file's row, keep the counts, and report progress (to the job at most twice a second)."""

    def __init__(self, job: Job, *, total: int, progress: ProgressCallback | None) -> None:
        self.job = job
        self.total = total
        self.progress = progress
        rows = ImportFile.objects.filter(job=job).values_list("position", "outcome")
        self.done = {position for position, _ in rows}
        self.counts = {Outcome.STORED: 0, Outcome.DUPLICATE: 0, Outcome.REJECTED: 0}
        for _, outcome in rows:
            self.counts[Outcome(outcome)] += 1
        self.reported = 0.0

    def row(self, position: int, result: FileResult) -> None:
        ImportFile.objects.create(
            job=self.job,
            position=position,
            name=result.name[:1024],
            outcome=str(result.outcome),
            reason=result.reason,
            message=result.message,
            instance_id=result.instance_id,
            items_created=result.items_created,
        )
        self.done.add(position)

    def state(self) -> ImportProgress:
        return ImportProgress(
            done=len(self.done),
            total=self.total,
            stored=self.counts[Outcome.STORED],
            duplicates=self.counts[Outcome.DUPLICATE],
            rejected=self.counts[Outcome.REJECTED],
        )

    def after(self, result: FileResult) -> None:
        self.counts[result.outcome] += 1
        state = self.state()
        if self.progress is not None:
            self.progress(state, result)
        now = time.monotonic()
        if now - self.reported < PROGRESS_EVERY_SECONDS and state.done < state.total:
            return
        self.reported = now
        self.job.detail = state.as_json()
        self.job.progress = state.done / max(state.total, 1)
        self.job.heartbeat_at = timezone.now()
        with transaction.atomic():
            Job.objects.filter(pk=self.job.pk).update(
                detail=self.job.detail, progress=self.job.progress, heartbeat_at=self.job.heartbeat_at
            )
            job_event_send(self.job)


def _result(row: ImportFile) -> FileResult:
    return FileResult(
        name=row.name,
        outcome=Outcome(row.outcome),
        reason=row.reason,
        message=row.message,
        instance_id=row.instance_id,
        items_created=row.items_created,
    )


def import_reports_forget_names(*, older_than: timedelta) -> int:
    """Replace the file names of import jobs that ended more than `older_than` ago by "file <position>".

    A report names the uploader's files so that whoever uploaded them can act on each line; file names may carry
    patient identifiers, so they do not outlive that use (here and in the job's staging record). Returns the jobs done.
    """
    cutoff = timezone.now() - older_than
    done = 0
    pending = Job.objects.filter(kind=JobKind.IMPORT, names_forgotten_at__isnull=True, finished_at__lt=cutoff)
    for pk in pending.values_list("pk", flat=True)[:100]:
        with transaction.atomic():
            job = Job.objects.select_for_update().get(pk=pk)
            rows = list(ImportFile.objects.filter(job=job).order_by("position"))
            labels = {row.name: f"file {row.position + 1}" for row in rows}
            for row in rows:
                row.name, row.message = labels[row.name], _without_names(row.message, labels)
            ImportFile.objects.bulk_update(rows, ["name", "message"], batch_size=500)
            files = job.params.get("files")
            job.params = {**job.params, "files": len(files) if isinstance(files, list) else files}
            if isinstance(job.params.get("studies"), list):  # a DICOMweb import that never listed its instances
                job.params["studies"] = len(job.params["studies"])
            reported = job.result.get("files") if isinstance(job.result, dict) else None
            for index, line in enumerate(reported if isinstance(reported, list) else []):
                line["name"] = labels.get(line.get("name"), f"file {index + 1}")
                line["message"] = _without_names(str(line.get("message", "")), labels)
            job.names_forgotten_at = timezone.now()
            job.save(update_fields=["params", "result", "names_forgotten_at"])
        done += 1
    return done


def _without_names(message: str, labels: dict[str, str]) -> str:
    for name in sorted(labels, key=len, reverse=True):
        if name and name in message:
            message = message.replace(name, labels[name])
    return message


def media_sweep_orphans(*, older_than: timedelta) -> list[str]:
    """Delete stored files no row refers to (left by a worker killed mid-file); return what was removed."""
    removed = orphaned_files(older_than=older_than)
    for relative in removed:
        remove_stored(relative)
    if removed:
        logger.warning("media sweep: removed %s stored file(s) or frame folder(s) no row refers to", len(removed))
    return removed


_last_sweep = {"at": float("-inf")}


def import_housekeeping() -> None:
    """What every worker loop does between jobs: requeue stale jobs; and, at most once per
    LUMEN_HOUSEKEEPING_MINUTES (these work in days and hours, not seconds), forget old reports' file names and
    remove files a killed worker left without their rows."""
    jobs_recover_stale(
        stale_after=timedelta(seconds=settings.LUMEN_JOB_STALE_SECONDS), max_attempts=settings.LUMEN_JOB_MAX_ATTEMPTS
    )
    if time.monotonic() - _last_sweep["at"] < settings.LUMEN_HOUSEKEEPING_MINUTES * 60:
        return
    _last_sweep["at"] = time.monotonic()
    import_reports_forget_names(older_than=timedelta(days=settings.LUMEN_IMPORT_NAMES_DAYS))
    media_sweep_orphans(older_than=timedelta(hours=settings.LUMEN_ORPHAN_GRACE_HOURS))


def import_jobs_run_pending() -> int:
    """Claim and run queued import jobs until none is left; return how many ran."""
    return jobs_run_pending(
        kind=JobKind.IMPORT,
        run=lambda job: import_job_run(job=job),
        cleanup=lambda job: staging_remove(job.params.get("staging", "")),
    )


class ImportWorker(threading.Thread):
    """Run queued import jobs in the background of a long-running process (the orchestrator starts one), so an
    import never waits behind a training job; dataset exports (annotation.services.exports) run here too."""

    def __init__(self, *, idle_seconds: float = 1.0) -> None:
        super().__init__(name="lumen-import-worker", daemon=True)
        self.idle_seconds = idle_seconds
        self.stopping = threading.Event()

    def run(self) -> None:
        from annotation.services.exports import export_jobs_run_pending  # it imports the services this one does

        try:
            while not self.stopping.is_set():
                try:
                    ran = import_jobs_run_pending() + export_jobs_run_pending()
                except Exception:  # noqa: BLE001 — a lost database connection must not end the worker
                    logger.exception("import worker: could not claim a job")
                    close_old_connections()
                    ran = 0
                if not ran:
                    self.stopping.wait(self.idle_seconds)
        finally:
            connection.close()

    def stop(self, timeout: float | None = None) -> None:
        self.stopping.set()
        self.join(timeout)
