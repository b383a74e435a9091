"""Background jobs: enqueue, claim (one worker per job), report progress, finish, fail, recover stale ones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.models import Job, JobKind, JobStatus, Project
from annotation.services.events import leads_event_send

log = logging.getLogger(__name__)
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
# The kinds the orchestrator runs on the workers (imports and exports have a worker thread of their own).
WORKER_KINDS = (JobKind.TRAIN, JobKind.SCORE, JobKind.INTERPOLATE)


class JobConflict(Exception):
    """The project already has a job of this kind queued or running."""


def _job_event(job: Job) -> dict[str, Any]:
    return {
        "event": "job",
        "job": job.pk,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "detail": job.detail,
        "model_version": job.model_version_id,
        "error": job.error,
    }


def job_project(job: Job) -> Project:
    """Return the job's project: every job is queued for one (`job_enqueue`, the import services)."""
    if job.project is None:
        raise ValueError(f"job {job.pk} belongs to no project")
    return job.project


def job_event_send(job: Job) -> None:
    """Tell the project's leads where a job stands (in the caller's transaction)."""
    if job.project_id:
        leads_event_send(job.project_id, _job_event(job))


def job_enqueue(
    *,
    project: Project,
    kind: str,
    params: dict[str, Any] | None = None,
    by=None,
    exclusive: bool = True,
    conflicts: Q | None = None,
) -> Job:
    """Queue a job; with `exclusive`, refuse (JobConflict) while the project has a conflicting job active.

    Conflicting means of the same kind, or matching `conflicts` when given. Locks the project row so two
    requests cannot both pass the check.
    """
    with transaction.atomic():
        Project.objects.lock(project.pk)
        if exclusive:
            clash = conflicts if conflicts is not None else Q(kind=kind)
            active = Job.objects.filter(clash, project=project, status__in=ACTIVE).first()
            if active is not None:
                raise JobConflict(f"a {active.kind} job (#{active.pk}) is already {active.status} for this project")
        job = Job.objects.create(project=project, kind=kind, params=params or {}, created_by=by)
        job_event_send(job)
    return job


def job_claim(*, kinds: tuple[str, ...] = WORKER_KINDS, skip_projects: frozenset[int] = frozenset()) -> Job | None:
    """Return the oldest queued job of these kinds, now running and owned by the caller, or None.

    Uses SELECT … FOR UPDATE SKIP LOCKED so two workers never claim the same job. Jobs of `skip_projects` (those
    the caller is running a job of) wait: a project's jobs run one after another, different projects' at once.
    """
    with transaction.atomic():
        job = (
            Job.objects.select_for_update(skip_locked=True)
            .filter(status=JobStatus.QUEUED, kind__in=kinds)
            .exclude(project_id__in=skip_projects)
            .order_by("created_at", "pk")
            .first()
        )
        if job is None:
            return None
        now = timezone.now()
        job.status = JobStatus.RUNNING
        job.started_at = now
        job.heartbeat_at = now
        job.attempts += 1
        job.error = ""
        job.save(update_fields=["status", "started_at", "heartbeat_at", "attempts", "error"])
        job_event_send(job)
    return job


def jobs_run_pending(
    *, kind: str, run: Callable[[Job], object], failed: str = "", cleanup: Callable[[Job], None] | None = None
) -> int:
    """Claim and run queued jobs of `kind` until none is left; return how many ran.

    A job whose runner raises ends failed with the reason (prefixed by `failed`), never stays running, and
    `cleanup` removes what it left behind; the next job goes on.
    """
    ran = 0
    while (job := job_claim(kinds=(kind,))) is not None:
        log.info("%s job %s: started (attempt %s)", kind, job.pk, job.attempts)
        try:
            run(job)
        except Exception as error:  # noqa: BLE001 — the job must end failed with the reason, never stay running
            log.exception("%s job %s failed", kind, job.pk)
            job_fail(job=job, error=f"{failed}{type(error).__name__}: {error}")
            if cleanup is not None:
                cleanup(job)
        ran += 1
    return ran


def job_report(*, job: Job, reports: list[dict[str, Any]]) -> None:
    """Record a running job's latest progress (and heartbeat) and broadcast it."""
    now = timezone.now()
    fields: dict[str, Any] = {"heartbeat_at": now}
    if reports:
        latest = reports[-1]
        total = latest.get("total") or 0
        detail = {**job.detail, **latest}
        epochs = [
            {k: report[k] for k in ("epoch", "loss", "validation") if k in report}
            for report in reports
            if report.get("phase") == "training" and report.get("loss") is not None
        ]
        if epochs:  # every epoch is kept even when several arrive between two polls
            detail["history"] = [*job.detail.get("history", []), *epochs][-200:]
        fields.update(detail=detail, progress=min(1.0, latest.get("done", 0) / total) if total else job.progress)
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(**fields)
        for name, value in fields.items():
            setattr(job, name, value)
        if updated and reports and job.project_id:
            leads_event_send(job.project_id, _job_event(job))


def job_finish(*, job: Job, result: dict[str, Any], model_version=None) -> None:
    """Mark a running job succeeded with its result."""
    with transaction.atomic():
        job.status = JobStatus.SUCCEEDED
        job.result = result
        job.progress = 1.0
        job.model_version = model_version or job.model_version
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "result", "progress", "model_version", "finished_at"])
        job_event_send(job)


def job_fail(*, job: Job, error: str) -> None:
    """Mark a job failed with a message a lead can act on."""
    with transaction.atomic():
        job.status = JobStatus.FAILED
        job.error = error[:4000]
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
        job_event_send(job)
    log.warning("job %s (%s) failed: %s", job.pk, job.kind, error.splitlines()[0] if error else "")


def jobs_recover_stale(*, stale_after: timedelta, max_attempts: int) -> int:
    """Requeue running jobs whose worker stopped reporting (failing those out of attempts); return the count."""
    cutoff = timezone.now() - stale_after
    count = 0
    with transaction.atomic():
        stale = Job.objects.select_for_update(skip_locked=True).filter(
            status=JobStatus.RUNNING,
            kind__in=(*WORKER_KINDS, JobKind.IMPORT, JobKind.EXPORT),
            heartbeat_at__lt=cutoff,
        )
        for job in stale:
            if job.attempts >= max_attempts:
                job.status = JobStatus.FAILED
                job.error = f"the worker stopped responding (attempt {job.attempts} of {max_attempts})"
                job.finished_at = timezone.now()
            else:
                job.status = JobStatus.QUEUED
            job.save(update_fields=["status", "error", "finished_at"])
            job_event_send(job)
            count += 1
    return count
