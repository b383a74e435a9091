"""Splits by patient, training sets, training and scoring jobs end to end (inline executor), and their API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from annotation.models import (
    IcaReference,
    Item,
    Job,
    JobKind,
    JobStatus,
    ModelStatus,
    ModelVersion,
    Prediction,
    ProjectQueue,
    PseudoLabel,
    Split,
    TrainingExample,
)
from annotation.services import label_submit, learning, project_update
from annotation.services.jobs import job_claim, job_report, jobs_recover_stale
from annotation.services.learning import training_request
from annotation.services.splits import SplitLocked, splits_configure, splits_fill
from annotation.training_data import final_targets, training_set
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.cohort_projects import label_oct, label_spect, label_vessel, oct_cohort, spect_cohort, vessel_cohort
from tests.jobs import run_next_job

pytestmark = pytest.mark.django_db
FAST_VESSEL = {"epochs": 3, "batch_size": 8, "patience": 0}


def label_all(cohort: dict, author, skip: int = 0) -> list[Item]:
    """Label every item but the first `skip` (by id) with the truth; return the unlabelled ones."""
    items = sorted(cohort, key=lambda item: item.pk)
    for item in items[skip:]:
        label_vessel(item, author, cohort[item].vessel)
    return items[:skip]


# ---------------------------------------------------------------------------------------------------- splits
def test_splits_keep_each_patient_in_one_split_and_never_reshuffle(vessel_project, tmp_path):
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=12, runs=2)
    splits_fill(project=vessel_project)
    by_patient: dict[int, set[str]] = {}
    for item in Item.objects.filter(project=vessel_project):
        by_patient.setdefault(item.patient_id, set()).add(item.split)
    assert all(len(splits) == 1 for splits in by_patient.values())
    assert {s for splits in by_patient.values() for s in splits} <= {Split.TRAIN, Split.VALIDATION, Split.TEST}
    before = dict(Item.objects.filter(project=vessel_project).values_list("pk", "split"))
    # New runs arrive for existing patients and for new ones: existing items keep their split.
    vessel_cohort(vessel_project, tmp_path / "more", patients=4, runs=1, seed=99)
    splits_fill(project=vessel_project)
    after = dict(Item.objects.filter(project=vessel_project).values_list("pk", "split"))
    assert all(after[pk] == split for pk, split in before.items())
    assert len(after) == len(cohort) + 4


def test_a_locked_test_set_takes_no_new_patients_and_cannot_be_changed(vessel_project, tmp_path, client_for, lead):
    vessel_cohort(vessel_project, tmp_path / "xa", patients=10, runs=1)
    url = reverse("api:project-splits", args=[vessel_project.slug])
    body = (
        client_for(lead)
        .post(url, {"test_fraction": 0.5, "validation_fraction": 0.2, "lock_test": True}, format="json")
        .json()
    )
    assert body["test_set_locked"] is True and body["test_fraction"] == 0.5
    assert sum(v["items"] for v in body["splits"].values()) == 10
    test_before = set(Item.objects.filter(project=vessel_project, split=Split.TEST).values_list("pk", flat=True))
    vessel_cohort(vessel_project, tmp_path / "new", patients=12, runs=1, seed=77)
    splits_fill(project=vessel_project)
    test_after = set(Item.objects.filter(project=vessel_project, split=Split.TEST).values_list("pk", flat=True))
    assert test_after == test_before
    refused = client_for(lead).post(url, {"test_fraction": 0.3}, format="json")
    assert refused.status_code == 409 and "locked" in refused.json()["detail"]
    with pytest.raises(SplitLocked):
        splits_configure(project=vessel_project, split_seed=5)


def test_reading_the_splits_writes_nothing(vessel_project, tmp_path, client_for, lead):
    vessel_cohort(vessel_project, tmp_path / "xa", patients=3, runs=1)
    Item.objects.filter(project=vessel_project).update(split=Split.UNASSIGNED)
    body = client_for(lead).get(reverse("api:project-splits", args=[vessel_project.slug])).json()
    assert body["splits"]["unassigned"]["items"] == 3
    assert Item.objects.filter(project=vessel_project, split=Split.UNASSIGNED).count() == 3
    splits_fill(project=vessel_project)  # ranking or training assigns them
    body = client_for(lead).get(reverse("api:project-splits", args=[vessel_project.slug])).json()
    assert body["splits"]["unassigned"]["items"] == 0


def test_splits_are_for_leads_only(vessel_project, client_for, annotator):
    url = reverse("api:project-splits", args=[vessel_project.slug])
    assert client_for(annotator).get(url).status_code == 403


# ---------------------------------------------------------------------------------------------------- targets
def test_final_targets_use_adjudication_leads_and_agreement_only(vessel_project, annotator, second_annotator, lead):
    run(vessel_project, *[(f"r{i}.dcm", samples.xa_bytes(seed=i, patient_id=f"P{i}")) for i in range(5)])
    agree, disagree, lead_settles, unusable, single = vessel_project.items.order_by("pk")
    for item, first, second in ((agree, "LCA", "LCA"), (disagree, "LCA", "RCA"), (lead_settles, "LCA", "RCA")):
        label_vessel(item, annotator, first)
        label_vessel(item, second_annotator, second)
    label_vessel(lead_settles, lead, "RCA")
    label_submit(
        item=unusable, author=annotator, payload={"vessel": "unusable", "unusable_reason": "blurred"}, base_version=None
    )
    label_vessel(single, annotator, "neither")
    targets, disputed = final_targets(vessel_project)
    assert disputed == 1
    assert {item_id: t.target for item_id, t in targets.items()} == {agree.pk: 0, lead_settles.pk: 1, single.pk: 2}
    assert targets[lead_settles.pk].label.author == lead


def test_excluded_oct_frames_never_reach_a_training_set(oct_project, annotator, tmp_path):
    cohort = oct_cohort(oct_project, tmp_path / "oct", pullbacks=1, frames=8)
    for item, (_, mask, quality) in cohort.items():
        label_oct(item, annotator, mask, quality)
    excluded = {item.pk for item, (_, _, quality) in cohort.items() if quality != "ok"}
    assert excluded, "the generator puts the first frames inside the guide catheter"
    splits_fill(project=oct_project)
    data = training_set(oct_project)
    used = {e.ref.item_id for e in (*data.train, *data.validation, *data.test)}
    assert used and not used & excluded
    assert len(used) == len(cohort) - len(excluded)


def test_every_example_names_its_patient_for_the_paired_comparison(vessel_project, annotator, tmp_path):
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=6, runs=3)
    label_all(cohort, annotator)
    splits_fill(project=vessel_project)
    data = training_set(vessel_project)
    examples = (*data.train, *data.validation, *data.test)
    patient_of = dict(Item.objects.filter(project=vessel_project).values_list("pk", "patient_id"))
    assert len(examples) == len(cohort)
    assert {e.ref.item_id: e.group for e in examples} == patient_of
    assert len({e.group for e in examples}) == 6


def test_spect_on_the_ica_reference_trains_on_angiography_rows(spect_project, annotator, lead, tmp_path):
    cohort = spect_cohort(spect_project, tmp_path / "spect", patients=6)
    items = sorted(cohort, key=lambda item: item.pk)
    for item in items:
        label_spect(item, annotator, cohort[item])
    IcaReference.objects.filter(item__in=items[1:]).delete()  # only the first patient had angiography
    ica = IcaReference.objects.create(item=items[0], stenosis_lm=55, stenosis_lad=10, stenosis_rca=80, entered_by=lead)
    spect_project = project_update(project=spect_project, settings={"spect_reference": "ica"})
    targets, _ = final_targets(spect_project)
    assert list(targets) == [items[0].pk]
    assert targets[items[0].pk].target == [1, 1, 1]  # LM ≥ 50 % feeds LAD and LCX; RCA 80 %
    assert targets[items[0].pk].ica_reference == ica  # the newest row counts


# ---------------------------------------------------------------------------------------------------- jobs
@pytest.mark.usefixtures("judge_promotes")
def test_a_training_job_registers_a_champion_with_its_exact_training_set_then_scores(
    vessel_project, annotator, lead, tmp_path, executor
):
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=10, runs=2)
    unlabelled = label_all(cohort, annotator, skip=4)
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=FAST_VESSEL)
    job = run_next_job(executor)
    assert job.status == JobStatus.SUCCEEDED, job.error
    version = ModelVersion.objects.get(project=vessel_project)
    assert job.model_version == version and job.result["wins"] is True
    # The winner waits as a candidate until it has scored the unlabelled items.
    assert version.status == ModelStatus.CANDIDATE and version.number == 1 and version.family == "metadata_mlp"
    assert version.device == "cpu" and version.hyperparameters["epochs"] == 3
    assert (Path(settings.MEDIA_ROOT) / version.weights_path).is_file()
    assert len(version.metrics["history"]) == 3 and "validation" in version.metrics or "test" in version.metrics
    assert job.detail["phase"] in ("training", "evaluating") and job.detail["history"]
    # The exact training set: every labelled item once, with the label version it used and its split.
    rows = {row.item_id: row for row in TrainingExample.objects.filter(model_version=version).select_related("label")}
    labelled = {item.pk: item for item in cohort if item not in unlabelled}
    assert set(rows) == set(labelled)
    for item_id, row in rows.items():
        assert row.label.version == 1 and row.label.payload["vessel"] == cohort[labelled[item_id]].vessel
        assert row.split == Item.objects.get(pk=item_id).split
    # Winning queued a scoring job of the unlabelled items; its end promotes the version and re-ranks the queue.
    score = run_next_job(executor)
    assert score.kind == JobKind.SCORE and score.status == JobStatus.SUCCEEDED, score.error
    version.refresh_from_db()
    assert version.status == ModelStatus.CHAMPION and version.promoted_at is not None
    # What wants labels: the unlabelled runs and the overlap share's runs still waiting for a second annotator.
    wanting = {item.pk for item in unlabelled} | set(
        Item.objects.filter(project=vessel_project, required_labels=2).values_list("pk", flat=True)
    )
    queue = ProjectQueue.objects.get(project=vessel_project)
    assert queue.model_version == version and queue.strategy == "entropy" and queue.ranked_items == len(wanting)
    predictions = Prediction.objects.filter(model_version=version)
    assert {p.item_id for p in predictions} == wanting
    for prediction in predictions:
        probabilities = prediction.output["probabilities"]
        assert abs(sum(probabilities.values()) - 1) < 1e-4 and prediction.output["vessel"] in probabilities
        assert prediction.uncertainty >= 0 and 0 < prediction.confidence <= 1
    assert score.result == {
        "model_version": 1,
        "scored": len(wanting),
        "pseudo_labels": 0,
        "promoted": True,
        "promotion_rule": "promoted: the promotion judge is bypassed in this test",
        "reranked": True,
        "provisional": False,
    }


@pytest.mark.usefixtures("judge_promotes")
def test_pseudo_labels_train_only_and_are_never_evaluated_or_counted(
    vessel_project, annotator, lead, tmp_path, executor
):
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=12, runs=2)
    unlabelled = label_all(cohort, annotator, skip=8)
    project_update(project=vessel_project, settings={"pseudo_label_threshold": 0.6})
    splits_configure(project=vessel_project, validation_fraction=0.0)  # no early stop on 2 runs: train to the end
    sure = {**FAST_VESSEL, "epochs": 40, "learning_rate": 0.02}
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=sure)
    run_next_job(executor)
    run_next_job(executor)  # scoring makes pseudo-labels of confident predictions on unlabelled training items
    pseudo = PseudoLabel.objects.filter(item__project=vessel_project)
    confident = set(
        Prediction.objects.filter(item__in=unlabelled, confidence__gte=0.6, item__split=Split.TRAIN).values_list(
            "item_id", flat=True
        )
    )
    assert confident, "the model should be sure of some unlabelled training runs"
    assert {p.item_id for p in pseudo} == confident
    for row in pseudo:
        prediction = Prediction.objects.get(item_id=row.item_id)
        assert row.payload == {"target": ["LCA", "RCA", "neither"].index(prediction.output["vessel"])}
    trainable = confident
    assert not vessel_project.items.filter(labels__isnull=False, pk__in=trainable).exists()  # not human labels
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=sure)
    job = run_next_job(executor)
    assert job.status == JobStatus.SUCCEEDED, job.error
    second = ModelVersion.objects.get(project=vessel_project, number=2)
    rows = TrainingExample.objects.filter(model_version=second)
    pseudo_rows = rows.filter(pseudo_label__isnull=False)
    assert {r.item_id for r in pseudo_rows} == trainable
    assert set(pseudo_rows.values_list("split", flat=True)) == {Split.TRAIN}
    assert second.metrics["pseudo_examples"] == len(trainable)
    for split in ("validation", "test"):
        if split in second.metrics:  # evaluation counts human-labelled items only
            assert second.metrics[split]["n"] == rows.filter(split=split, label__isnull=False).count()
    assert second.parent.number == 1


def test_a_challenger_is_compared_with_the_champion_on_the_same_test_items(
    vessel_project, annotator, lead, tmp_path, executor, monkeypatch
):
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=14, runs=2)
    label_all(cohort, annotator)
    splits_configure(project=vessel_project, test_fraction=0.4, validation_fraction=0.2)
    project_update(project=vessel_project, settings={"promotion_min_test_items": 4})
    with monkeypatch.context() as patch:  # a first champion, whatever it is worth
        patch.setattr(learning, "promotion_decision", lambda *args, **kwargs: (True, "crowned for the test"))
        training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=FAST_VESSEL)
        run_next_job(executor)
        run_next_job(executor)  # the first champion's scoring (nothing unlabelled: zero items)
    training_request(project=vessel_project, by=lead, family="metadata_logreg")
    job = run_next_job(executor)
    second = ModelVersion.objects.get(project=vessel_project, number=2)
    versus = second.metrics["comparison"]["champion"]
    test_items = Item.objects.filter(project=vessel_project, split=Split.TEST).count()
    assert versus["n"] == second.metrics["test"]["n"] == second.metrics["champion_test"]["n"] == test_items
    assert versus["candidate"] == pytest.approx(second.metrics["test"]["macro_f1"])
    assert versus["other"] == pytest.approx(second.metrics["champion_test"]["macro_f1"])
    low, high = versus["interval"]
    assert low <= versus["difference"] <= high and versus["test"] == "paired bootstrap"
    test_patients = Item.objects.filter(project=vessel_project, split=Split.TEST).values("patient").distinct()
    assert versus["patients"] == test_patients.count()  # the interval resamples the test patients too
    wins = low > 0 and second.metrics["comparison"]["baseline"]["interval"][0] > 0
    assert job.result["wins"] is wins and second.compared_with.number == 1
    assert second.status == (ModelStatus.CANDIDATE if wins else ModelStatus.REJECTED)
    if wins:
        run_next_job(executor)
        second.refresh_from_db()
        assert second.status == ModelStatus.CHAMPION
    assert ModelVersion.objects.filter(project=vessel_project, status=ModelStatus.CHAMPION).count() == 1
    rule = job.result["promotion_rule"]
    assert "beats the champion" in rule if wins else rule.startswith(("kept the champion", "not promoted"))


@pytest.mark.usefixtures("judge_promotes")
def test_a_failed_training_registers_nothing_and_keeps_the_champion(
    vessel_project, annotator, lead, tmp_path, executor
):
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=8, runs=2)
    label_all(cohort, annotator)
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=FAST_VESSEL)
    run_next_job(executor)
    run_next_job(executor)  # scoring (nothing unlabelled) promotes the first model
    champion = ModelVersion.objects.get(project=vessel_project)
    models_dir = Path(settings.MEDIA_ROOT) / "models"
    files_before = sorted(models_dir.rglob("*"))
    # A stored run disappears from disk: the pixel model cannot read it.
    missing = next(iter(cohort)).instance
    (Path(settings.MEDIA_ROOT) / missing.file_path).unlink()
    training_request(
        project=vessel_project,
        by=lead,
        family="r2plus1d",
        hparams={"epochs": 1, "size": 16, "clip_frames": 4, "width": 2, "crops": 1},
    )
    job = run_next_job(executor)
    assert job.status == JobStatus.FAILED
    assert "input file is missing" in job.error and missing.file_path in job.error
    assert list(ModelVersion.objects.filter(project=vessel_project)) == [champion]
    champion.refresh_from_db()
    assert champion.status == ModelStatus.CHAMPION
    assert sorted(models_dir.rglob("*")) == files_before


def test_stale_running_jobs_are_requeued_then_failed(vessel_project, lead):
    job = training_request(project=vessel_project, by=lead)
    claimed = job_claim()
    assert claimed.pk == job.pk and claimed.attempts == 1
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    assert jobs_recover_stale(stale_after=timedelta(minutes=5), max_attempts=2) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert job_claim().attempts == 2
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    jobs_recover_stale(stale_after=timedelta(minutes=5), max_attempts=2)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "stopped responding" in job.error


def test_training_with_no_labels_fails_with_a_clear_message(vessel_project, lead, tmp_path, executor):
    vessel_cohort(vessel_project, tmp_path / "xa", patients=2, runs=1)
    training_request(project=vessel_project, by=lead)
    job = run_next_job(executor)
    assert job.status == JobStatus.FAILED and "no labelled training items" in job.error
    assert not ModelVersion.objects.exists()


# ---------------------------------------------------------------------------------------------------- API
def test_retrain_now_api(vessel_project, client_for, lead, annotator):
    url = reverse("api:project-train", args=[vessel_project.slug])
    assert client_for(annotator).post(url, {}, format="json").status_code == 403
    bad = client_for(lead).post(url, {"hparams": {"epochs": 0}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "hparams.epochs"
    unknown = client_for(lead).post(url, {"hparams": {"learning_rat": 0.1}}, format="json")
    assert unknown.status_code == 400 and unknown.json()["field"] == "hparams.learning_rat"
    family = client_for(lead).post(url, {"family": "unet"}, format="json")
    assert family.status_code == 400 and family.json()["field"] == "family"
    accepted = client_for(lead).post(url, {"hparams": {"epochs": 2}}, format="json")
    assert accepted.status_code == 202
    assert accepted.json()["kind"] == "train" and accepted.json()["status"] == "queued"
    again = client_for(lead).post(url, {}, format="json")
    assert again.status_code == 409 and "already queued" in again.json()["detail"]


def test_model_versions_and_training_sets_are_listed_for_leads(
    vessel_project, client_for, lead, annotator, tmp_path, executor
):
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=6, runs=2)
    label_all(cohort, annotator)
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=FAST_VESSEL)
    run_next_job(executor)
    version = ModelVersion.objects.get(project=vessel_project)
    listed = client_for(lead).get(reverse("api:model-version-list"), {"project": vessel_project.slug}).json()
    assert listed["results"][0]["number"] == 1 and listed["results"][0]["training_set_size"] == len(cohort)
    rows = client_for(lead).get(reverse("api:model-version-training-set", args=[version.pk])).json()
    assert rows["count"] == len(cohort) and {r["source"] for r in rows["results"]} == {"label"}
    assert all(r["label_version"] == 1 for r in rows["results"])
    assert client_for(annotator).get(reverse("api:model-version-training-set", args=[version.pk])).status_code == 404
    queued = client_for(lead).post(reverse("api:model-version-score", args=[version.pk]))
    assert queued.status_code == 202 and queued.json()["kind"] == "score"


def test_progress_keeps_every_epoch_even_when_several_arrive_at_once(vessel_project, lead):
    training_request(project=vessel_project, by=lead)
    job = job_claim()
    job_report(
        job=job,
        reports=[
            {"phase": "training", "done": 1, "total": 4, "epoch": 1, "loss": 0.9},
            {"phase": "training", "done": 2, "total": 4, "epoch": 2, "loss": 0.7, "validation": 0.5},
        ],
    )
    job_report(job=job, reports=[{"phase": "training", "done": 3, "total": 4, "epoch": 3, "loss": 0.6}])
    job.refresh_from_db()
    assert [h["epoch"] for h in job.detail["history"]] == [1, 2, 3]
    assert job.detail["history"][1] == {"epoch": 2, "loss": 0.7, "validation": 0.5}
    assert job.progress == 0.75 and job.detail["loss"] == 0.6
