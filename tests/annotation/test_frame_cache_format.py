"""The frame cache's codec and quality: JPEG at 92 unless the settings say otherwise, and bad settings named."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from annotation.checks import frame_cache_settings
from annotation.ingest import render
from annotation.ingest.store import media_path
from annotation.models import Item
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run

pytestmark = pytest.mark.django_db


def quantization_at(quality: int) -> dict:
    """The quantization tables Pillow's JPEG encoder writes at `quality` (they depend on the quality alone)."""
    data = render.encode_image(np.zeros((16, 16), np.uint8), "jpeg", quality)
    with Image.open(io.BytesIO(data)) as image:
        return image.quantization


def stored_frame(project) -> Image.Image:
    instance = Item.objects.select_related("instance").get(project=project).instance
    return Image.open(render.frame_path(media_path(instance.frames_dir), 0, instance.frame_format))


def test_frames_are_stored_as_jpeg_at_quality_92_by_default(vessel_project):
    run(vessel_project, ("run.dcm", samples.xa_bytes(frames=3, size=32)))
    with stored_frame(vessel_project) as image:
        assert image.format == "JPEG" and image.mode == "L"
        assert image.quantization == quantization_at(92) != quantization_at(85)


def test_the_quality_setting_overrides_the_codec_default(vessel_project, settings):
    settings.LUMEN_FRAME_QUALITY = 70
    run(vessel_project, ("run.dcm", samples.xa_bytes(frames=3, size=32)))
    with stored_frame(vessel_project) as image:
        assert image.quantization == quantization_at(70)
    assert render.frame_quality("webp") == render.frame_quality("jpeg") == 70


def test_each_lossy_codec_has_its_own_default_quality(settings):
    settings.LUMEN_FRAME_QUALITY = 0
    assert (render.frame_quality("jpeg"), render.frame_quality("webp")) == (92, 85)


def test_webp_stays_available(vessel_project, settings):
    settings.LUMEN_FRAME_FORMAT = "webp"
    run(vessel_project, ("run.dcm", samples.xa_bytes(frames=3, size=32)))
    with stored_frame(vessel_project) as image:
        assert image.format == "WEBP"


@pytest.mark.parametrize(
    ("fmt", "quality", "ids"),
    [
        ("jpeg", 0, []),
        ("png", 95, []),
        ("gif", 0, ["lumen.E001"]),
        ("jpeg", 101, ["lumen.E002"]),
        ("tiff", -1, ["lumen.E001", "lumen.E002"]),
    ],
)
def test_the_system_check_names_a_bad_format_or_quality(settings, fmt, quality, ids):
    settings.LUMEN_FRAME_FORMAT, settings.LUMEN_FRAME_QUALITY = fmt, quality
    errors = frame_cache_settings(None)
    assert [error.id for error in errors] == ids
    assert all(("LUMEN_FRAME_FORMAT" if e.id == "lumen.E001" else "LUMEN_FRAME_QUALITY") in e.msg for e in errors)
