"""Burned-in text: flagged on import (header or the opt-in OCR check), held from labelling until a lead decides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.conf import settings
from django.urls import reverse
from PIL import Image, ImageDraw, ImageFont

from annotation.ingest.results import Outcome
from annotation.ingest.sources import SourceFile
from annotation.models import Instance, Item, ProjectQueue
from annotation.selectors import wanting_count
from annotation.services import import_run, item_next, label_submit, project_update
from annotation.services.queue import queue_open_count
from tests import dicom_samples as samples

pytestmark = pytest.mark.django_db
TEXT_BOX = (4, 4, 110, 22)  # where the name is drawn: x, y, width, height


def _run_bytes(*, text: str | None, burned_in: str | None = None, seed: int = 0, frames: int = 3) -> bytes:
    """A 128² run on a grey background, with `text` drawn in white into every frame when given."""
    ds = samples.dataset(frames=frames, size=128, seed=seed, patient_id=f"MRN{seed}")
    rng = np.random.default_rng(seed)
    pixels = rng.integers(40, 160, size=(frames, 128, 128), dtype=np.uint8)
    if text:
        for frame in pixels:
            image = Image.fromarray(frame)
            ImageDraw.Draw(image).text(TEXT_BOX[:2], text, fill=255, font=ImageFont.load_default(size=14))
            frame[...] = np.asarray(image)
    ds.PixelData = pixels.tobytes()
    if burned_in:
        ds.BurnedInAnnotation = burned_in
    return samples.to_bytes(ds)


def _import(project, *runs: bytes) -> list[Instance]:
    # No overlap share: whether a run wants a second annotator depends on its id, which other tests move.
    project_update(project=project, settings={"overlap_rate": 0.0})
    project.refresh_from_db()
    sources = [SourceFile(name=f"run{i}.dcm", size=len(d), reader=lambda d=d: d) for i, d in enumerate(runs)]
    report = import_run(project=project, sources=sources)
    assert [f.outcome for f in report.files] == [Outcome.STORED] * len(runs), report.as_json()
    return list(Instance.objects.filter(project=project).order_by("pk"))


def _counters_match(project) -> None:
    assert ProjectQueue.objects.get(pk=project.pk).wanting_items == wanting_count(project.pk)


def _decide(client, item: Item, **body):
    return client.post(reverse("api:item-burned-in", args=[item.pk]), body, format="json")


def test_the_ocr_check_finds_text_in_the_pixels_and_holds_the_run_for_a_lead(vessel_project, annotator, lead):
    project_update(project=vessel_project, settings={"ocr_burned_in_text": True})
    named, clean = _import(vessel_project, _run_bytes(text="DOE JANE 1958", seed=1), _run_bytes(text=None, seed=2))
    assert named.text_regions and clean.text_regions == []
    x, y, width, height = TEXT_BOX
    for left, top, w, h in named.text_regions:  # every box lies on the drawn text
        assert x - 4 <= left and left + w <= x + width + 4 and y - 4 <= top and top + h <= y + height + 4
    assert (named.burned_in_review, clean.burned_in_review) == ("pending", "")
    held = Item.objects.get(instance=named)
    assert (held.required_labels, held.open_slots) == (0, 0)
    lease = item_next(project=vessel_project, annotator=annotator)
    assert lease.item.instance_id == clean.pk  # the held run is never handed out
    assert item_next(project=vessel_project, annotator=lead) is None
    assert queue_open_count(vessel_project) == 0
    _counters_match(vessel_project)


def test_the_header_flag_holds_a_run_without_the_ocr_check(vessel_project, annotator):
    flagged, plain = _import(vessel_project, _run_bytes(text=None, burned_in="YES", seed=1), _run_bytes(text=None))
    assert (flagged.burned_in_annotation, flagged.burned_in_review, flagged.text_regions) == ("YES", "pending", None)
    assert (plain.burned_in_annotation, plain.burned_in_review) == ("", "")
    assert item_next(project=vessel_project, annotator=annotator).item.instance_id == plain.pk
    _counters_match(vessel_project)


def test_a_lead_releases_or_excludes_and_only_leads_may(vessel_project, client_for, lead, annotator):
    first, second = _import(
        vessel_project, _run_bytes(text=None, burned_in="YES", seed=1), _run_bytes(text=None, burned_in="YES", seed=2)
    )
    one, two = Item.objects.get(instance=first), Item.objects.get(instance=second)
    assert _decide(client_for(annotator), one, decision="release").status_code == 403
    assert _decide(client_for(lead), one, decision="burn").status_code == 400
    response = _decide(client_for(lead), one, decision="release")
    assert response.status_code == 200
    assert response.json() == {"instance": first.pk, "annotation": "YES", "text_regions": None, "review": "released"}
    assert _decide(client_for(lead), two, decision="exclude").json()["review"] == "excluded"
    second.refresh_from_db()
    assert second.burned_in_decided_by == lead and second.burned_in_decided_at is not None  # who decided, when
    _counters_match(vessel_project)
    assert item_next(project=vessel_project, annotator=annotator).item == one
    assert item_next(project=vessel_project, annotator=lead) is None  # the excluded run stays out
    listed = client_for(lead).get(
        reverse("api:item-list"), {"project": vessel_project.slug, "burned_in_review": "excluded"}
    )
    assert [i["id"] for i in listed.json()["results"]] == [two.pk]
    assert listed.json()["results"][0]["burned_in"]["review"] == "excluded"


def test_excluding_ends_open_leases_and_a_late_label_is_still_kept(vessel_project, lead, annotator):
    from annotation.services.burned_in import burned_in_decide

    (instance,) = _import(vessel_project, _run_bytes(text=None, seed=3))
    item = Item.objects.get(instance=instance)
    lease = item_next(project=vessel_project, annotator=annotator)
    assert lease.item == item
    burned_in_decide(item=item, by=lead, decision="exclude")
    lease.refresh_from_db()
    item.refresh_from_db()
    assert lease.state == "released" and (item.required_labels, item.open_slots) == (0, 0)
    label_submit(item=item, author=annotator, payload={"vessel": "LCA"}, base_version=None)  # submitted late
    assert item.labels.count() == 1  # no label is lost
    _counters_match(vessel_project)
    burned_in_decide(item=item, by=lead, decision="release")
    item.refresh_from_db()
    assert (item.required_labels, item.open_slots) == (1, 0)  # done with the label it has
    assert item_next(project=vessel_project, annotator=lead) is None
    _counters_match(vessel_project)


def test_masking_paints_the_regions_black_in_the_stored_file_and_the_frames(
    vessel_project, client_for, lead, annotator, django_capture_on_commit_callbacks
):
    project_update(project=vessel_project, settings={"ocr_burned_in_text": True})
    (instance,) = _import(vessel_project, _run_bytes(text="DOE JANE 1958", seed=4))
    item = Item.objects.get(instance=instance)
    old_file, old_frames = instance.file_path, instance.frames_dir
    before = pydicom.dcmread(Path(settings.MEDIA_ROOT) / old_file).pixel_array
    bad = _decide(client_for(lead), item, decision="mask", regions=[[120, 0, 20, 5]])
    assert bad.status_code == 400 and "region 1" in str(bad.json())
    with django_capture_on_commit_callbacks(execute=True):
        response = _decide(client_for(lead), item, decision="mask", regions=[list(TEXT_BOX)])
    assert response.status_code == 200 and response.json()["review"] == "masked"
    instance.refresh_from_db()
    stored = pydicom.dcmread(Path(settings.MEDIA_ROOT) / instance.file_path)
    after = stored.pixel_array
    x, y, width, height = TEXT_BOX
    assert (after[:, y : y + height, x : x + width] == 0).all()
    outside = np.ones(after.shape, dtype=bool)
    outside[:, y : y + height, x : x + width] = False
    np.testing.assert_array_equal(after[outside], before[outside])
    assert stored.BurnedInAnnotation == "NO" and stored.SOPInstanceUID == instance.sop_instance_uid
    assert "113101" in [c.CodeValue for c in stored.DeidentificationMethodCodeSequence]
    method = list(stored.DeidentificationMethod)
    assert method[-1] == "burned-in text masked" and all(len(value) <= 64 for value in method)
    media = Path(settings.MEDIA_ROOT)
    assert not (media / old_file).exists() and not (media / old_frames).exists()  # the unmasked copies are gone
    frames = sorted((Path(settings.MEDIA_ROOT) / instance.frames_dir).iterdir())
    assert len(frames) == 3
    with Image.open(frames[0]) as shown:
        assert np.asarray(shown.convert("L"))[y + 2 : y + height - 2, x + 2 : x + width - 2].max() <= 8
    assert item_next(project=vessel_project, annotator=annotator).item == item
    _counters_match(vessel_project)


def test_masking_without_regions_uses_the_checks_boxes_or_says_there_are_none(vessel_project, client_for, lead):
    (instance,) = _import(vessel_project, _run_bytes(text=None, burned_in="YES", seed=5))
    response = _decide(client_for(lead), Item.objects.get(instance=instance), decision="mask")
    assert response.status_code == 400 and "the text check found none" in str(response.json())


def test_the_ocr_check_cannot_be_switched_on_without_tesseract(vessel_project, client_for, lead, monkeypatch):
    monkeypatch.setattr("annotation.services.projects.ocr_available", lambda: False)
    url = reverse("api:project-detail", args=[vessel_project.slug])
    response = client_for(lead).patch(url, {"settings": {"ocr_burned_in_text": True}}, format="json")
    assert response.status_code == 400 and "tesseract-ocr is not installed" in str(response.json())


def test_a_check_that_cannot_run_leaves_the_file_to_a_lead(vessel_project, monkeypatch):
    project_update(project=vessel_project, settings={"ocr_burned_in_text": True})
    monkeypatch.setattr("pytesseract.pytesseract.tesseract_cmd", "/nonexistent/tesseract")
    (instance,) = _import(vessel_project, _run_bytes(text="DOE JANE 1958", seed=6))
    assert (instance.text_regions, instance.burned_in_review) == (None, "pending")
