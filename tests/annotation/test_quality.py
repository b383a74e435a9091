"""Label quality for leads: agreement per task, per-annotator statistics, adjudication, model health, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.models import (
    Adjudication,
    Assignment,
    AssignmentState,
    Item,
    Label,
    LabelSource,
    ModelStatus,
    ModelVersion,
    Prediction,
    Role,
    Split,
)
from annotation.services import label_submit, project_update
from annotation.training_data import final_targets
from learning.masks import mask_encode
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run, spect_dicom
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def report(client, project, name):
    response = client.get(reverse("api:quality-report", args=[project.slug, name]))
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def runs(vessel_project):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=i, frames=2, size=16)) for i in range(10)])
    return list(vessel_project.items.order_by("pk"))


def label(item, author, payload, **extra):
    return label_submit(item=item, author=author, payload=payload, base_version=None, **extra)


# ---------------------------------------------------------------------------------------------------- agreement
def test_vessel_agreement_matches_the_hand_computed_kappa(
    runs, vessel_project, annotator, second_annotator, lead, client_for
):
    a = ["LCA", "LCA", "RCA", "RCA", "LCA", "RCA", "LCA", "LCA", "RCA", "RCA"]
    b = ["LCA", "RCA", "RCA", "RCA", "LCA", "LCA", "LCA", "LCA", "RCA", "RCA"]
    for item, first, other in zip(runs, a, b, strict=True):
        label(item, annotator, {"vessel": first})
        label(item, second_annotator, {"vessel": other})
    body = report(client_for(lead), vessel_project, "agreement")
    overall = body["overall"]
    # 8 of 10 agree; each annotator 5 LCA / 5 RCA, so chance 0.5 and kappa 0.6; Fleiss: P-bar 0.8, P-e 0.5.
    assert overall["percent_agreement"] == 0.8 and overall["kappa"] == pytest.approx(0.6)
    assert overall["fleiss_kappa"] == pytest.approx(0.6) and overall["items"] == 10
    assert overall["categories"] == ["LCA", "RCA", "neither", "unusable"]
    assert overall["confusion"][0][:2] == [4, 1] and overall["confusion"][1][:2] == [1, 4]
    (pair,) = body["pairs"]
    assert (pair["first"], pair["second"], pair["items"]) == ("annotator-user", "second-annotator", 10)
    (today,) = body["over_time"]
    assert today["pairs"] == 10 and today["agreement"] == 0.8


def test_perfect_agreement_on_one_class_is_kappa_one(
    runs, vessel_project, annotator, second_annotator, lead, client_for
):
    for item in runs[:3]:
        label(item, annotator, {"vessel": "LCA"})
        label(item, second_annotator, {"vessel": "LCA"})
    overall = report(client_for(lead), vessel_project, "agreement")["overall"]
    assert overall["kappa"] == 1.0 and overall["percent_agreement"] == 1.0 and overall["fleiss_kappa"] == 1.0


def test_oct_agreement_per_frame_and_on_excluded_frames(oct_project, annotator, lead, client_for):
    project_update(project=oct_project, settings={"overlap_rate": 0.0})
    other = UserFactory(username="oct-second")
    MembershipFactory(project=oct_project, user=other, role=Role.ANNOTATOR)
    pullback = samples.xa_bytes(modality="IVOCT", sop_class=samples.IVOCT_CLASS, frames=4, size=16, samples=3)
    run(oct_project, ("pullback.dcm", pullback))
    frames = list(oct_project.items.order_by("frame_index"))
    square = np.zeros((16, 16), bool)
    square[2:6, 2:6] = True  # 16 pixels
    shifted = np.zeros((16, 16), bool)
    shifted[2:6, 4:8] = True  # 16 pixels, 8 shared: Dice 16/32 = 0.5, IoU 8/24
    empty = np.zeros((16, 16), bool)
    label(frames[0], annotator, {"mask": mask_encode(square)})
    label(frames[0], other, {"mask": mask_encode(shifted)})
    label(frames[1], annotator, {"mask": mask_encode(empty)})
    label(frames[1], other, {"mask": mask_encode(empty)})  # both empty: Dice 1
    excluded = {"excluded": True, "exclusion_reason": "in_guide_catheter"}
    label(frames[2], annotator, excluded)
    label(frames[2], other, excluded)
    label(frames[3], annotator, excluded)
    label(frames[3], other, {"mask": mask_encode(square)})
    body = report(client_for(lead), oct_project, "agreement")
    dice = {f["item"]: (f["dice"], f["iou"]) for f in body["frames"]}
    assert dice[frames[0].pk] == (0.5, pytest.approx(1 / 3, abs=1e-4)) and dice[frames[1].pk] == (1.0, 1.0)
    overall = body["overall"]
    assert overall["frames_with_masks"] == 2 and overall["dice_mean"] == 0.75
    # excluded flags: (F,F), (F,F), (T,T), (T,F) -> 3/4; kappa: po 0.75, pe 0.5*0.25 + 0.5*0.75 = 0.5 -> 0.5
    assert overall["excluded_agreement"] == 0.75 and overall["excluded_kappa"] == pytest.approx(0.5)


def test_spect_weighted_kappa_icc_and_flag_kappa_by_hand(spect_project, annotator, lead, client_for):
    project_update(project=spect_project, settings={"overlap_rate": 0.0})
    other = UserFactory(username="spect-second")
    MembershipFactory(project=spect_project, user=other, role=Role.ANNOTATOR)
    for n in range(2):
        patient = f"MRN-Q{n}"
        run(
            spect_project,
            (f"r{n}.dcm", spect_dicom("rest", patient_id=patient, seed=2 * n)),
            (f"s{n}.dcm", spect_dicom("stress", patient_id=patient, seed=2 * n + 1)),
        )
    first_item, second_item = list(spect_project.items.order_by("pk"))
    rest = [0] * 17

    def scores(**segments):
        out = [0] * 17
        for key, value in segments.items():
            out[int(key[1:]) - 1] = value
        return out

    label(first_item, annotator, {"stress": scores(s1=2), "rest": rest})
    label(first_item, other, {"stress": scores(s1=2), "rest": rest})
    label(second_item, annotator, {"stress": scores(s3=4), "rest": rest})
    label(second_item, other, {"stress": scores(s3=1), "rest": rest})
    overall = report(client_for(lead), spect_project, "agreement")["overall"]
    # segment 3: (0,0), (4,1) on 0-4 with quadratic weights -> 1 - 0.28125 / 0.40625
    assert overall["segment_weighted_kappa"][2] == pytest.approx(1 - 0.28125 / 0.40625, abs=1e-4)
    assert overall["segment_weighted_kappa"][0] == 1.0
    territories = overall["territories"]
    assert territories["LAD"]["sss_icc"] == pytest.approx(1.0)
    assert territories["RCA"]["sss_icc"] == pytest.approx(4 / 8.5, abs=1e-4)  # ICC(2,1) of [[0,0],[4,1]]
    assert territories["RCA"]["flag_agreement"] == 0.5 and territories["RCA"]["flag_kappa"] == 0.0


# ---------------------------------------------------------------------------------------------------- annotators
def test_annotator_statistics_gold_consensus_pace_and_skips(
    runs, vessel_project, annotator, second_annotator, lead, client_for
):
    for item in runs[:2]:
        label(item, lead, {"vessel": "LCA"})
        Item.objects.filter(pk=item.pk).update(is_gold=True)
    label(runs[0], annotator, {"vessel": "LCA"}, time_spent_ms=60_000)
    label(runs[1], annotator, {"vessel": "RCA"}, time_spent_ms=30_000)
    label(runs[2], annotator, {"vessel": "LCA"}, time_spent_ms=90_000)
    Assignment.objects.create(
        item=runs[3], annotator=annotator, state=AssignmentState.SKIPPED, expires_at=timezone.now(), skip_reason="x"
    )
    rows = {row["annotator"]: row for row in report(client_for(lead), vessel_project, "annotators")["annotators"]}
    mine = rows["annotator-user"]
    assert (mine["labels"], mine["gold_items"], mine["gold_agreement"]) == (3, 2, 0.5)
    # The consensus of a gold item is the lead's label: one right, one wrong.
    assert (mine["consensus_items"], mine["consensus_agreement"]) == (2, 0.5)
    assert mine["median_seconds_per_item"] == 60.0 and mine["items_per_hour"] == pytest.approx(60.0)
    assert mine["skips"] == 1 and mine["skip_rate"] == 0.25
    assert rows["lead-user"]["gold_items"] == 0


# ---------------------------------------------------------------------------------------------------- adjudication
def test_a_disagreement_is_adjudicated_end_to_end_and_history_is_kept(
    runs, vessel_project, annotator, second_annotator, lead, client_for
):
    item = runs[0]
    first = label(item, annotator, {"vessel": "LCA"})
    other = label(item, second_annotator, {"vessel": "RCA"})
    label(runs[1], annotator, {"vessel": "RCA"})
    label(runs[1], second_annotator, {"vessel": "RCA"})  # agreement: no case
    lead_client = client_for(lead)
    cases = report(lead_client, vessel_project, "adjudication")["cases"]
    assert [c["item"] for c in cases] == [item.pk]
    case = cases[0]
    assert case["reason"] == "disagreement" and case["detail"] == "2 annotators disagree"
    assert [(lb["author"], lb["payload"]["vessel"]) for lb in case["labels"]] == [
        ("annotator-user", "LCA"),
        ("second-annotator", "RCA"),
    ]
    assert final_targets(vessel_project)[1] == 1  # disputed: trains nothing yet
    url = reverse("api:item-adjudicate", args=[item.pk])
    assert (
        client_for(annotator)
        .post(url, {"payload": {"vessel": "RCA"}, "reason": "disagreement"}, format="json")
        .status_code
        == 403
    )
    bad = lead_client.post(url, {"payload": {"vessel": "LAD"}, "reason": "disagreement"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "payload.vessel"
    unknown = lead_client.post(url, {"payload": {"vessel": "RCA"}, "reason": "whim"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["field"] == "reason"
    settled = lead_client.post(
        url, {"payload": {"vessel": "RCA"}, "reason": "disagreement", "note": "RCA in both views"}, format="json"
    )
    assert settled.status_code == 201, settled.content
    decision = Adjudication.objects.get(item=item)
    assert decision.considered_labels == [first.pk, other.pk] and decision.note == "RCA in both views"
    assert decision.label.source == LabelSource.ADJUDICATION and decision.decided_by == lead
    assert report(lead_client, vessel_project, "adjudication")["cases"] == []
    targets, disputed = final_targets(vessel_project)
    assert disputed == 0 and targets[item.pk].label == decision.label and targets[item.pk].target == 1
    assert Label.objects.filter(item=item).count() == 3  # both annotators' labels stay in history


def test_a_confident_model_disagreeing_with_a_label_is_a_case(runs, vessel_project, annotator, lead, client_for):
    version = ModelVersion.objects.create(
        project=vessel_project,
        number=1,
        family="metadata_mlp",
        status=ModelStatus.CHAMPION,
        weights_path="w.pt",
        promoted_at=timezone.now(),
    )
    for item, vessel, confidence in ((runs[0], "LCA", 0.97), (runs[1], "LCA", 0.6), (runs[2], "RCA", 0.99)):
        Prediction.objects.create(
            item=item, model_version=version, output={"vessel": vessel}, uncertainty=0.1, confidence=confidence
        )
    for item in runs[:3]:
        label(item, annotator, {"vessel": "RCA"})
    cases = report(client_for(lead), vessel_project, "adjudication")["cases"]
    assert [c["item"] for c in cases] == [runs[0].pk]  # unsure model: no case; agreeing model: no case
    assert cases[0]["reason"] == "model_disagrees" and cases[0]["prediction"]["model_version"] == 1
    assert "97% sure" in cases[0]["detail"]


def test_cases_are_ranked_by_how_much_they_matter(runs, vessel_project, annotator, second_annotator, lead, client_for):
    Item.objects.filter(pk=runs[0].pk).update(split=Split.TRAIN)
    Item.objects.filter(pk=runs[1].pk).update(split=Split.TEST)
    Item.objects.filter(pk=runs[2].pk).update(split=Split.TRAIN, is_gold=True)
    for item in runs[:3]:
        label(item, annotator, {"vessel": "LCA"})
        label(item, second_annotator, {"vessel": "neither"})
    cases = report(client_for(lead), vessel_project, "adjudication")["cases"]
    assert [c["item"] for c in cases] == [runs[1].pk, runs[2].pk, runs[0].pk]
    assert cases[0]["importance"] > cases[1]["importance"] > cases[2]["importance"]


# ---------------------------------------------------------------------------------------------------- health
def test_model_health_curve_agreement_over_time_and_queue_uncertainty(
    runs, vessel_project, annotator, lead, client_for
):
    for number, (labels, test, status) in enumerate(((20, 0.7, "retired"), (40, 0.85, "champion")), start=1):
        ModelVersion.objects.create(
            project=vessel_project,
            number=number,
            family="metadata_mlp",
            status=status,
            weights_path="w.pt",
            promoted_at=timezone.now() - timedelta(days=3 - number),
            metrics={
                "train_examples": labels,
                "pseudo_examples": 0,
                "test": {"macro_f1": test, "n": 12},
            },
            decision_rule=f"rule {number}",
        )
    champion = ModelVersion.objects.get(number=2, project=vessel_project)
    for i, item in enumerate(runs):
        Prediction.objects.create(
            item=item, model_version=champion, output={"vessel": "LCA"}, uncertainty=0.05 * i, confidence=0.9
        )
    label(runs[0], annotator, {"vessel": "LCA"})
    label(runs[1], annotator, {"vessel": "RCA"})
    body = report(client_for(lead), vessel_project, "health")
    assert body["metric"] == "macro_f1"
    assert [(p["labels"], p["test"]) for p in body["learning_curve"]] == [(20, 0.7), (40, 0.85)]
    assert [v["rule"] for v in body["versions"]] == ["rule 1", "rule 2"]
    (day,) = body["model_vs_human"]
    assert day["items"] == 2 and day["agreement"] == 0.5
    histogram = body["queue_uncertainty"]
    assert histogram["model_version"] == 2 and histogram["items"] == 8 and sum(histogram["counts"]) == 8


# ---------------------------------------------------------------------------------------------------- access, CSV
def test_quality_pages_are_for_leads_only_and_tables_export_as_csv(
    runs, vessel_project, annotator, lead, stranger, client_for
):
    label(runs[0], annotator, {"vessel": "LCA"}, time_spent_ms=5000)
    for name in ("agreement", "annotators", "adjudication", "health"):
        url = reverse("api:quality-report", args=[vessel_project.slug, name])
        assert client_for(annotator).get(url).status_code == 403
        assert client_for(stranger).get(url).status_code == 404
        assert client_for(lead).get(url).status_code == 200
    url = reverse("api:quality-export", args=[vessel_project.slug, "annotators"])
    response = client_for(lead).get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["annotator"] == "annotator-user" and rows[0]["labels"] == "1"
    for table in (
        "agreement_pairs",
        "adjudication",
        "model_versions",
        "learning_curve",
        "model_vs_human",
        "queue_uncertainty",
        "agreement_frames",
        "agreement_over_time",
    ):
        assert client_for(lead).get(reverse("api:quality-export", args=[vessel_project.slug, table])).status_code == 200
    assert client_for(annotator).get(url).status_code == 403
    assert client_for(lead).get(reverse("api:quality-export", args=[vessel_project.slug, "nope"])).status_code == 404


# ---------------------------------------------------------------------------------------------------- review
def test_work_sent_back_for_review_returns_to_the_annotator_first(runs, vessel_project, annotator, lead, client_for):
    from annotation.models import AssignmentKind, ReviewItem
    from annotation.services import item_next, item_skip

    for item in runs[:3]:
        label(item, annotator, {"vessel": "LCA"})
    url = reverse("api:reviews", args=[vessel_project.slug])
    assert client_for(annotator).post(url, {"annotator": "annotator-user"}, format="json").status_code == 403
    refused = client_for(lead).post(url, {"annotator": "nobody"}, format="json")
    assert refused.status_code == 400 and refused.json()["field"] == "annotator"
    sent = client_for(lead).post(url, {"annotator": "annotator-user", "limit": 2, "note": "LAO views"}, format="json")
    assert sent.status_code == 201 and sorted(sent.json()["items"]) == [runs[1].pk, runs[2].pk]
    again = client_for(lead).post(url, {"annotator": "annotator-user", "limit": 2}, format="json")
    assert again.status_code == 201 and again.json()["items"] == [runs[0].pk]  # not sent twice
    client = client_for(annotator)
    body = client.post(reverse("api:project-next", args=[vessel_project.slug])).json()
    assert body["item"] in (runs[1].pk, runs[2].pk) and body["progress"]["to_review"] == 3
    workspace = client.get(reverse("api:item-workspace", args=[body["item"]])).json()
    assert workspace["review"] == {
        "requested_by": "lead-user",
        "requested_at": workspace["review"]["requested_at"],
        "note": "LAO views",
    }
    assert workspace["label"]["version"] == 1  # their own label, to keep or change
    lease = Assignment.objects.get(item_id=body["item"], annotator=annotator, state=AssignmentState.LEASED)
    assert lease.kind == AssignmentKind.REVIEW
    changed = client.post(
        reverse("api:label-list"),
        {"item": body["item"], "payload": {"vessel": "RCA"}, "base_version": 1},
        format="json",
    )
    assert changed.status_code == 201
    review = ReviewItem.objects.get(item_id=body["item"])
    assert review.resolved_label_id == changed.json()["id"] and review.resolved_at is not None
    # The next review item; skipping it closes the request and keeps the label.
    second = item_next(project=vessel_project, annotator=annotator)
    assert second.kind == AssignmentKind.REVIEW and second.item_id != body["item"]
    item_skip(item=second.item, annotator=annotator, reason="I stand by it")
    assert ReviewItem.objects.get(item=second.item).resolved_label is None
    assert Label.objects.get(item=second.item, author=annotator, superseded_at__isnull=True).version == 1
    third = item_next(project=vessel_project, annotator=annotator)
    assert third.kind == AssignmentKind.REVIEW and third.item_id == runs[0].pk
    assert Item.objects.get(pk=runs[0].pk).open_slots == 0  # a review takes no queue slot
