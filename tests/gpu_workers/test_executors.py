"""The Ray path on a local Ray: jobs run as Ray tasks, report progress, fail and cancel cleanly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.models import Job, JobKind, JobStatus, ModelStatus, ModelVersion, Prediction
from annotation.services import project_update
from annotation.services.learning import training_request
from gpu_workers.executors import RayExecutor
from gpu_workers.workers import TrainingWorker
from learning.cohorts import generate_xa_cohort
from learning.tasks import CineRef, Example, ItemScore, ScoreRequest, TrainOutcome, TrainRequest
from tests.cohort_projects import label_vessel, vessel_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, list[Example]]:
    root = tmp_path_factory.mktemp("xa")
    truths = generate_xa_cohort(root, n_patients=6, runs_per_patient=2, frames=(8, 12), size=32, seed=3)
    examples = [
        Example(
            ref=CineRef(
                item_id=i,
                path=str(t.path.relative_to(root)),
                geometry=(t.primary_angle, t.secondary_angle, t.source_to_detector_mm, t.source_to_patient_mm),
            ),
            target=["LCA", "RCA", "neither"].index(t.vessel),
            split="train",
            label_id=i,
            label_version=1,
        )
        for i, t in enumerate(truths)
    ]
    return root, examples


def request(root: Path, examples: list[Example], **changes) -> TrainRequest:
    fields = dict(
        task="vessel_type",
        family="r2plus1d",
        hparams={"epochs": 2, "size": 16, "clip_frames": 4, "width": 2, "crops": 2, "patience": 0},
        train=tuple(examples[:8]),
        validation=tuple(examples[8:10]),
        test=tuple(examples[10:]),
        media_root=str(root),
    )
    return TrainRequest(**{**fields, **changes})


def wait(executor: RayExecutor, handle, limit: float = 120.0):
    progress, deadline = [], time.monotonic() + limit
    while time.monotonic() < deadline:
        polled = executor.poll(handle, timeout=0.5)
        progress += polled.progress
        if polled.done:
            return polled, progress
    raise AssertionError("the Ray job did not finish in time")


def test_a_training_job_runs_as_a_ray_task_and_reports_its_epochs(local_ray, cohort):
    root, examples = cohort
    executor = RayExecutor()
    polled, progress = wait(executor, executor.submit(request(root, examples), key="t1"))
    assert polled.error is None
    outcome = polled.result
    assert isinstance(outcome, TrainOutcome) and outcome.device == "cpu" and outcome.weights
    epochs = [p["epoch"] for p in progress if p["phase"] == "training" and p.get("loss") is not None]
    assert epochs == [1, 2]
    assert "test" in outcome.metrics and outcome.metrics["test"]["n"] == 2
    # Scoring runs on Ray too, from the weights the training returned.
    scoring = ScoreRequest(
        task="vessel_type", weights=outcome.weights, refs=tuple(e.ref for e in examples[:3]), media_root=str(root)
    )
    scored, score_progress = wait(executor, executor.submit(scoring, key="s1"))
    assert [s.item_id for s in scored.result] == [0, 1, 2]
    assert all(isinstance(s, ItemScore) and s.output["crops"] == 2 for s in scored.result)
    assert score_progress[-1] == {"phase": "scoring", "done": 3, "total": 3}


def test_a_failing_job_comes_back_as_an_error_naming_the_problem(local_ray, cohort):
    root, examples = cohort
    broken = Example(ref=CineRef(item_id=99, path="nowhere/run.dcm"), target=0, split="train")
    executor = RayExecutor()
    polled, _ = wait(executor, executor.submit(request(root, [broken, *examples]), key="t2"))
    assert polled.result is None
    assert "TrainingError" in polled.error and "nowhere/run.dcm" in polled.error


def test_a_cancelled_job_stops_and_says_so(local_ray, cohort):
    root, examples = cohort
    executor = RayExecutor()
    long = request(root, examples, hparams={"epochs": 500, "size": 16, "clip_frames": 4, "width": 2, "patience": 0})
    handle = executor.submit(long, key="t3")
    wait_for_start = time.monotonic() + 60
    while time.monotonic() < wait_for_start and not executor.poll(handle, timeout=0.5).progress:
        pass
    executor.cancel(handle)
    polled, _ = wait(executor, handle, limit=60)
    assert polled.result is None and "cancel" in polled.error.lower()


def test_the_worker_class_runs_without_ray(cohort):
    root, examples = cohort
    outcome = TrainingWorker(device="cpu").run(request(root, examples, family="metadata_mlp"))
    assert outcome.family == "metadata_mlp" and outcome.device == "cpu"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("judge_promotes")
def test_the_orchestrator_command_trains_scores_and_promotes_on_local_ray(
    local_ray, vessel_project, annotator, lead, tmp_path
):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})  # one label finishes a run
    items = vessel_cohort(vessel_project, tmp_path / "xa", patients=6, runs=2)
    ordered = sorted(items, key=lambda item: item.pk)
    for item in ordered[2:]:
        label_vessel(item, annotator, items[item].vessel)
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams={"epochs": 3})
    call_command("orchestrator", "--once", "--backend", "ray", "--poll-seconds", "0.2")
    train, score = Job.objects.filter(project=vessel_project, kind__in=[JobKind.TRAIN, JobKind.SCORE]).order_by("pk")
    assert (train.kind, train.status, score.kind, score.status) == (
        JobKind.TRAIN,
        JobStatus.SUCCEEDED,
        JobKind.SCORE,
        JobStatus.SUCCEEDED,
    ), (train.error, score.error)
    version = ModelVersion.objects.get(project=vessel_project)
    assert version.status == ModelStatus.CHAMPION and version.device == "cpu"
    assert set(Prediction.objects.values_list("item_id", flat=True)) == {item.pk for item in ordered[:2]}
    assert train.detail["history"] and train.detail["wall_seconds"] > 0


def test_the_orchestrator_status_file_reports_its_ray_cluster(local_ray, tmp_path):
    from annotation.services.health import OrchestratorStatus

    OrchestratorStatus(backend="ray", path=tmp_path / "status.json").write()
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["ray"] == {
        "ok": True,
        "alive_nodes": 1,
        "cpus": local_ray.cluster_resources()["CPU"],
        "gpus": 0.0,
    }
