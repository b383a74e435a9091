"""A real import worker process killed with SIGKILL mid-import: every file is stored whole with its row or not at
all, and the job, queued again, finishes the rest."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection  # noqa: F401 — read by the skipif condition
from django.utils import timezone

from annotation.ingest.staging import StagedEntry, staging_root
from annotation.ingest.store import media_path
from annotation.models import ImportFile, Instance, Job, JobStatus
from annotation.services.imports import import_enqueue, import_jobs_run_pending, media_sweep_orphans
from annotation.services.jobs import jobs_recover_stale
from learning.cohorts import generate_xa_cohort
from tests.annotation.test_orchestrator_process import REPO, _wait_for, process_env

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the process shares the test database"),
]


def test_a_killed_import_worker_leaves_whole_files_and_the_job_resumes(vessel_project, lead, tmp_path):
    truths = generate_xa_cohort(tmp_path / "xa", n_patients=20, runs_per_patient=2, frames=(30, 40), size=128, seed=5)
    staged = staging_root() / "incoming-kill-test"
    staged.mkdir(parents=True)
    entries = []
    for n, truth in enumerate(truths, start=1):
        shutil.copy(truth.path, staged / f"{n:06d}")
        entries.append(StagedEntry(name=f"exam/{truth.path.name}", path=f"imports/{staged.name}/{n:06d}", size=0))
    job = import_enqueue(project=vessel_project, staged_directory=f"imports/{staged.name}", files=entries, user=lead)

    env = process_env(settings.MEDIA_ROOT)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "import_worker", "--idle-seconds", "0.2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(lambda: ImportFile.objects.filter(job=job).count() >= 3, 120, "three files imported")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING  # killed: nobody ended it
    done = ImportFile.objects.filter(job=job).count()
    assert 3 <= done < len(truths), "the worker finished before it could be killed"
    # Whole or nothing: every stored instance has its row, its DICOM and its frames; no row without its instance.
    rows = ImportFile.objects.filter(job=job)
    assert set(rows.values_list("outcome", flat=True)) == {"stored"}
    assert set(Instance.objects.values_list("pk", flat=True)) == set(rows.values_list("instance_id", flat=True))
    for instance in Instance.objects.all():
        assert media_path(instance.file_path).is_file()
        assert len(list(media_path(instance.frames_dir).iterdir())) >= instance.number_of_frames
    # What the killed worker was writing has no row: the sweep (its grace period zero here) removes exactly that.
    media_sweep_orphans(older_than=timedelta(0))
    root = Path(settings.MEDIA_ROOT)
    on_disk = {p.relative_to(root).as_posix() for tree in ("dicom", "frames") for p in root.glob(f"{tree}/*/*")}
    assert on_disk == {path for i in Instance.objects.all() for path in (i.file_path, i.frames_dir)}

    # The heartbeat goes stale; the job is queued again and the next worker resumes after the last row.
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert jobs_recover_stale(stale_after=timedelta(minutes=5), max_attempts=3) == 1
    assert import_jobs_run_pending() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    everything = len(truths)
    assert job.result["summary"] == {"stored": everything, "duplicates": 0, "rejected": 0, "items_created": everything}
    assert [f["name"] for f in job.result["files"]] == [e.name for e in entries]
    assert Instance.objects.count() == len(truths) and not staged.exists()
    assert Path(settings.MEDIA_ROOT).exists()
