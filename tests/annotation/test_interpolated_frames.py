"""The cine player's smooth 2×: synthetic frames half-way between a run's frames, from the project's network."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from django.urls import reverse
from PIL import Image

from annotation.ingest import render
from annotation.ingest.sources import ArchiveLimits, sources_from_path
from annotation.ingest.store import media_path
from annotation.models import InterpolationModel, Item
from annotation.services import import_run, interpolated_frames
from learning.cohorts import XaView, fake_patient, write_xa_run
from learning.interpolation import weights_dump
from learning.models.interpolation import FrameInterpolator
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db

FRAMES = 5
SIZE = 32


@pytest.fixture(autouse=True)
def fresh_networks():
    """Each test loads its networks itself (the per-process cache would otherwise hide a load)."""
    interpolated_frames._network.cache_clear()
    yield
    interpolated_frames._network.cache_clear()


@pytest.fixture
def png_frames(settings):
    """Lossless cached frames, so the synthetic frame can be compared with the network's output exactly."""
    settings.LUMEN_FRAME_FORMAT = "png"


def cine_item(project, seed: int = 0) -> Item:
    run(project, (f"run{seed}.dcm", samples.xa_bytes(frames=FRAMES, size=SIZE, seed=seed)))
    return project.items.select_related("instance").get()


def interpolation_model(project, network: FrameInterpolator | None = None, name: str = "a") -> InterpolationModel:
    """A stored network and its row, as the training job leaves them."""
    network = network or FrameInterpolator(width=4)
    relative = f"interpolation/{project.slug}/{name}.pt"
    media_path(relative).parent.mkdir(parents=True, exist_ok=True)
    media_path(relative).write_bytes(weights_dump(network))
    architecture = network.architecture()
    return InterpolationModel.objects.create(project=project, weights_path=relative, architecture=architecture)


def url(item: Item, n: int, model: InterpolationModel | int) -> str:
    return reverse("api:item-frame-interpolated", args=[item.pk, n, getattr(model, "pk", model)])


def grey(image: Image.Image) -> np.ndarray:
    """The pixels of a grey frame (WebP decodes grey frames as three equal channels)."""
    return np.asarray(image.convert("L")).astype(np.int16)


def cached_frame(item: Item, n: int) -> np.ndarray:
    instance = item.instance
    with Image.open(render.frame_path(media_path(instance.frames_dir), n, instance.frame_format)) as image:
        return grey(image)


def decoded(body: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(body)) as image:
        return grey(image)


def test_the_synthetic_frame_is_the_networks_middle_of_the_two_cached_frames(
    png_frames, vessel_project, client_for, annotator
):
    item = cine_item(vessel_project)
    untrained = interpolation_model(vessel_project)  # zero head: exactly linear blending
    response = client_for(annotator).get(url(item, 2, untrained))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Lumen-Synthetic"] == "interpolated"
    assert response["X-Lumen-Interpolated-Between"] == "2,3"
    assert response["X-Lumen-Interpolation-Model"] == str(untrained.pk)
    assert response["Cache-Control"] == "private, max-age=86400, immutable"  # the model id pins the URL
    middle = decoded(response.content)
    previous, following = cached_frame(item, 2), cached_frame(item, 3)
    assert middle.shape == (SIZE, SIZE) == previous.shape
    assert np.abs(previous - following).mean() > 40  # noise frames: a copy of either one would not pass below
    assert np.abs(middle - (previous + following) / 2).max() <= 1

    # A network that brightens the blend by a quarter: the stored weights are the ones used, not a plain blend.
    brighter = FrameInterpolator(width=4)
    with torch.no_grad():
        brighter.head.bias[5] = 0.25
    trained = interpolation_model(vessel_project, brighter, name="b")
    middle = decoded(client_for(annotator).get(url(item, 2, trained)).content)
    expected = np.clip((previous + following) / 2 + 0.25 * 255, 0, 255)
    assert np.abs(middle - expected).max() <= 1


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_lossy_frames_give_a_frame_in_their_format_of_the_run_size_close_to_the_blend(
    fmt, vessel_project, client_for, annotator, tmp_path, monkeypatch, settings
):
    settings.LUMEN_FRAME_FORMAT = fmt
    rng = np.random.default_rng(3)
    folder = tmp_path / "runs"
    folder.mkdir()
    patient = fake_patient(rng, 0)
    view = XaView(30, 20, 1000, 750)
    write_xa_run(folder / "run.dcm", vessel="LCA", rng=rng, patient=patient, frames=4, size=64, view=view)
    import_run(project=vessel_project, sources=sources_from_path(folder, limits=ArchiveLimits(members=10)))
    item = vessel_project.items.select_related("instance").get()
    assert item.instance.frame_format == fmt
    model = interpolation_model(vessel_project)
    batches = []
    original = FrameInterpolator.forward
    monkeypatch.setattr(FrameInterpolator, "forward", lambda net, a, b: batches.append(a.shape) or original(net, a, b))
    response = client_for(annotator).get(url(item, 0, model))
    assert response.status_code == 200 and response["Content-Type"] == f"image/{fmt}"
    assert batches == [(1, 1, 64, 64)]  # a grey run goes through the network once, not once per colour channel
    middle = decoded(response.content)
    assert middle.shape == (64, 64)
    # The synthetic frame is the blend of the two cached frames, as far as one lossy encoding of it at the codec's
    # frame quality lets it be (a few grey levels on these noise frames); either real frame is much further off.
    blend = (cached_frame(item, 0) + cached_frame(item, 1)) / 2
    near = np.abs(middle - blend).mean()
    far = min(np.abs(cached_frame(item, n) - blend).mean() for n in (0, 1))
    assert near < 3.5 and 1.6 * near < far, (near, far)


def test_each_synthetic_frame_is_computed_once_and_each_network_loaded_once(
    png_frames, vessel_project, client_for, annotator, monkeypatch
):
    item = cine_item(vessel_project)
    model = interpolation_model(vessel_project)
    forwards = []
    original = FrameInterpolator.forward
    monkeypatch.setattr(FrameInterpolator, "forward", lambda self, *a: forwards.append(1) or original(self, *a))
    api = client_for(annotator)

    first = api.get(url(item, 1, model))
    assert first.status_code == 200 and len(forwards) == 1
    stored = interpolated_frames.interpolated_frame_path(instance=item.instance, model=model, n=1)
    assert stored.read_bytes() == first.content
    assert stored.is_relative_to(media_path(f"derived/interpolated/{model.pk}"))
    again = api.get(url(item, 1, model))
    assert again.status_code == 200 and again.content == first.content
    assert len(forwards) == 1  # read back from disk, the network never ran again
    assert not [p for p in stored.parent.iterdir() if p.name.startswith(".")]  # no half-written file left

    api.get(url(item, 0, model))
    assert len(forwards) == 2
    assert interpolated_frames._network.cache_info().misses == 1  # two frames, one load of the weights
    weights = media_path(model.weights_path)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file was written again
    api.get(url(item, 2, model))
    assert interpolated_frames._network.cache_info().misses == 2


def test_there_is_no_frame_after_the_last_one(vessel_project, client_for, annotator):
    item = cine_item(vessel_project)
    model = interpolation_model(vessel_project)
    assert client_for(annotator).get(url(item, FRAMES - 2, model)).status_code == 200
    for n in (FRAMES - 1, FRAMES, 999):
        response = client_for(annotator).get(url(item, n, model))
        assert response.status_code == 404
        assert f"no frame between {n} and {n + 1}" in response.json()["detail"]
        assert f"in-between frames are 0…{FRAMES - 2}" in response.json()["detail"]


def test_without_a_model_of_the_project_there_is_none_to_show(vessel_project, client_for, annotator, lead):
    item = cine_item(vessel_project)
    workspace = reverse("api:item-workspace", args=[item.pk])
    assert "interpolation" not in client_for(annotator).get(workspace).json()["item"]["media"]
    response = client_for(annotator).get(url(item, 0, 1))
    assert response.status_code == 404
    assert response.json()["detail"] == "This project has no frame-interpolation model yet."

    # Another project's model is not this project's, even by its id.
    other_project = ProjectFactory(task_type=vessel_project.task_type, slug="other")
    MembershipFactory(project=other_project, user=annotator)
    foreign = interpolation_model(other_project)
    assert client_for(annotator).get(url(item, 0, foreign)).status_code == 404

    older = interpolation_model(vessel_project, name="older")
    newer = interpolation_model(vessel_project, name="newer")
    smooth = client_for(annotator).get(workspace).json()["item"]["media"]["interpolation"]
    assert smooth["model"] == newer.pk and smooth["frames"] == FRAMES - 1
    assert smooth["frame_url_template"].replace("{n}", "3") == url(item, 3, newer)
    assert client_for(annotator).get(url(item, 0, older)).status_code == 200  # a page still playing the older one
    response = client_for(annotator).get(url(item, 0, foreign))
    assert response.status_code == 404 and str(foreign.pk) in response.json()["detail"]

    media_path(newer.weights_path).unlink()
    response = client_for(annotator).get(url(item, 0, newer))
    assert response.status_code == 404 and "weights" in response.json()["detail"]


def test_who_may_see_synthetic_frames_is_who_may_see_the_frames(vessel_project, client_for, annotator, lead, stranger):
    item = cine_item(vessel_project)
    model = interpolation_model(vessel_project)
    real = reverse("api:item-frame", args=[item.pk, 0])
    for user, expected in ((None, {401, 403}), (lead, {200}), (annotator, {200}), (stranger, {404})):
        assert client_for(user).get(url(item, 0, model)).status_code in expected, user
        assert client_for(user).get(real).status_code in expected, user
    # A stranger learns nothing from a missing model either: the same answer as for an item that does not exist.
    assert client_for(stranger).get(url(item, 0, model.pk + 1)).json() == client_for(stranger).get(real).json()
