"""SPECT polar maps as DICOM: one or two frames (rest + stress), and the lead's pairing list for unstated phases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.conf import settings
from django.urls import reverse
from PIL import Image

from annotation.ingest.results import Outcome
from annotation.ingest.sources import SourceFile
from annotation.models import Instance, Item, PolarMap, SpectExam
from annotation.services import import_run
from tests import dicom_samples as samples

pytestmark = pytest.mark.django_db


def nm_map(*, frames: int = 1, description: str = "", labels: list[str] | None = None, seed: int = 0) -> bytes:
    ds = samples.dataset(
        modality="NM", sop_class=samples.SC_CLASS, frames=frames, size=64, seed=seed, series_description=description
    )
    if labels:
        ds.FrameLabelVector = labels
    return samples.to_bytes(ds)


def run(project, name: str, data: bytes):
    [result] = import_run(project=project, sources=[SourceFile(name=name, size=len(data), reader=lambda: data)]).files
    return result


def png_of(polar: PolarMap) -> np.ndarray:
    with Image.open(Path(settings.MEDIA_ROOT) / polar.image_path) as image:
        return np.asarray(image).astype(int)


@pytest.mark.parametrize(
    ("description", "labels", "rest_frame"),
    [("REST/STRESS POLAR MAPS", None, 0), ("Stress and rest bullseye", None, 1), ("POLAR MAPS", ["STRESS", "REST"], 1)],
)
def test_a_two_frame_file_gives_its_rest_and_stress_maps_one_item(spect_project, description, labels, rest_frame):
    result = run(spect_project, "pair.dcm", nm_map(frames=2, description=description, labels=labels, seed=3))
    assert (result.outcome, result.items_created) == (Outcome.STORED, 1), result.message
    exam = SpectExam.objects.get()
    assert (exam.rest.frame_index, exam.stress.frame_index) == (rest_frame, 1 - rest_frame)
    assert exam.rest.instance == exam.stress.instance == Instance.objects.get()
    assert (exam.age, exam.sex, exam.weight_kg) == (67, "F", 71.0)
    frames = pydicom.dcmread(Path(settings.MEDIA_ROOT) / exam.rest.instance.file_path).pixel_array.astype(float)
    for polar in (exam.rest, exam.stress):
        expected = np.round(frames[polar.frame_index] / frames[polar.frame_index].max() * 255)
        assert np.abs(png_of(polar) - expected).max() <= 1  # each map is its own frame, normalised


def test_three_frames_are_not_a_polar_map(spect_project):
    result = run(spect_project, "tomo.dcm", nm_map(frames=3, description="REST"))
    assert result.reason == "not_multiframe" and "projection or tomographic" in result.message


def test_a_lead_sets_unstated_phases_and_the_maps_pair(spect_project, client_for, lead, annotator):
    result = run(spect_project, "maps.dcm", nm_map(frames=2, description="POLAR MAPS"))
    assert result.outcome == Outcome.STORED and result.items_created == 0
    assert "which frame is rest and which is stress" in result.message and "pairing list" in result.message
    url = reverse("api:polar-map-list")
    assert client_for(annotator).get(url, {"project": spect_project.slug}).json()["results"] == []
    waiting = client_for(lead).get(url, {"project": spect_project.slug, "paired": "false"}).json()["results"]
    assert [(m["frame_index"], m["phase"], m["item"]) for m in waiting] == [(0, "", None), (1, "", None)]
    image = client_for(lead).get(waiting[0]["image_url"])
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    first = client_for(lead).post(reverse("api:polar-map-phase", args=[waiting[1]["id"]]), {"phase": "stress"})
    assert first.status_code == 200 and first.json()["item"] is None
    assert (
        client_for(annotator)
        .post(reverse("api:polar-map-phase", args=[waiting[0]["id"]]), {"phase": "rest"})
        .status_code
        == 404
    )
    second = client_for(lead).post(reverse("api:polar-map-phase", args=[waiting[0]["id"]]), {"phase": "rest"})
    item = Item.objects.get(kind="spect_pair")
    assert second.json()["item"] == item.pk
    assert (item.spect.rest.frame_index, item.spect.stress.frame_index) == (0, 1)
    assert (item.spect.age, item.spect.sex) == (67, "F")  # the file's clinical features, kept for the pairing
    assert item.spect.rest.phase_set_by == item.spect.stress.phase_set_by == lead
    again = client_for(lead).post(reverse("api:polar-map-phase", args=[waiting[0]["id"]]), {"phase": "stress"})
    assert again.status_code == 400 and f"already paired in item {item.pk}" in str(again.json())
    bad = client_for(lead).post(reverse("api:polar-map-phase", args=[waiting[0]["id"]]), {"phase": "gated"})
    assert bad.status_code == 400 and "phase" in bad.json()
    assert client_for(lead).get(url, {"project": spect_project.slug, "paired": "false"}).json()["results"] == []


def test_a_single_map_without_a_phase_pairs_with_another_file_once_set(spect_project, client_for, lead):
    assert run(spect_project, "rest.dcm", nm_map(description="REST POLAR MAP", seed=1)).items_created == 0
    unstated = run(spect_project, "map.dcm", nm_map(description="POLAR MAP", seed=2))
    assert "does not say its map" in unstated.message
    polar = PolarMap.objects.get(phase="")
    response = client_for(lead).post(reverse("api:polar-map-phase", args=[polar.pk]), {"phase": "stress"})
    exam = SpectExam.objects.get()
    assert response.json()["item"] == exam.item_id and exam.stress == polar and exam.rest.phase == "rest"


def test_a_lead_discards_a_map_that_is_not_one_and_its_file_goes_with_it(
    spect_project, client_for, lead, django_capture_on_commit_callbacks
):
    run(spect_project, "ct.dcm", nm_map(description="SCOUT", seed=4))
    polar = PolarMap.objects.get()
    files = [Path(settings.MEDIA_ROOT) / polar.image_path, Path(settings.MEDIA_ROOT) / polar.instance.file_path]
    assert all(f.exists() for f in files)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(lead).delete(reverse("api:polar-map-detail", args=[polar.pk]))
    assert response.status_code == 204
    assert not PolarMap.objects.exists() and not Instance.objects.exists()
    assert not any(f.exists() for f in files)
    run(spect_project, "pair.dcm", nm_map(frames=2, description="REST/STRESS", seed=5))
    paired = PolarMap.objects.first()
    refused = client_for(lead).delete(reverse("api:polar-map-detail", args=[paired.pk]))
    assert refused.status_code == 400 and "already paired" in str(refused.json())
    assert PolarMap.objects.count() == 2
