"""The annotator workspace API: next item and leases, skip, drafts, the workspace body, ICA references."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from rest_framework.renderers import JSONRenderer

from annotation import selectors
from annotation.api.views import first_frame, first_images, workspace_body
from annotation.models import (
    Assignment,
    AssignmentState,
    Draft,
    IcaReference,
    InterpolationModel,
    Item,
    Label,
    ModelStatus,
    ModelVersion,
    Prediction,
)
from annotation.services import label_submit, project_update
from annotation.services.adjudication import review_request_create
from annotation.services.queue import queue_set_order
from annotation.services.slots import slots_recount
from learning.masks import mask_encode
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run, spect_dicom

pytestmark = pytest.mark.django_db
LABELS = reverse("api:label-list")


def next_url(project) -> str:
    return reverse("api:project-next", args=[project.slug])


@pytest.fixture
def runs(vessel_project):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=i)) for i in range(3)])
    items = list(vessel_project.items.order_by("id"))
    # The queue serves its order, best first.
    queue_set_order(project=vessel_project, item_ids=[items[1].pk, items[2].pk, items[0].pk], strategy="manual")
    return items


def test_next_leases_by_priority_and_resumes_the_same_lease(runs, vessel_project, client_for, annotator):
    client = client_for(annotator)
    first = client.post(next_url(vessel_project)).json()
    assert first["item"] == runs[1].pk
    assert first["progress"] == {"to_do": 3, "done": 0, "skipped": 0, "to_review": 0}
    assert first["workspace_url"] == reverse("api:item-workspace", args=[runs[1].pk])
    # One round trip: `next` carries the workspace the tool draws, the same body its own endpoint answers.
    assert first["workspace"] == client.get(first["workspace_url"]).json()
    assert first["workspace"]["item"]["id"] == runs[1].pk and first["workspace"]["lease_expires_at"]
    Assignment.objects.filter(annotator=annotator).update(expires_at=timezone.now() + timedelta(minutes=1))
    again = client.post(next_url(vessel_project)).json()
    assert again["item"] == runs[1].pk
    lease = Assignment.objects.get(annotator=annotator, state=AssignmentState.LEASED)
    # Resuming extends the lease again, and the answer says until when.
    assert lease.expires_at > timezone.now() + timedelta(minutes=5)
    assert again["lease_expires_at"] == again["workspace"]["lease_expires_at"]
    assert datetime.fromisoformat(again["lease_expires_at"].replace("Z", "+00:00")) == lease.expires_at


def test_two_annotators_never_get_the_same_item(runs, vessel_project, client_for, annotator, second_annotator):
    one = client_for(annotator).post(next_url(vessel_project)).json()["item"]
    two = client_for(second_annotator).post(next_url(vessel_project)).json()["item"]
    assert one == runs[1].pk and two == runs[2].pk


def test_an_expired_lease_returns_the_item_to_the_queue(runs, vessel_project, client_for, annotator, second_annotator):
    client_for(annotator).post(next_url(vessel_project))
    Assignment.objects.filter(annotator=annotator).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client_for(second_annotator).post(next_url(vessel_project)).json()["item"] == runs[1].pk
    assert Assignment.objects.get(annotator=annotator).state == AssignmentState.EXPIRED


def test_submit_closes_the_lease_deletes_the_draft_and_moves_on(runs, vessel_project, client_for, annotator):
    client = client_for(annotator)
    item = client.post(next_url(vessel_project)).json()["item"]
    draft_url = reverse("api:item-draft", args=[item])
    assert (
        client.put(draft_url, {"payload": {"vessel": "RCA"}, "time_spent_ms": 1500}, format="json").status_code == 200
    )
    response = client.post(LABELS, {"item": item, "payload": {"vessel": "LCA"}, "time_spent_ms": 2100}, format="json")
    assert response.status_code == 201
    lease = Assignment.objects.get(item_id=item, annotator=annotator)
    assert lease.state == AssignmentState.SUBMITTED and lease.label_id == response.json()["id"]
    assert not Draft.objects.filter(item_id=item).exists()
    following = client.post(next_url(vessel_project)).json()
    assert following["item"] == runs[2].pk
    assert following["progress"] == {"to_do": 2, "done": 1, "skipped": 0, "to_review": 0}


def test_a_draft_comes_back_with_the_item_when_it_is_handed_out_again(runs, vessel_project, client_for, annotator):
    client = client_for(annotator)
    first = client.post(next_url(vessel_project)).json()
    assert first["workspace"]["draft"] is None
    client.put(first["workspace"]["draft_url"], {"payload": {"vessel": "RCA"}, "time_spent_ms": 900}, format="json")
    assert client.post(first["workspace"]["release_url"]).status_code == 200
    # A fresh lease of the same item (it is still first in the queue): the draft is part of the answer.
    again = client.post(next_url(vessel_project)).json()
    assert again["item"] == first["item"]
    assert again["workspace"]["draft"]["payload"] == {"vessel": "RCA"}


def test_labelled_items_are_not_offered_again_and_the_queue_ends(runs, vessel_project, client_for, annotator):
    for item in runs:
        label_submit(item=item, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    body = client_for(annotator).post(next_url(vessel_project)).json()
    assert body["item"] is None and "Nothing left" in body["detail"]
    assert body["progress"] == {"to_do": 0, "done": 3, "skipped": 0, "to_review": 0}


def test_overlap_items_go_to_a_second_annotator(runs, vessel_project, client_for, annotator, second_annotator):
    overlap = runs[1]
    Item.objects.filter(pk=overlap.pk).update(required_labels=2)
    slots_recount(item_ids=[overlap.pk])
    assert client_for(annotator).post(next_url(vessel_project)).json()["item"] == overlap.pk
    assert client_for(second_annotator).post(next_url(vessel_project)).json()["item"] == overlap.pk


def test_skip_needs_a_reason_and_is_not_offered_again(runs, vessel_project, client_for, annotator):
    client = client_for(annotator)
    item = client.post(next_url(vessel_project)).json()["item"]
    skip_url = reverse("api:item-skip", args=[item])
    refused = client.post(skip_url, {"reason": "  "}, format="json")
    assert refused.status_code == 400 and "reason" in refused.json()
    assert client.post(skip_url, {"reason": "contrast too faint"}, format="json").status_code == 200
    lease = Assignment.objects.get(item_id=item, annotator=annotator)
    assert lease.state == AssignmentState.SKIPPED and lease.skip_reason == "contrast too faint"
    body = client.post(next_url(vessel_project)).json()
    assert body["item"] != item and body["progress"] == {"to_do": 2, "done": 0, "skipped": 1, "to_review": 0}


def test_release_gives_the_item_back(runs, vessel_project, client_for, annotator, second_annotator):
    item = client_for(annotator).post(next_url(vessel_project)).json()["item"]
    assert client_for(annotator).post(reverse("api:item-release", args=[item])).json()["released"] == 1
    assert client_for(second_annotator).post(next_url(vessel_project)).json()["item"] == item


def test_drafts_are_private_validated_and_restored_in_the_workspace(
    runs, client_for, annotator, second_annotator, settings
):
    item = runs[0]
    draft_url = reverse("api:item-draft", args=[item.pk])
    workspace_url = reverse("api:item-workspace", args=[item.pk])
    client = client_for(annotator)
    saved = client.put(draft_url, {"payload": {"vessel": "unusable"}, "time_spent_ms": 4200}, format="json")
    assert saved.status_code == 200
    body = client.get(workspace_url).json()
    assert body["draft"]["payload"] == {"vessel": "unusable"} and body["draft"]["time_spent_ms"] == 4200
    assert client_for(second_annotator).get(workspace_url).json()["draft"] is None
    not_object = client.put(draft_url, {"payload": [1, 2]}, format="json")
    assert not_object.status_code == 400 and not_object.json()["field"] == "payload"
    settings.LUMEN_MAX_DRAFT_BYTES = 50
    too_big = client.put(draft_url, {"payload": {"note": "x" * 100}}, format="json")
    assert too_big.status_code == 400 and "more than 50" in too_big.json()["detail"]
    assert client.delete(draft_url).status_code == 204
    assert client.get(workspace_url).json()["draft"] is None


def test_workspace_shows_my_label_and_hides_predictions_for_vessel_type(runs, vessel_project, client_for, annotator):
    item = runs[0]
    label_submit(item=item, author=annotator, payload={"vessel": "RCA"}, base_version=None)
    version = ModelVersion.objects.create(
        project=vessel_project, number=1, family="r2plus1d", status=ModelStatus.CHAMPION
    )
    Prediction.objects.create(item=item, model_version=version, output={"probabilities": {"LCA": 0.9}}, uncertainty=0.3)
    body = client_for(annotator).get(reverse("api:item-workspace", args=[item.pk])).json()
    assert body["task_type"] == "vessel_type" and body["label"]["version"] == 1
    assert body["label"]["payload"] == {"vessel": "RCA"}
    assert body["item"]["media"]["geometry"]["view"]
    assert body["prediction"] is None


def test_oct_workspace_has_the_pullback_lmode_and_the_starting_mask(oct_project, client_for, annotator):
    data = samples.xa_bytes(modality="IVOCT", sop_class=samples.IVOCT_CLASS, frames=3, size=32, samples=3)
    run(oct_project, ("pullback.dcm", data))
    frames = list(oct_project.items.order_by("frame_index"))
    label_submit(
        item=frames[0], author=annotator, payload={"excluded": True, "exclusion_reason": "artifact"}, base_version=None
    )
    mask = np.zeros((32, 32), bool)
    mask[4:9, 10:20] = True
    label_submit(item=frames[2], author=annotator, payload={"mask": mask_encode(mask)}, base_version=None)
    version = ModelVersion.objects.create(project=oct_project, number=1, family="unet", status=ModelStatus.CHAMPION)
    Prediction.objects.create(
        item=frames[1], model_version=version, output={"mask": mask_encode(mask)}, uncertainty=0.1
    )
    client = client_for(annotator)
    body = client.get(reverse("api:item-workspace", args=[frames[1].pk])).json()
    pullback = body["pullback"]
    assert pullback["frames"] == 3
    assert [f["mine"] for f in pullback["frame_items"]] == ["excluded", None, "mask"]
    assert body["prediction"]["output"]["mask"] == mask_encode(mask)
    png = client.get(pullback["lmode_url"])
    assert png.status_code == 200
    with Image.open(io.BytesIO(png.content)) as strip:
        assert strip.size == (3, 32)


def test_ica_reference_is_entered_by_leads_only(spect_project, client_for, lead, annotator):
    run(spect_project, ("r.dcm", spect_dicom("rest")), ("s.dcm", spect_dicom("stress", seed=1)))
    item = spect_project.items.get()
    url = reverse("api:item-ica", args=[item.pk])
    assert client_for(annotator).post(url, {"stenosis_lad": 80}, format="json").status_code == 403
    bad = client_for(lead).post(url, {"stenosis_lad": 180}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "stenosis_lad"
    empty = client_for(lead).post(url, {}, format="json")
    assert empty.status_code == 400 and "at least one vessel" in empty.json()["detail"]
    created = client_for(lead).post(url, {"stenosis_lm": 55, "stenosis_rca": 30}, format="json")
    assert created.status_code == 201
    assert created.json()["obstructive"] == {"LAD": True, "LCX": True, "RCA": False, "any": True}
    client_for(lead).post(url, {"stenosis_lm": 10, "stenosis_rca": 75}, format="json")
    assert IcaReference.objects.filter(item=item).count() == 2  # append-only; the newest counts
    body = client_for(annotator).get(reverse("api:item-workspace", args=[item.pk])).json()
    assert body["ica"]["stenosis_rca"] == 75 and body["ica"]["obstructive"]["any"] is True
    assert body["can_edit_ica"] is False and body["item"]["media"]["clinical"] is not None


def test_strangers_get_404_everywhere(runs, vessel_project, client_for, stranger):
    client = client_for(stranger)
    assert client.post(next_url(vessel_project)).status_code == 404
    assert client.get(reverse("api:item-workspace", args=[runs[0].pk])).status_code == 404
    assert client.put(reverse("api:item-draft", args=[runs[0].pk]), {"payload": {}}, format="json").status_code == 404
    assert client.post(reverse("api:item-skip", args=[runs[0].pk]), {"reason": "x"}, format="json").status_code == 404
    assert not Label.objects.exists()


def test_a_late_autosave_of_submitted_work_is_refused(runs, client_for, annotator):
    item = runs[0]
    draft_url = reverse("api:item-draft", args=[item.pk])
    client = client_for(annotator)
    label_submit(item=item, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    late = client.put(draft_url, {"payload": {"vessel": "RCA"}, "base_version": None}, format="json")
    assert late.status_code == 409 and late.json()["current_version"] == 1
    assert not Draft.objects.exists()
    edit = client.put(draft_url, {"payload": {"vessel": "RCA"}, "base_version": 1}, format="json")
    assert edit.status_code == 200 and Draft.objects.get().base_version == 1


def test_frame_pack_holds_the_same_bytes_as_the_single_frames(runs, client_for, annotator, stranger):
    item = runs[0]
    client = client_for(annotator)
    pack_url = client.get(reverse("api:item-detail", args=[item.pk])).json()["media"]["frames_pack_url"]
    response = client.get(pack_url, {"start": 1})
    assert response.status_code == 200 and response["X-Frame-Format"] == item.instance.frame_format
    sizes = [int(n) for n in response["X-Frame-Sizes"].split(",")]
    assert len(sizes) == item.instance.number_of_frames - 1
    body, offset = response.content, 0
    for n, size in enumerate(sizes, start=1):
        single = client.get(reverse("api:item-frame", args=[item.pk, n]))
        assert body[offset : offset + size] == single.content
        offset += size
    assert offset == len(body)
    bad = client.get(pack_url, {"start": item.instance.number_of_frames})
    assert bad.status_code == 400 and "start" in bad.json()
    assert client_for(stranger).get(pack_url).status_code == 404


def test_the_next_item_is_leased_ahead_and_handed_out_after_the_current_one(
    runs, vessel_project, client_for, annotator
):
    client = client_for(annotator)
    current = client.post(next_url(vessel_project)).json()
    ahead = client.post(next_url(vessel_project) + f"?after={current['item']}").json()
    assert ahead["item"] not in (None, current["item"]) and ahead["workspace"]["item"]["id"] == ahead["item"]
    # Asking again while on the same item gives the same item ahead, not a third lease.
    assert client.post(next_url(vessel_project) + f"?after={current['item']}").json()["item"] == ahead["item"]
    leased = set(
        Assignment.objects.filter(annotator=annotator, state=AssignmentState.LEASED).values_list("item_id", flat=True)
    )
    assert leased == {current["item"], ahead["item"]}
    client.post(
        "/api/labels/", {"item": current["item"], "payload": {"vessel": "LCA"}, "base_version": None}, format="json"
    )
    # After the submit, a plain next resumes the item fetched ahead.
    assert client.post(next_url(vessel_project)).json()["item"] == ahead["item"]
    assert client.post(next_url(vessel_project) + "?after=x").status_code == 400


def test_a_frame_is_served_whole_and_cacheable_to_its_viewers_only(runs, client_for, annotator, stranger):
    item = runs[0]
    url = reverse("api:item-frame", args=[item.pk, 0])
    response = client_for(annotator).get(url)
    assert response.status_code == 200 and response["Content-Type"] == f"image/{item.instance.frame_format}"
    assert response["Cache-Control"] == "private, max-age=86400, immutable"
    assert len(response.content) == int(response["Content-Length"]) > 0
    past = client_for(annotator).get(reverse("api:item-frame", args=[item.pk, item.instance.number_of_frames]))
    assert past.status_code == 404 and "past the last frame" in past.json()["detail"]
    assert client_for(stranger).get(url).status_code == 404


def test_the_label_page_hands_out_the_first_item_with_its_first_frame_in_the_page(
    runs, vessel_project, client, annotator
):
    client.force_login(annotator)
    page_url = reverse("workspace", args=[vessel_project.slug])
    response = client.get(page_url)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]  # it carries a lease
    html = response.content.decode()
    embedded = re.search(r'<script id="lumen-first-next" type="application/json">(.*?)</script>', html, re.S)
    first = json.loads(embedded.group(1))
    # The same answer as POST …/next/: the queue's first item, its lease and the workspace to draw it.
    assert first["item"] == runs[1].pk and first["workspace"]["item"]["id"] == runs[1].pk
    lease = Assignment.objects.get(annotator=annotator, state=AssignmentState.LEASED)
    assert lease.item_id == runs[1].pk
    frame = first["workspace"]["item"]["media"]["frame_url_template"].replace("{n}", "0")
    # Its frame 0 is in the page, the image shown in the tool's place before any script runs: the same bytes as
    # the frame URL answers, which is named for the player and asked for by nothing (no preload).
    shown = re.search(
        r'<img id="first-frame" class="first-frame" src="data:image/jpeg;base64,([^"]+)" data-frame-url="([^"]+)" '
        r'data-bytes="(\d+)" width="(\d+)" height="(\d+)"',
        html,
    )
    media = first["workspace"]["item"]["media"]
    served = client.get(frame).content
    assert base64.b64decode(shown.group(1)) == served and shown.group(3) == str(len(served))
    assert shown.groups()[1:] == (frame, str(len(served)), str(media["columns"]), str(media["rows"]))
    assert 'rel="preload"' not in html
    # Nothing in the head holds the parser: the classic script runs once the page is parsed, before the modules.
    assert re.search(r'<script defer src="[^"]*first-item\.js"', html)
    assert "{#" not in html and "#}" not in html  # no template comment leaks into the page
    # A reload resumes the same lease; the API then answers the same item.
    again = json.loads(
        re.search(
            r'id="lumen-first-next" type="application/json">(.*?)</script>', client.get(page_url).content.decode(), re.S
        ).group(1)
    )
    assert again["item"] == runs[1].pk and Assignment.objects.filter(annotator=annotator).count() == 1
    # Opened on one item, the page leases nothing.
    other = client.get(page_url, {"item": runs[2].pk}).content.decode()
    assert "lumen-first-next" not in other and Assignment.objects.filter(annotator=annotator).count() == 1


def test_a_first_frame_too_large_for_the_page_is_linked_and_preloaded(
    runs, vessel_project, client, annotator, settings
):
    client.force_login(annotator)
    settings.LUMEN_FIRST_FRAME_INLINE_MAX_BYTES = 16  # every rendered frame is larger
    html = client.get(reverse("workspace", args=[vessel_project.slug])).content.decode()
    first = json.loads(re.search(r'id="lumen-first-next" type="application/json">(.*?)</script>', html, re.S).group(1))
    frame = first["workspace"]["item"]["media"]["frame_url_template"].replace("{n}", "0")
    # Asked for first, before the scripts, as the image the page shows.
    preload = f'<link rel="preload" href="{frame}" as="image">'
    assert preload in html and html.index(preload) < html.index("first-item.js")
    assert f'<img id="first-frame" class="first-frame" src="{frame}" data-frame-url="{frame}" width=' in html
    assert "data:image" not in html


def test_the_label_page_carries_its_styles_allowed_by_their_hash_alone(runs, vessel_project, client, annotator):
    from django.contrib.staticfiles import finders

    client.force_login(annotator)
    response = client.get(reverse("workspace", args=[vessel_project.slug]))
    html = response.content.decode()
    # No stylesheet to wait for: the site's, the workspace's and the tool's styles are in the page, in that order.
    assert 'rel="stylesheet"' not in html
    (css,) = re.findall(r"<style>(.*?)</style>", html, re.S)
    parts = [Path(finders.find(name)).read_text() for name in ("frontend/lumen.css", "frontend/workspace.css")]
    parts.append(Path(finders.find(vessel_project.task.tool_style)).read_text())
    assert css == "\n".join(parts)
    # The policy allows that text and no other inline style.
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    policy = dict(d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";") if d.strip())
    assert policy["style-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    # Every other page links its stylesheet and allows no inline style.
    home = client.get(reverse("home"))
    assert 'rel="stylesheet"' in home.content.decode() and "style-src" not in home["Content-Security-Policy"]


def test_only_a_whole_cine_run_gets_its_first_frame_drawn_by_the_page():
    template = "/api/items/7/frames/{n}/"
    cine = {
        "workspace": {
            "item": {"frame_index": None, "media": {"frame_url_template": template, "rows": 64, "columns": 96}}
        }
    }
    oct_frame = {
        "workspace": {"item": {"frame_index": 5, "media": {"frame_url_template": template, "rows": 64, "columns": 64}}}
    }
    spect = {"workspace": {"item": {"frame_index": None, "media": {"rest_url": "/r.png", "stress_url": "/s.png"}}}}
    # The cine run's frame 0 is the page's <img>, preloaded as an image; an OCT frame is fetched by its tool.
    assert first_images(cine) == [("/api/items/7/frames/0/", "image")]
    assert first_frame(cine) == {"url": "/api/items/7/frames/0/", "rows": 64, "columns": 96}
    assert first_images(oct_frame) == [("/api/items/7/frames/5/", "fetch")] and first_frame(oct_frame) is None
    assert first_images(spect) == [("/r.png", "image"), ("/s.png", "image")] and first_frame(spect) is None
    assert first_images({"workspace": None}) == [] and first_frame({"workspace": None}) is None


def test_the_workspace_reload_reads_the_item_and_its_state_in_one_query(
    runs, vessel_project, client_for, annotator, lead
):
    client = client_for(annotator)
    url = reverse("api:item-workspace", args=[runs[1].pk])

    def compared() -> dict:
        """The reload's answer, which must equal the body built by looking each part up on its own."""
        with CaptureQueriesContext(connection) as reads:
            response = client.get(url)
        assert response.status_code == 200
        item = selectors.items_for(annotator).get(pk=runs[1].pk)  # no workspace annotations: every lookup runs
        request = response.wsgi_request
        request.user = annotator
        looked_up = json.loads(JSONRenderer().render(workspace_body(item, request, item.viewer_role)))
        answer = response.json()
        assert answer == looked_up
        return {"answer": answer, "item_reads": [q for q in reads.captured_queries if "annotation_" in q["sql"]]}

    # Leased, nothing else yet: the item is the one read of the annotation tables.
    client.post(next_url(vessel_project))
    fresh = compared()
    assert fresh["answer"]["lease_expires_at"] and fresh["answer"]["label"] is None
    assert fresh["answer"]["draft"] is None and fresh["answer"]["review"] is None
    assert len(fresh["item_reads"]) == 1
    assert "interpolation" not in fresh["answer"]["item"]["media"]

    # A draft, then a label sent back for review, and an interpolation model: each comes back as the lookup says.
    client.put(reverse("api:item-draft", args=[runs[1].pk]), {"payload": {"vessel": "LCA"}}, format="json")
    assert compared()["answer"]["draft"]["payload"] == {"vessel": "LCA"}
    label_submit(item=runs[1], author=annotator, payload={"vessel": "RCA"}, base_version=None)
    review_request_create(
        project=vessel_project, annotator=annotator, requested_by=lead, note="look again", item_ids=[runs[1].pk]
    )
    model = InterpolationModel.objects.create(project=vessel_project, weights_path="x.pt", architecture={})
    state = compared()["answer"]
    assert state["label"]["payload"] == {"vessel": "RCA"} and state["review"]["note"] == "look again"
    assert state["lease_expires_at"] is None and state["draft"] is None
    assert state["item"]["media"]["interpolation"]["model"] == model.pk
