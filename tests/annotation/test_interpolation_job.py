"""Frame interpolation jobs end to end: queued by a lead through the API, run by the orchestrator's runner on the
inline executor, stored with their held-out evaluation; refusals and failures with their reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from annotation.models import BurnedInReview, InterpolationModel, Item, Job, JobKind, JobStatus, ModelVersion, Split
from annotation.services.interpolation import (
    interpolation_model_latest,
    interpolation_model_load,
    interpolation_train_request,
)
from annotation.services.learning import training_request
from annotation.services.splits import splits_fill
from gpu_workers.executors import InlineExecutor
from learning.interpolation import InterpolationRequest
from learning.models.interpolation import FrameInterpolator
from tests.cohort_projects import label_vessel, vessel_cohort
from tests.jobs import run_next_job

pytestmark = pytest.mark.django_db
FAST = {"steps": 3, "size": 32}


def url(project) -> str:
    return reverse("api:interpolation", args=[project.slug])


class RecordingExecutor(InlineExecutor):
    """The inline executor, keeping the requests it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[InterpolationRequest] = []

    def submit(self, request, key):
        self.requests.append(request)
        return super().submit(request, key)


@pytest.fixture
def recording():
    pool = RecordingExecutor()
    yield pool
    pool.close()


def test_a_lead_trains_an_interpolator_and_reads_its_evaluation(vessel_project, lead, client_for, tmp_path, recording):
    vessel_cohort(vessel_project, tmp_path / "xa", patients=5, runs=1)
    queued = client_for(lead).post(url(vessel_project), FAST, format="json")
    assert queued.status_code == 202, queued.json()
    assert queued.json()["kind"] == JobKind.INTERPOLATE and queued.json()["status"] == JobStatus.QUEUED
    assert client_for(lead).get(url(vessel_project)).json()["job"]["id"] == queued.json()["id"]

    job = run_next_job(recording)  # the orchestrator's own claim and runner
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert [entry["epoch"] for entry in job.detail["history"]] == [1, 2, 3]  # every step's loss, kept on the job
    row = InterpolationModel.objects.get(job=job)
    assert row == interpolation_model_latest(vessel_project)
    weights = Path(settings.MEDIA_ROOT) / row.weights_path
    assert weights == Path(settings.MEDIA_ROOT) / "interpolation" / vessel_project.slug / f"{job.pk}.pt"
    assert weights.is_file() and not list(weights.parent.glob("*.partial"))
    assert row.architecture == {"width": 16, "max_flow": 8.0}
    for protocol in ("clips", "triplets"):
        block = row.metrics[protocol]
        assert block["n_frames"] > 0 and block["n_runs"] >= 1
        for method in ("model", "linear_blend", "frame_repetition"):
            assert 0 < block[method]["psnr"] <= 100 and -1 <= block[method]["ssim"] <= 1
    assert row.metrics["paper"]["clips"]["psnr"] == pytest.approx(34.251)
    assert "48×48" in row.metrics["resolution"]  # the runs' own size (under the cap)
    assert row.metrics["training"]["params"]["steps"] == 3 and row.metrics["training"]["params"]["size"] == 32

    model = interpolation_model_load(row)
    assert isinstance(model, FrameInterpolator) and not model.training

    body = client_for(lead).get(url(vessel_project)).json()
    assert body["job"] is None and body["runs"]["runs"] == 5 and body["runs"]["patients"] == 5
    assert [m["id"] for m in body["models"]] == [row.pk]
    assert body["models"][0]["metrics"]["clips"] == row.metrics["clips"]


def test_held_out_patients_are_the_test_split_and_never_trained_on(vessel_project, lead, tmp_path, recording):
    from annotation.services.interpolation import interpolation_train_request

    vessel_cohort(vessel_project, tmp_path / "xa", patients=8, runs=2)
    splits_fill(project=vessel_project)
    items = list(Item.objects.filter(project=vessel_project).select_related("instance").order_by("pk"))
    excluded, held_for_text = [item for item in items if item.split != Split.TEST][:2]
    Item.objects.filter(pk=excluded.pk).update(excluded_at=timezone.now())
    held_for_text.instance.burned_in_review = BurnedInReview.PENDING
    held_for_text.instance.save(update_fields=["burned_in_review"])
    interpolation_train_request(project=vessel_project, user=lead, params=FAST)
    job = run_next_job(recording)
    assert job.status == JobStatus.SUCCEEDED, job.error

    (request,) = recording.requests
    splits = dict(Item.objects.filter(project=vessel_project).values_list("pk", "split"))
    usable = {item.pk for item in items} - {excluded.pk, held_for_text.pk}
    trained = {ref.item_id for ref in request.train}
    held = {ref.item_id for ref in request.held_out}
    assert trained | held == usable and not trained & held
    assert held == {pk for pk in usable if splits[pk] == Split.TEST} and held
    assert {ref.patient for ref in request.train}.isdisjoint({ref.patient for ref in request.held_out})
    metrics = InterpolationModel.objects.get(job=job).metrics
    assert set(metrics["held_out"]["item_ids"]) == held and set(metrics["train"]["item_ids"]) == trained
    assert metrics["held_out"]["source"] == "the project's held-out test split"
    assert {run["name"] for run in metrics["runs"]} == {f"item {pk}" for pk in held}


def test_annotators_are_refused_and_strangers_see_nothing(vessel_project, annotator, stranger, client_for, tmp_path):
    vessel_cohort(vessel_project, tmp_path / "xa", patients=3, runs=1)
    for method in ("get", "post"):
        assert getattr(client_for(annotator), method)(url(vessel_project), format="json").status_code == 403
        assert getattr(client_for(stranger), method)(url(vessel_project), format="json").status_code == 404
    assert not Job.objects.filter(kind=JobKind.INTERPOLATE).exists()


def test_too_few_runs_is_a_clear_400(vessel_project, lead, client_for, tmp_path):
    empty = client_for(lead).post(url(vessel_project), {}, format="json")
    assert empty.status_code == 400 and empty.json()["field"] == "runs"
    assert "has 0 run(s) from 0 patient(s)" in empty.json()["detail"]
    vessel_cohort(vessel_project, tmp_path / "xa", patients=1, runs=3)  # runs, but one patient: nothing to hold out
    one_patient = client_for(lead).post(url(vessel_project), {}, format="json")
    assert one_patient.status_code == 400 and "at least 2 patients" in one_patient.json()["detail"]
    assert "3 run(s) from 1 patient(s)" in one_patient.json()["detail"]
    assert not Job.objects.filter(kind=JobKind.INTERPOLATE).exists()


def test_bad_parameters_and_a_second_job_are_refused(vessel_project, lead, client_for, tmp_path):
    vessel_cohort(vessel_project, tmp_path / "xa", patients=3, runs=1)
    bad = client_for(lead).post(url(vessel_project), {"size": 40}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "size" and "multiple of 16" in bad.json()["detail"]
    assert client_for(lead).post(url(vessel_project), {"steps": 0}, format="json").status_code == 400
    assert client_for(lead).post(url(vessel_project), FAST, format="json").status_code == 202
    again = client_for(lead).post(url(vessel_project), FAST, format="json")
    assert again.status_code == 409 and "already queued" in again.json()["detail"]


def test_a_failing_worker_ends_the_job_failed_with_its_message(vessel_project, lead, tmp_path, executor, monkeypatch):
    from annotation.services.interpolation import interpolation_train_request
    from gpu_workers import workers

    vessel_cohort(vessel_project, tmp_path / "xa", patients=3, runs=1)

    def broken(self, request, report):
        raise RuntimeError("CUDA out of memory on the worker")

    monkeypatch.setattr(workers.InterpolationWorker, "run", broken)
    interpolation_train_request(project=vessel_project, user=lead, params=FAST)
    job = run_next_job(executor)
    assert job.status == JobStatus.FAILED
    assert job.error == "interpolation training failed: RuntimeError: CUDA out of memory on the worker"
    assert not InterpolationModel.objects.exists()
    assert not (Path(settings.MEDIA_ROOT) / "interpolation").exists()


def test_a_project_that_asks_for_it_starts_its_video_networks_from_the_newest_interpolator(
    vessel_project, lead, annotator, tmp_path, recording
):
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=6, runs=2)
    interpolation_train_request(project=vessel_project, user=lead, params={"steps": 2, "size": 32})
    assert run_next_job(recording).status == JobStatus.SUCCEEDED
    row = interpolation_model_latest(vessel_project)
    for item in cohort:
        label_vessel(item, annotator, cohort[item].vessel)
    video = {"epochs": 1, "size": 16, "clip_frames": 4, "crops": 2, "patience": 0}

    training_request(project=vessel_project, by=lead, family="r2plus1d", hparams=video)
    plain = run_next_job(recording)
    assert plain.status == JobStatus.SUCCEEDED, plain.error
    assert recording.requests[-1].init_weights is None  # the setting is off by default
    assert "initialised_from" not in ModelVersion.objects.get(jobs=plain).metrics
    if Job.objects.filter(kind=JobKind.SCORE, status=JobStatus.QUEUED).exists():
        run_next_job(recording)  # the first model scores the unlabelled runs: promoted, or (rejected) to rank them

    vessel_project.settings = {**vessel_project.settings, "pretrain_from_interpolation": True}
    vessel_project.save(update_fields=["settings"])
    training_request(project=vessel_project, by=lead, family="r2plus1d", hparams=video)
    pretrained = run_next_job(recording)
    assert pretrained.status == JobStatus.SUCCEEDED, pretrained.error
    request = recording.requests[-1]
    assert request.init_source == f"interpolation model {row.pk}" and request.init_weights
    metrics = ModelVersion.objects.get(jobs=pretrained).metrics
    # Every tensor of the 16-wide R(2+1)D encoder (4 blocks x 2 convolutions with batch norm): 48.
    assert metrics["initialised_from"] == {"source": f"interpolation model {row.pk}", "tensors": 48}
