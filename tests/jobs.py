"""Run queued jobs to the end inside a test."""

from __future__ import annotations

from annotation.models import Job
from annotation.services.jobs import job_claim
from annotation.services.orchestrator import job_run


def run_next_job(executor) -> Job:
    """Claim the oldest queued job, run it on the executor, and return it refreshed."""
    job = job_claim()
    assert job is not None, "no job was queued"
    job_run(job=job, executor=executor, poll_seconds=0.05)
    job.refresh_from_db()
    return job
