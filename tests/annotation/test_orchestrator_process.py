"""A real orchestrator process killed with SIGKILL mid-training: nothing it was doing reaches annotators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.db import connection

from annotation.models import Job, JobKind, JobStatus, ModelStatus, ModelVersion
from annotation.services import project_update
from annotation.services.jobs import job_claim, jobs_recover_stale
from annotation.services.learning import training_request
from annotation.services.orchestrator import job_run
from gpu_workers.executors import InlineExecutor
from tests.annotation.test_orchestrator import FAST, first_champion, queue_state
from tests.cohort_projects import label_vessel, vessel_cohort

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the process shares the test database"),
]
REPO = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    """Return DATABASE_URL pointed at the database this test runs in (pytest-django's test_… copy)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def process_env(media_root) -> dict[str, str]:
    """Return the environment of a worker process on this test's database and media folder."""
    return {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "LUMEN_MEDIA_ROOT": str(media_root),
        "DJANGO_SETTINGS_MODULE": "webapp.settings.base",
        "LUMEN_LOG_LEVEL": "WARNING",
    }


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.usefixtures("judge_promotes")  # in this process; the killed orchestrator never gets to judging
def test_a_killed_orchestrator_leaves_the_champion_and_queue_and_the_next_run_finishes(
    vessel_project, lead, annotator, tmp_path, settings
):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0, "retrain_every_n_labels": 0})
    vessel_project.refresh_from_db()
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=10, runs=2)
    for item in sorted(cohort, key=lambda item: item.pk)[6:]:
        label_vessel(item, annotator, cohort[item].vessel)
    executor = InlineExecutor()
    champion = first_champion(vessel_project, lead, executor)
    before = queue_state(vessel_project)
    # A long training: the metadata model for up to 6 seconds.
    slow = {**FAST, "epochs": 100000, "max_seconds": 6.0}
    job = training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=slow)

    env = process_env(settings.MEDIA_ROOT)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "orchestrator", "--backend", "inline", "--poll-seconds", "0.2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(
            lambda: (j := Job.objects.get(pk=job.pk)).status == JobStatus.RUNNING and j.detail.get("epoch", 0) >= 1,
            timeout=90,
            what="the orchestrator to start training",
        )
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read().decode(errors="replace")
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == 1, output  # killed: nobody finished it
    assert list(ModelVersion.objects.filter(project=vessel_project)) == [champion]
    champion.refresh_from_db()
    assert champion.status == ModelStatus.CHAMPION
    assert queue_state(vessel_project) == before
    assert not list((Path(settings.MEDIA_ROOT) / "models").rglob("*.partial"))

    # The next orchestrator finds the job silent and runs it again to the end.
    Job.objects.filter(pk=job.pk).update(heartbeat_at=job.heartbeat_at - timedelta(minutes=10))
    assert jobs_recover_stale(stale_after=timedelta(minutes=5), max_attempts=3) == 1
    again = job_claim()
    assert again.pk == job.pk and again.attempts == 2
    job_run(job=again, executor=executor, poll_seconds=0.1)
    again.refresh_from_db()
    assert again.status == JobStatus.SUCCEEDED, again.error
    if again.result["wins"]:
        score = job_claim()
        assert score.kind == JobKind.SCORE
        job_run(job=score, executor=executor, poll_seconds=0.1)
    executor.close()
    assert ModelVersion.objects.filter(project=vessel_project, status=ModelStatus.CHAMPION).count() == 1
    assert ModelVersion.objects.filter(project=vessel_project).count() == 2
