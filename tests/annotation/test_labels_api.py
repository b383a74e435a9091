"""Labels through the API: validated per task, versioned, never overwritten, conflicts answered 409."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from annotation.models import Label
from annotation.services import import_run
from learning.masks import mask_decode, mask_encode
from tests import dicom_samples as samples
from tests.annotation.test_ingest import source

pytestmark = pytest.mark.django_db
LABELS = "/api/labels/"


@pytest.fixture
def cine_item(vessel_project):
    import_run(project=vessel_project, sources=[source("run.dcm", samples.xa_bytes())])
    return vessel_project.items.get()


def test_submit_then_edit_keeps_every_version(cine_item, client_for, annotator):
    api = client_for(annotator)
    first = api.post(LABELS, {"item": cine_item.pk, "payload": {"vessel": "LCA"}, "time_spent_ms": 4200}, format="json")
    assert first.status_code == 201, first.json()
    assert (first.json()["version"], first.json()["is_current"]) == (1, True)
    second = api.post(LABELS, {"item": cine_item.pk, "payload": {"vessel": "RCA"}, "base_version": 1}, format="json")
    assert second.status_code == 201
    history = list(Label.objects.filter(item=cine_item).order_by("version"))
    assert [(h.version, h.payload["vessel"], h.is_current) for h in history] == [(1, "LCA", False), (2, "RCA", True)]
    assert history[1].previous_id == history[0].pk and history[0].time_spent_ms == 4200


def test_stale_edit_is_a_conflict_and_changes_nothing(cine_item, client_for, annotator):
    api = client_for(annotator)
    api.post(LABELS, {"item": cine_item.pk, "payload": {"vessel": "LCA"}}, format="json")
    api.post(LABELS, {"item": cine_item.pk, "payload": {"vessel": "RCA"}, "base_version": 1}, format="json")
    stale = api.post(LABELS, {"item": cine_item.pk, "payload": {"vessel": "neither"}, "base_version": 1}, format="json")
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 2
    first_again = api.post(LABELS, {"item": cine_item.pk, "payload": {"vessel": "neither"}}, format="json")
    assert first_again.status_code == 409
    assert Label.objects.filter(item=cine_item).count() == 2
    assert Label.objects.get(item=cine_item, superseded_at__isnull=True).payload == {"vessel": "RCA"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"vessel": "LAD"}, "payload.vessel"),
        ({"vessel": "unusable"}, "payload.unusable_reason"),
        ({"vessel": "LCA", "colour": "red"}, "payload.colour"),
        ("LCA", "payload"),
    ],
)
def test_bad_vessel_payload_is_a_400_naming_the_field(cine_item, client_for, annotator, payload, field):
    response = client_for(annotator).post(LABELS, {"item": cine_item.pk, "payload": payload}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert not Label.objects.exists()


def test_strangers_cannot_label(cine_item, client_for, stranger):
    response = client_for(stranger).post(LABELS, {"item": cine_item.pk, "payload": {"vessel": "LCA"}}, format="json")
    # Exactly as for an item that does not exist: a stranger learns nothing about which ids are taken.
    assert response.status_code == 400
    assert response.json() == {"item": [f'Invalid pk "{cine_item.pk}" - object does not exist.']}
    assert not cine_item.labels.exists()


def test_oct_mask_round_trips_exactly(oct_project, client_for, annotator):
    data = samples.xa_bytes(modality="IVOCT", sop_class=samples.IVOCT_CLASS, frames=2, size=32, samples=3)
    import_run(project=oct_project, sources=[source("p.dcm", data)])
    item = oct_project.items.order_by("frame_index").first()
    mask = np.random.default_rng(3).random((32, 32)) > 0.7
    response = client_for(annotator).post(
        LABELS, {"item": item.pk, "payload": {"mask": mask_encode(mask)}}, format="json"
    )
    assert response.status_code == 201, response.json()
    stored = Label.objects.get(pk=response.json()["id"])
    np.testing.assert_array_equal(mask_decode(stored.payload["mask"]), mask)
    wrong = client_for(annotator).post(
        LABELS,
        {"item": item.pk, "payload": {"mask": mask_encode(np.zeros((8, 8), bool))}, "base_version": 1},
        format="json",
    )
    assert wrong.status_code == 400 and "does not match the frame" in wrong.json()["detail"]
    excluded = client_for(annotator).post(
        LABELS,
        {"item": item.pk, "payload": {"excluded": True, "exclusion_reason": "in_guide_catheter"}, "base_version": 1},
        format="json",
    )
    assert excluded.status_code == 201


def test_spect_scores_are_checked_segment_by_segment(spect_project, client_for, annotator):
    from tests.annotation.test_ingest import spect_dicom

    import_run(
        project=spect_project,
        sources=[source("r.dcm", spect_dicom("rest")), source("s.dcm", spect_dicom("stress", seed=1))],
    )
    item = spect_project.items.get()
    scores = [0] * 17
    bad = client_for(annotator).post(
        LABELS, {"item": item.pk, "payload": {"stress": scores[:-1] + [5], "rest": scores}}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["field"] == "payload.stress[16]"
    no_reason = {"stress": scores, "rest": scores, "flag_overrides": {"LAD": {"abnormal": True, "reason": " "}}}
    response = client_for(annotator).post(LABELS, {"item": item.pk, "payload": no_reason}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "payload.flag_overrides.LAD.reason"
    good = {
        "stress": scores,
        "rest": scores,
        "flag_overrides": {"LAD": {"abnormal": True, "reason": "apical thinning"}},
    }
    assert client_for(annotator).post(LABELS, {"item": item.pk, "payload": good}, format="json").status_code == 201


def test_item_frames_and_polar_maps_are_served(cine_item, client_for, annotator):
    detail = client_for(annotator).get(reverse("api:item-detail", args=[cine_item.pk])).json()
    media = detail["media"]
    assert media["frames"] == 4 and media["geometry"]["view"] == "LAO 30 / CAU 20"
    frame = client_for(annotator).get(media["frame_url_template"].replace("{n}", "3"))
    assert frame.status_code == 200 and frame["Cache-Control"].startswith("private")
    assert client_for(annotator).get(media["frame_url_template"].replace("{n}", "4")).status_code == 404
