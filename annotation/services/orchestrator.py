"""The active-learning loop's conductor: retraining policies, queue upkeep, live counts, and running jobs.

`orchestrator_tick` is one pass over every active project; the `orchestrator` management command calls it
in a loop between jobs and runs the jobs it claims (`job_run`) on Ray. Everything it does is idempotent and
keyed on stored state (labels since the last training, the queue's generation and unranked count, active
jobs), so a killed orchestrator loses nothing: the next one picks up where the database says things stand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from annotation.models import (
    Job,
    JobKind,
    JobStatus,
    Label,
    Project,
    ProjectQueue,
)
from annotation.project_settings import ProjectSettings, parse_settings
from annotation.services.events import events_prune, members_event_send
from annotation.services.interpolation import interpolation_run
from annotation.services.jobs import ACTIVE, JobConflict, job_claim, job_fail
from annotation.services.learning import ExecutorLike, scoring_request, training_request, training_run
from annotation.services.queue import leases_expire, queue_open_count, queue_rerank
from annotation.services.scoring import queue_ranker, scoring_run

log = logging.getLogger(__name__)
# A project without a model re-ranks new items (cold start) at most this often.
COLD_START_EVERY = timedelta(seconds=30)
SCORE_RETRY_AFTER = timedelta(minutes=5)


@dataclass
class TickReport:
    """What one pass did, for logs and tests."""

    expired_leases: int = 0
    trainings: dict[str, str] = field(default_factory=dict)  # project slug -> reason
    scorings: list[str] = field(default_factory=list)
    cold_starts: list[str] = field(default_factory=list)
    reranks: list[str] = field(default_factory=list)
    announced: dict[str, int] = field(default_factory=dict)


def retrain_reason(project: Project, settings: ProjectSettings, now: datetime) -> str | None:
    """Return why the project should retrain now under its policy, or None.

    After `retrain_every_n_labels` human labels stored since the last training was queued, or when
    `retrain_every_minutes` have passed since then and at least one new label has come in.
    """
    last = Job.objects.filter(project=project, kind=JobKind.TRAIN).order_by("-created_at", "-pk").first()
    labels = Label.objects.filter(item__project=project)
    if last is not None:
        labels = labels.filter(created_at__gt=last.created_at)
    every = settings.retrain_every_n_labels
    new = labels.count() if (every or settings.retrain_every_minutes) else 0
    if every and new >= every:
        return f"{new} new labels since the last training (policy: every {every})"
    minutes = settings.retrain_every_minutes
    if minutes and new and (last is None or now - last.created_at >= timedelta(minutes=minutes)):
        return f"scheduled: {minutes} min since the last training and {new} new label(s)"
    return None


def _active(project: Project, condition: Q) -> bool:
    return Job.objects.filter(condition, project=project, status__in=ACTIVE).exists()


def project_tick(project: Project, now: datetime, report: TickReport) -> None:
    """Apply the project's retraining policy, keep its queue ranked, and announce its queue size."""
    settings = parse_settings(project.task_type, project.settings)
    reason = retrain_reason(project, settings, now)
    if reason:
        try:
            training_request(project=project, by=None, reason=reason)
            report.trainings[project.slug] = reason
        except JobConflict:
            pass  # a round is already under way; its labels count towards the next one
    queue = ProjectQueue.objects.filter(pk=project.pk).first()
    # The champion, or before the first one the newest (rejected) model, which ranks the queue and does nothing else.
    ranker = queue_ranker(project)
    stale = queue is None or (queue.unranked_items > 0 or (ranker and queue.model_version_id != ranker.pk))
    if stale and ranker is not None:
        # The ranker scores what it has not seen (new imports); the job re-ranks when done. A scoring
        # that just failed is not retried at once: its error waits on the job for a lead to read.
        failed_lately = Q(kind=JobKind.SCORE, status=JobStatus.FAILED, finished_at__gt=now - SCORE_RETRY_AFTER)
        recently_failed = Job.objects.filter(failed_lately, project=project).exists()
        if not _active(project, Q(kind=JobKind.SCORE)) and not recently_failed:
            scoring_request(version=ranker)
            report.scorings.append(project.slug)
    elif ranker is not None and queue is not None and queue.strategy not in (settings.acquisition_strategy, ""):
        # The lead chose another strategy: re-rank on the scores already stored, no model run needed.
        queue_rerank(project=project, version=ranker)
        report.reranks.append(project.slug)
    elif stale and project.items.exists():
        if queue is None or queue.ranked_at is None or now - queue.ranked_at >= COLD_START_EVERY:
            queue_rerank(project=project, version=None)
            report.cold_starts.append(project.slug)
    queue = ProjectQueue.objects.filter(pk=project.pk).first()
    if queue is not None:
        open_items = queue_open_count(project)
        if open_items != queue.announced_open:
            ProjectQueue.objects.filter(pk=project.pk).update(announced_open=open_items)
            members_event_send(project.pk, {"event": "queue", "open": open_items})
            report.announced[project.slug] = open_items


def orchestrator_tick(*, now: datetime | None = None) -> TickReport:
    """Run one pass over every active project; return what it did."""
    now = now or timezone.now()
    report = TickReport(expired_leases=leases_expire(now=now))
    events_prune(now=now)
    for project in Project.objects.filter(archived=False).order_by("pk"):
        try:
            project_tick(project, now, report)
        except Exception:  # one broken project must not stop the loop for the others
            log.exception("orchestrator: project %s could not be ticked", project.pk)
    return report


def job_run(*, job: Job, executor: ExecutorLike, poll_seconds: float = 1.0) -> None:
    """Run one claimed job to the end by its kind; unexpected errors fail the job with their message."""
    runners: dict[str, Callable[..., object]] = {
        JobKind.TRAIN: training_run,
        JobKind.SCORE: scoring_run,
        JobKind.INTERPOLATE: interpolation_run,
    }
    runner = runners.get(job.kind)
    if runner is None:
        job_fail(job=job, error=f"this worker does not run {job.kind} jobs")
        return
    started = time.monotonic()
    try:
        runner(job=job, executor=executor, poll_seconds=poll_seconds)
    except Exception as error:  # noqa: BLE001 — the job must end failed, with the reason, never stay running
        job_fail(job=job, error=f"{type(error).__name__}: {error}")
    finally:
        job.refresh_from_db(fields=["detail", "status"])
        wall = round(time.monotonic() - started, 1)
        Job.objects.filter(pk=job.pk).update(detail={**job.detail, "wall_seconds": wall})


class JobSlots:
    """Run up to `slots` claimed jobs at once, each on a thread of its own, never two of one project.

    Jobs of different projects train and score side by side on the cluster (each scoring job fans out over its
    own actors). The threads share the executor; each uses and closes its own database connection.
    """

    def __init__(self, *, executor: ExecutorLike, slots: int, poll_seconds: float = 1.0) -> None:
        self.executor, self.slots, self.poll_seconds = executor, max(1, slots), poll_seconds
        self.running: dict[int, tuple[threading.Thread, Job]] = {}

    def busy_projects(self) -> frozenset[int]:
        return frozenset(job.project_id for _, job in self.running.values() if job.project_id is not None)

    def job_ids(self) -> list[int]:
        return sorted(self.running)

    def fill(self) -> list[Job]:
        """Claim and start jobs while slots are free; return the jobs started."""
        self.reap()
        started = []
        while len(self.running) < self.slots:
            job = job_claim(skip_projects=self.busy_projects())
            if job is None:
                break
            thread = threading.Thread(target=self._run, args=(job,), name=f"lumen-job-{job.pk}", daemon=True)
            self.running[job.pk] = (thread, job)
            thread.start()
            started.append(job)
        return started

    def reap(self) -> list[Job]:
        """Forget the jobs whose threads ended; return them (refreshed: their status is final)."""
        done = [pk for pk, (thread, _) in self.running.items() if not thread.is_alive()]
        ended = []
        for pk in done:
            _, job = self.running.pop(pk)
            job.refresh_from_db()
            ended.append(job)
        return ended

    def wait(self, timeout: float | None = None) -> None:
        for thread, _ in list(self.running.values()):
            thread.join(timeout)

    def _run(self, job: Job) -> None:
        try:
            job_run(job=job, executor=self.executor, poll_seconds=self.poll_seconds)
        except Exception:  # job_run ends the job itself; this is a bug in it, logged, and the loop goes on
            log.exception("orchestrator: job %s crashed its runner", job.pk)
        finally:
            connection.close()


__all__ = ["JobSlots", "TickReport", "job_run", "orchestrator_tick", "project_tick", "retrain_reason"]
