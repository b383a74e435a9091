"""The orchestrator on a real multi-node Ray cluster: a head and a worker node started as separate `ray start`
processes, the orchestrator a separate process connecting with RAY_ADDRESS. It trains data-parallel with Ray
Train across the nodes, scores on actors spread over both, and finishes a scoring job whose worker node is killed
midway, with every item scored once and the champion and queue changed only at the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection  # noqa: F401 — the skipif condition reads it

from annotation.models import Job, JobKind, JobStatus, ModelStatus, ModelVersion, Prediction
from annotation.services import project_update
from annotation.services.learning import scoring_request, training_request
from annotation.services.queue import items_wanting_labels
from gpu_workers.local_cluster import LocalRayCluster
from tests.annotation.test_orchestrator_process import REPO, process_env
from tests.cohort_projects import label_vessel, vessel_cohort

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the orchestrator process shares the test database"),
]


@pytest.fixture(scope="module")
def cluster():
    with LocalRayCluster(workers=1, cpus_per_node=1, head_cpus=1) as running:
        yield running


def _orchestrator(cluster: LocalRayCluster, media_root, **extra: str) -> subprocess.Popen:
    env = {
        **process_env(media_root),
        "RAY_ADDRESS": cluster.address,
        "RAY_AUTH_MODE": "disabled",
        "LUMEN_SCORING_WORKERS": "2",
        **extra,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "orchestrator", "--once", "--backend", "ray", "--poll-seconds", "0.2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process: subprocess.Popen, cluster: LocalRayCluster, timeout: float = 600) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"the orchestrator did not finish:\n{out[-4000:]}\n{cluster.logs()}") from None
    assert process.returncode == 0, out[-4000:]
    return out


def _labelled_project(project, annotator, folder, *, patients: int, workers: int) -> list:
    project_update(
        project=project,
        settings={"overlap_rate": 0.0, "retrain_every_n_labels": 0, "training_workers": workers},
    )
    project.refresh_from_db()
    cohort = vessel_cohort(project, folder, patients=patients, runs=2)
    items = sorted(cohort, key=lambda item: item.pk)
    for item in items[: len(items) // 2]:
        label_vessel(item, annotator, cohort[item].vessel)
    return items


def _score_the_latest(project) -> ModelVersion:
    """Make the newest version a candidate and queue its scoring, whatever the judge said of the tiny model.

    A rejected first model has already scored the items to rank the queue: that job and its scores go, so the
    candidate's scoring starts from nothing.
    """
    version = ModelVersion.objects.filter(project=project).latest("number")
    if version.status != ModelStatus.CANDIDATE:
        ModelVersion.objects.filter(pk=version.pk).update(
            status=ModelStatus.CANDIDATE, decision_rule="test", compared_with=None
        )
        Job.objects.filter(project=project, kind=JobKind.SCORE).delete()
        Prediction.objects.filter(model_version=version).delete()
        version.refresh_from_db()
        scoring_request(version=version)
    return version


def test_training_is_data_parallel_across_the_nodes_and_scoring_fans_out(
    cluster, vessel_project, lead, annotator, tmp_path, settings
):
    items = _labelled_project(vessel_project, annotator, tmp_path / "xa", patients=8, workers=2)
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams={"epochs": 3, "patience": 0})
    out = _finish(_orchestrator(cluster, settings.MEDIA_ROOT), cluster)
    train = Job.objects.get(project=vessel_project, kind=JobKind.TRAIN)
    assert train.status == JobStatus.SUCCEEDED, (train.error, out[-3000:])
    version = ModelVersion.objects.get(project=vessel_project)
    assert version.device == "cpu x2 (ray train)" and version.metrics["workers"] == 2
    assert [row["epoch"] for row in train.detail["history"]] == [1, 2, 3]
    # The run's epoch checkpoints served it and are gone.
    assert not (Path(django_settings.MEDIA_ROOT) / "checkpoints" / str(train.pk)).exists()

    _score_the_latest(vessel_project)
    out = _finish(_orchestrator(cluster, settings.MEDIA_ROOT, LUMEN_SCORE_CHUNK="2"), cluster)
    score = Job.objects.get(project=vessel_project, kind=JobKind.SCORE)
    assert score.status == JobStatus.SUCCEEDED, (score.error, out[-3000:])
    wanted = set(items_wanting_labels(vessel_project))
    assert set(Prediction.objects.filter(model_version=version).values_list("item_id", flat=True)) == wanted
    assert len(wanted) == len(items) // 2
    version.refresh_from_db()
    assert version.status == ModelStatus.CHAMPION


def test_a_worker_node_killed_mid_scoring_leaves_the_job_to_finish_on_the_rest(
    cluster, vessel_project, lead, annotator, tmp_path, settings
):
    _labelled_project(vessel_project, annotator, tmp_path / "xa", patients=24, workers=1)
    video = {"epochs": 1, "size": 32, "clip_frames": 8, "width": 4, "crops": 4, "patience": 0}
    training_request(project=vessel_project, by=lead, family="r2plus1d", hparams=video)
    _finish(_orchestrator(cluster, settings.MEDIA_ROOT), cluster)
    version = _score_the_latest(vessel_project)
    wanted = set(items_wanting_labels(vessel_project))

    process = _orchestrator(cluster, settings.MEDIA_ROOT, LUMEN_SCORE_CHUNK="1")
    deadline = time.monotonic() + 300
    while not Prediction.objects.filter(model_version=version).exists():  # scoring is under way on both nodes
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.05)
    scored_before = Prediction.objects.filter(model_version=version).count()
    cluster.node_kill(1)
    out = _finish(process, cluster)
    score = Job.objects.get(project=vessel_project, kind=JobKind.SCORE)
    assert score.status == JobStatus.SUCCEEDED, (score.error, out[-3000:])
    assert scored_before < len(wanted), "the node was killed after scoring had ended: the test proved nothing"
    predicted = list(Prediction.objects.filter(model_version=version).values_list("item_id", flat=True))
    assert sorted(predicted) == sorted(wanted)  # every item once, none lost with the node
    version.refresh_from_db()
    assert version.status == ModelStatus.CHAMPION
    cluster.node_add(log="worker-replacement.log")  # leave the cluster as the fixture made it
    cluster.wait_nodes(2, timeout=120)


def _train_workers() -> list[int]:
    """The process ids of Ray Train's worker actors (Ray names its worker processes after what they run)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"ray::RayTrainWorker" in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:  # the process ended meanwhile
            continue
    return sorted(found)


def test_a_training_worker_killed_midway_resumes_from_its_last_epoch(
    cluster, vessel_project, lead, annotator, tmp_path, settings
):
    _labelled_project(vessel_project, annotator, tmp_path / "xa", patients=8, workers=2)
    hparams = {"epochs": 30, "patience": 0}
    job = training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=hparams)
    process = _orchestrator(cluster, settings.MEDIA_ROOT)
    try:
        run = Path(settings.MEDIA_ROOT) / "checkpoints" / str(job.pk) / f"lumen-job-{job.pk}"
        deadline = time.monotonic() + 300
        # Ray Train has registered an epoch's checkpoint (its snapshot lists it): the group is training.
        while not (run / "checkpoint_manager_snapshot.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
            time.sleep(0.05)
        victims = _train_workers()
        assert len(victims) == 2
        os.kill(victims[-1], signal.SIGKILL)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    out = _finish(process, cluster)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, (job.error, out[-3000:])
    version = ModelVersion.objects.get(project=vessel_project)
    assert version.metrics["resumed_after_epoch"] >= 1  # carried on from a checkpoint, not from scratch
    assert version.metrics["resumed_after_epoch"] < 30
    assert [row["epoch"] for row in job.detail["history"]] == list(range(1, 31))  # every epoch once
