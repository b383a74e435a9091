"""The evaluation protocol through the platform: a locked test set handed out at random, promotion on evidence."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from annotation.models import (
    Item,
    Job,
    JobKind,
    ModelStatus,
    ModelVersion,
    Prediction,
    ProjectQueue,
    PseudoLabel,
    QueueEntry,
    Split,
    TrainingExample,
)
from annotation.quality.adjudication import MODEL_DISAGREES, adjudication_cases
from annotation.services import project_update
from annotation.services.learning import (
    human_training_labels,
    promotion_decision,
    refit_growth,
    scoring_request,
    training_request,
)
from annotation.services.queue import interleave_test, items_wanting_labels, queue_rerank, stable_draw
from annotation.services.splits import splits_configure, splits_fill
from tests.cohort_projects import label_vessel, oct_cohort, vessel_cohort
from tests.jobs import run_next_job

pytestmark = pytest.mark.django_db


def comparison(n: int, candidate: float, other: float, low: float, high: float) -> dict:
    return {
        "n": n,
        "candidate": candidate,
        "other": other,
        "difference": candidate - other,
        "interval": [low, high],
        "confidence": 0.9,
    }


# ---------------------------------------------------------------------------------------------------- the rule
def test_the_promotion_rule_asks_for_evidence_beyond_noise():
    beats = comparison(30, 0.8, 0.4, 0.2, 0.6)
    tie = comparison(30, 0.8, 0.8, -0.1, 0.1)
    few = comparison(6, 0.9, 0.3, 0.3, 0.9)
    named = {"baseline_test": {"name": "majority class"}}
    wins, rule = promotion_decision({**named, "comparison": {"baseline": beats}}, "macro_f1", False)
    assert wins and rule.startswith("first model") and "majority class" in rule and "CI [+0.200, +0.600]" in rule
    wins, rule = promotion_decision({**named, "comparison": {"baseline": tie}}, "macro_f1", False)
    assert not wins and "does not beat the majority class" in rule
    wins, rule = promotion_decision({**named, "comparison": {"baseline": few}}, "macro_f1", False)
    assert not wins and rule.startswith("not enough evidence: 6 labelled test item(s), 10 needed")
    wins, _ = promotion_decision({**named, "comparison": {"baseline": few}}, "macro_f1", False, min_test_items=5)
    assert wins
    wins, rule = promotion_decision({}, "dice_mean", False)  # no test set at all
    assert not wins and rule.startswith("not enough evidence: 0 labelled test item(s)")
    wins, rule = promotion_decision({"comparison": {"baseline": beats, "champion": tie}}, "macro_f1", True)
    assert not wins and rule.startswith("kept the champion") and "within noise" in rule
    wins, rule = promotion_decision({"comparison": {"baseline": beats, "champion": beats}}, "macro_f1", True)
    assert wins and "beats the champion's 0.400" in rule
    by_patient = {**beats, "patients": 7}
    wins, rule = promotion_decision({"comparison": {"baseline": beats, "champion": by_patient}}, "macro_f1", True)
    assert wins and "CI [+0.200, +0.600], resampling items and 7 patients" in rule
    within_classes = {**by_patient, "classes": 2}
    wins, rule = promotion_decision({**named, "comparison": {"baseline": within_classes}}, "macro_f1", False)
    assert wins and "resampling items and 7 patients, each resample holding all 2 classes" in rule


def test_a_level_primary_metric_is_decided_by_probabilities_better_beyond_noise():
    beats = comparison(30, 0.8, 0.4, 0.2, 0.6)
    better_probabilities = {
        "metric": "log loss",
        "candidate": 0.12,
        "other": 0.31,
        "difference": 0.19,
        "interval": [0.08, 0.30],
    }
    noisy_probabilities = {**better_probabilities, "interval": [-0.02, 0.30]}
    tie = comparison(30, 0.9, 0.9, -0.05, 0.05)
    wins, rule = promotion_decision(
        {"comparison": {"baseline": beats, "champion": {**tie, "proper": better_probabilities}}}, "macro_f1", True
    )
    assert wins and "test log loss 0.120 beats its 0.310" in rule and "CI [+0.080, +0.300]" in rule
    assert "is not worse beyond noise" in rule
    wins, rule = promotion_decision(
        {"comparison": {"baseline": beats, "champion": {**tie, "proper": noisy_probabilities}}}, "macro_f1", True
    )
    assert not wins and "within noise" in rule
    worse = comparison(30, 0.8, 0.9, -0.2, -0.02)  # worse beyond noise on the primary metric: log loss cannot help
    wins, _ = promotion_decision(
        {"comparison": {"baseline": beats, "champion": {**worse, "proper": better_probabilities}}}, "macro_f1", True
    )
    assert not wins


def test_a_refit_on_more_labels_replaces_the_champion_unless_shown_worse():
    beats = comparison(30, 0.8, 0.4, 0.2, 0.6)
    tie = comparison(30, 0.95, 0.93, -0.03, 0.07)
    worse = comparison(30, 0.85, 0.95, -0.17, -0.03)
    worse_probabilities = {
        "metric": "log loss",
        "candidate": 0.4,
        "other": 0.2,
        "difference": -0.2,
        "interval": [-0.3, -0.1],
    }
    metrics = {"comparison": {"baseline": beats, "champion": tie}}
    wins, rule = promotion_decision(metrics, "macro_f1", True, refresh=(40, 60))
    assert wins and rule.startswith("refit of the champion's model on 60 human labels (it had 40)")
    assert "not worse beyond noise" in rule and "CI [-0.030, +0.070]" in rule
    wins, rule = promotion_decision(metrics, "macro_f1", True)  # no refit: a tie keeps the champion
    assert not wins and rule.startswith("kept the champion")
    wins, _ = promotion_decision(
        {"comparison": {"baseline": beats, "champion": worse}}, "macro_f1", True, refresh=(40, 60)
    )
    assert not wins
    wins, rule = promotion_decision(
        {"comparison": {"baseline": beats, "champion": {**tie, "proper": worse_probabilities}}},
        "macro_f1",
        True,
        refresh=(40, 60),
    )
    # Level on the primary metric, but its probabilities are worse beyond noise, and the rule says which.
    assert not wins and rule.startswith("kept the champion: the refit on 60 human labels (it had 40) is level")
    assert "test log loss 0.400 is worse than the champion's 0.200 on the same 30 items beyond noise" in rule


def test_only_the_first_model_must_beat_the_trivial_baseline_beyond_noise():
    near_baseline = comparison(30, 0.62, 0.55, -0.02, 0.16)  # better, but within noise
    below_baseline = comparison(30, 0.40, 0.55, -0.25, -0.05)  # worse beyond noise
    tie = comparison(30, 0.66, 0.64, -0.03, 0.07)
    wins, rule = promotion_decision({"comparison": {"baseline": near_baseline}}, "dice_mean", False)
    assert not wins and "does not beat the trivial baseline" in rule
    # With a champion between them, a refit within noise of the baseline replaces the champion ...
    metrics = {"comparison": {"baseline": near_baseline, "champion": tie}}
    wins, rule = promotion_decision(metrics, "dice_mean", True, refresh=(25, 50))
    assert wins and rule.startswith("refit of the champion's model on 50 human labels")
    # ... but never one the test set finds worse than the baseline.
    metrics = {"comparison": {"baseline": below_baseline, "champion": tie}}
    wins, rule = promotion_decision(metrics, "dice_mean", True, refresh=(25, 50))
    assert not wins and "is worse than the trivial baseline (0.550) beyond noise" in rule


def test_test_items_take_the_set_share_of_hand_outs_in_their_own_order():
    ordered, test = list(range(100, 112)), [1, 2, 3, 4]
    assert interleave_test(ordered, test, 0.25) == [
        100,
        101,
        102,
        1,
        103,
        104,
        105,
        2,
        106,
        107,
        108,
        3,
        109,
        110,
        111,
        4,
    ]
    assert interleave_test(ordered[:2], test, 0.5) == [100, 1, 101, 2, 3, 4]  # left over at the end
    assert interleave_test(ordered[:2], test, 0.0) == [100, 101, 1, 2, 3, 4]
    # The test labels a first model needs lead the queue, then the share resumes.
    assert interleave_test(ordered[:6], test, 0.25, first=2) == [1, 2, 100, 101, 102, 3, 103, 104, 105, 4]
    assert interleave_test(ordered[:2], test[:1], 0.5, first=3) == [1, 100, 101]


# ---------------------------------------------------------------------------------------------------- end to end
@pytest.fixture
def labelled_runs(vessel_project, annotator, tmp_path):
    """72 imported runs, 60 labelled with the truth, split 30 % test / 15 % validation by patient."""
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=24, runs=3, seed=5)
    splits_configure(project=vessel_project, test_fraction=0.3, validation_fraction=0.15)
    items = sorted(cohort, key=lambda item: item.pk)
    for item in items[12:]:
        label_vessel(item, annotator, cohort[item].vessel)
    return cohort


def test_a_new_project_hands_out_the_test_labels_a_first_model_needs_first(vessel_project, annotator, tmp_path):
    from annotation.services import item_next

    project_update(project=vessel_project, settings={"overlap_rate": 0.0, "promotion_min_test_items": 4})
    vessel_cohort(vessel_project, tmp_path / "xa", patients=12, runs=2, seed=3)
    splits_configure(project=vessel_project, test_fraction=0.3)
    queue_rerank(project=vessel_project)
    leased = []
    for _ in range(4):
        lease = item_next(project=vessel_project, annotator=annotator)
        label_vessel(lease.item, annotator, "LCA")
        leased.append(lease.item.split)
    assert leased == [Split.TEST] * 4


def test_a_useful_first_model_is_promoted_and_an_equal_candidate_is_kept_out(
    vessel_project, lead, executor, labelled_runs
):
    training_request(project=vessel_project, by=lead)
    job = run_next_job(executor)
    first = ModelVersion.objects.get(project=vessel_project, number=1)
    assert first.family == "contrast_logreg"  # the default model below pixel_model_min_labels
    versus = first.metrics["comparison"]["baseline"]
    assert versus["n"] >= 10 and versus["interval"][0] > 0, job.result["promotion_rule"]
    assert job.result["wins"] and job.result["promotion_rule"].startswith("first model")
    run_next_job(executor)  # scores the unlabelled runs, then promotes
    first.refresh_from_db()
    assert first.status == ModelStatus.CHAMPION
    training_request(project=vessel_project, by=lead, family="contrast_logreg")  # same labels, same seed
    job = run_next_job(executor)
    second = ModelVersion.objects.get(project=vessel_project, number=2)
    assert second.metrics["comparison"]["champion"]["difference"] == 0.0
    assert second.status == ModelStatus.REJECTED and not job.result["wins"]
    assert "within noise" in job.result["promotion_rule"]
    assert ModelVersion.objects.get(project=vessel_project, status=ModelStatus.CHAMPION) == first
    assert not Job.objects.filter(kind=JobKind.SCORE, model_version=second).exists()  # the champion ranks the queue
    assert refit_growth(second, first, 0.25) is None  # the same labels: no growth, no refit


def test_a_refit_on_more_labels_is_judged_as_a_refit_of_the_champion(
    vessel_project, lead, annotator, executor, labelled_runs
):
    training_request(project=vessel_project, by=lead)
    run_next_job(executor)
    run_next_job(executor)  # scores, then promotes
    first = ModelVersion.objects.get(project=vessel_project, number=1, status=ModelStatus.CHAMPION)
    before = human_training_labels(first)
    items = sorted(labelled_runs, key=lambda item: item.pk)
    for item in items[:12]:  # the runs the fixture left unlabelled
        label_vessel(item, annotator, labelled_runs[item].vessel)
    added = sum(1 for item in items[:12] if Item.objects.get(pk=item.pk).split != Split.TEST)
    assert before == sum(1 for item in items[12:] if Item.objects.get(pk=item.pk).split != Split.TEST)
    project_update(project=vessel_project, settings={"promotion_refresh_growth": 0.05})
    training_request(project=vessel_project, by=lead, family="contrast_logreg")
    job = run_next_job(executor)
    second = ModelVersion.objects.get(project=vessel_project, number=2)
    assert human_training_labels(second) == before + added
    assert refit_growth(second, first, 0.05) == (before, before + added)
    assert refit_growth(second, first, 10.0) is None  # not ten times as many labels
    assert refit_growth(second, first, None) is None  # the lead turned refits off
    versus = second.metrics["comparison"]["champion"]
    proper_win = versus.get("proper") is not None and versus["proper"]["interval"][0] > 0
    if job.result["wins"] and versus["interval"][0] <= 0 and not proper_win:  # promoted without a win: a refit
        assert job.result["promotion_rule"].startswith(f"refit of the champion's model on {before + added}")
    elif not job.result["wins"]:  # only a candidate the test set finds worse is rejected
        assert versus["interval"][1] < 0 or second.metrics["comparison"]["champion"]["proper"]["interval"][1] < 0
    second.family = "r2plus1d"
    assert refit_growth(second, first, 0.05) is None  # another family has to win beyond noise


def test_a_useless_first_model_is_never_promoted_shown_or_used(
    vessel_project, annotator, lead, executor, tmp_path, client_for
):
    project_update(
        project=vessel_project,
        settings={"overlap_rate": 0.0, "pseudo_label_threshold": 0.5, "show_predictions_to_annotators": True},
    )
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=24, runs=3, seed=6)
    splits_configure(project=vessel_project, test_fraction=0.3, validation_fraction=0.15)
    rng = np.random.default_rng(0)
    items = sorted(cohort, key=lambda item: item.pk)
    for item in items[6:]:  # labels that have nothing to do with the runs
        label_vessel(item, annotator, "LCA" if rng.random() < 0.6 else "RCA")
    training_request(project=vessel_project, by=lead)
    job = run_next_job(executor)
    version = ModelVersion.objects.get(project=vessel_project)
    assert version.status == ModelStatus.REJECTED and not job.result["wins"]
    assert "does not beat the majority class" in job.result["promotion_rule"]
    assert not ModelVersion.objects.filter(project=vessel_project, status=ModelStatus.CHAMPION).exists()
    assert not PseudoLabel.objects.exists() and not Prediction.objects.exists()
    # Before a first champion, the newest model scores the runs wanting labels to rank the queue, and does only that.
    job = run_next_job(executor)
    assert job.kind == JobKind.SCORE and job.model_version_id == version.pk, job.error
    assert job.result["reranked"] and job.result["provisional"] and not job.result["promoted"]
    version.refresh_from_db()
    assert version.status == ModelStatus.REJECTED and version.promoted_at is None
    wanting = items_wanting_labels(vessel_project)
    assert set(Prediction.objects.filter(model_version=version).values_list("item_id", flat=True)) == set(wanting)
    queue = ProjectQueue.objects.get(project=vessel_project)
    assert queue.model_version_id == version.pk and queue.strategy == "entropy"
    lead_view = client_for(lead).get(reverse("api:project-queue", args=[vessel_project.slug])).json()
    assert (lead_view["model_version"], lead_view["model_status"]) == (1, "rejected")
    assert not PseudoLabel.objects.exists()  # threshold 0.5, and yet no pseudo-label comes from it
    body = client_for(annotator).get(reverse("api:item-workspace", args=[items[0].pk])).json()
    assert body["prediction"] is None
    # Random labels: a confident model disagrees with many of them, but an unpromoted model flags none.
    assert not [case for case in adjudication_cases(vessel_project) if case.reason == MODEL_DISAGREES]


def test_before_a_first_champion_the_newest_model_orders_the_queue_by_its_uncertainty(
    vessel_project, lead, executor, labelled_runs
):
    project_update(project=vessel_project, settings={"promotion_min_test_items": 1000, "queue_batch_size": 1})
    training_request(project=vessel_project, by=lead)
    assert "not enough evidence" in run_next_job(executor).result["promotion_rule"]
    job = run_next_job(executor)
    version = ModelVersion.objects.get(project=vessel_project, number=1)
    assert version.status == ModelStatus.REJECTED and job.result["provisional"]
    # Outside the test items' own random hand-outs, the runs it is least sure of (the project's entropy) come first.
    test_items = set(Item.objects.filter(project=vessel_project, split=Split.TEST).values_list("pk", flat=True))
    entries = QueueEntry.objects.filter(project=vessel_project).order_by("-priority")
    order = [i for i in entries.values_list("item_id", flat=True) if i not in test_items]
    scores = Prediction.objects.filter(model_version=version).values_list("item_id", "uncertainty_detail")
    entropy = {item_id: detail["entropy"] for item_id, detail in scores}
    assert len(order) >= 3 and [entropy[i] for i in order] == sorted((entropy[i] for i in order), reverse=True)
    # A second model rejected the same way takes over the ranking; the first one's scores no longer order anything.
    training_request(project=vessel_project, by=lead, family="contrast_logreg")
    run_next_job(executor)
    second = ModelVersion.objects.get(project=vessel_project, number=2)
    assert second.status == ModelStatus.REJECTED
    assert run_next_job(executor).model_version_id == second.pk
    assert ProjectQueue.objects.get(project=vessel_project).model_version_id == second.pk
    # An old version scored again by a lead ranks nothing.
    scoring_request(version=version, by=lead)
    assert not run_next_job(executor).result["reranked"]
    assert ProjectQueue.objects.get(project=vessel_project).model_version_id == second.pk


def test_test_items_stay_out_of_training_pseudo_labels_and_the_model_order(
    vessel_project, lead, executor, labelled_runs
):
    project_update(project=vessel_project, settings={"pseudo_label_threshold": 0.5, "test_handout_rate": 0.25})
    training_request(project=vessel_project, by=lead)
    run_next_job(executor)
    run_next_job(executor)
    version = ModelVersion.objects.get(project=vessel_project, status=ModelStatus.CHAMPION)
    splits = dict(Item.objects.filter(project=vessel_project).values_list("pk", "split"))
    test_items = {pk for pk, split in splits.items() if split == Split.TEST}
    assert test_items
    # The exact training set: every row's split is its item's, so no test item trained or selected the model.
    for item_id, split in TrainingExample.objects.filter(model_version=version).values_list("item_id", "split"):
        assert split == splits[item_id]
    assert not PseudoLabel.objects.filter(item_id__in=test_items).exists()
    assert PseudoLabel.objects.exists()  # confident unlabelled training runs did get pseudo-labels
    # The queue: test items at every fourth hand-out, in their keyed random order, never by uncertainty.
    order = list(
        QueueEntry.objects.filter(project=vessel_project).order_by("-priority").values_list("item_id", flat=True)
    )
    held = [i for i in order if i in test_items]
    assert held == sorted(held, key=lambda i: (stable_draw(vessel_project.pk, i, "test-order"), i))
    others = [i for i in order if i not in test_items]
    labelled_test = Item.objects.filter(pk__in=test_items, labels__isnull=False).distinct().count()
    assert order == interleave_test(others, held, 0.25, first=max(10 - labelled_test, 0))
    # Re-ranked by the same champion: the test items keep their places.
    queue_rerank(project=vessel_project, version=version, seed=9)
    again = QueueEntry.objects.filter(project=vessel_project).order_by("-priority").values_list("item_id", flat=True)
    assert [i for i in again if i in test_items] == held


def test_without_a_test_set_nothing_is_promoted(oct_project, annotator, lead, executor, tmp_path):
    from tests.cohort_projects import label_oct

    cohort = oct_cohort(oct_project, tmp_path / "oct", pullbacks=2, frames=6)
    splits_configure(project=oct_project, test_fraction=0.0, validation_fraction=0.0)
    for item, (_, mask, quality) in cohort.items():
        label_oct(item, annotator, mask, quality)
    hparams = {"epochs": 1, "size": 32, "base": 4, "depth": 2, "patience": 0}
    training_request(project=oct_project, by=lead, hparams=hparams)
    job = run_next_job(executor)
    assert not job.result["wins"] and job.result["promotion_rule"].startswith("not enough evidence: 0")
    assert ModelVersion.objects.get(project=oct_project).status == ModelStatus.REJECTED


def test_a_small_project_gets_one_test_patient(oct_project, tmp_path):
    cohort = oct_cohort(oct_project, tmp_path / "oct", pullbacks=4, frames=3)
    assert len({item.patient_id for item in cohort}) == 4
    splits_fill(project=oct_project)
    test = Item.objects.filter(project=oct_project, split=Split.TEST)
    assert test.exists() and len(set(test.values_list("patient_id", flat=True))) == 1


def test_annotators_see_neither_the_split_nor_a_prediction_of_a_test_item(
    vessel_project, annotator, lead, client_for, tmp_path
):
    project_update(project=vessel_project, settings={"show_predictions_to_annotators": True})
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=2, runs=1)
    held, trained = sorted(cohort, key=lambda item: item.pk)
    Item.objects.filter(pk=held.pk).update(split=Split.TEST)
    Item.objects.filter(pk=trained.pk).update(split=Split.TRAIN)
    version = ModelVersion.objects.create(
        project=vessel_project, number=1, family="metadata_logreg", status=ModelStatus.CHAMPION
    )
    for item in (held, trained):
        Prediction.objects.create(item=item, model_version=version, output={"vessel": "LCA"}, uncertainty=0.1)
    annotator_client, lead_client = client_for(annotator), client_for(lead)
    body = annotator_client.get(reverse("api:item-workspace", args=[held.pk])).json()
    assert body["item"]["split"] is None and body["prediction"] is None
    assert annotator_client.get(reverse("api:item-detail", args=[held.pk])).json()["split"] is None
    assert annotator_client.get(reverse("api:item-workspace", args=[trained.pk])).json()["prediction"] is not None
    listed = reverse("api:prediction-list")
    assert annotator_client.get(f"{listed}?item={held.pk}").json()["count"] == 0
    assert annotator_client.get(f"{listed}?item={trained.pk}").json()["count"] == 1
    assert lead_client.get(f"{listed}?item={held.pk}").json()["count"] == 1
    assert lead_client.get(reverse("api:item-workspace", args=[held.pk])).json()["item"]["split"] == "test"
    assert lead_client.get(reverse("api:item-detail", args=[held.pk])).json()["split"] == "test"
