"""Stored files no row refers to (a worker killed mid-file) are swept once past the grace period, nothing else."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from annotation.ingest.sources import SourceFile
from annotation.models import Instance, PolarMap
from annotation.services import import_run
from annotation.services.imports import media_sweep_orphans
from tests import dicom_samples as samples
from tests.annotation.test_spect_pairing import nm_map

pytestmark = pytest.mark.django_db
DAY = 24 * 3600


def _import(project, name: str, data: bytes) -> None:
    import_run(project=project, sources=[SourceFile(name=name, size=len(data), reader=lambda: data)])


def _leftovers(project_id: int, token: str, age_seconds: float) -> list[Path]:
    """What a killed worker leaves: a DICOM copy, a frame folder and a polar map, `age_seconds` old."""
    root = Path(settings.MEDIA_ROOT)
    dicom = root / f"dicom/{project_id}/{token}.dcm"
    frames = root / f"frames/{project_id}/{token}"
    polar = root / f"polar/{project_id}/{token}-0.png"
    frames.mkdir(parents=True)
    for path in (dicom, frames / "000000.webp", polar):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    then = time.time() - age_seconds
    for path in (dicom, frames / "000000.webp", frames, polar):
        os.utime(path, (then, then))
    return [dicom, frames, polar]


def test_old_orphans_go_young_ones_and_stored_files_stay(vessel_project, spect_project):
    _import(vessel_project, "run.dcm", samples.xa_bytes(seed=1))
    _import(spect_project, "map.dcm", nm_map(description="REST POLAR MAP"))
    instance, polar = Instance.objects.get(project=vessel_project), PolarMap.objects.get()
    stored = [Path(settings.MEDIA_ROOT) / p for p in (instance.file_path, instance.frames_dir, polar.image_path)]
    for path in stored:  # stored long ago: age alone never condemns a file
        os.utime(path, (time.time() - 30 * DAY,) * 2)
    old = _leftovers(vessel_project.pk, "killed", age_seconds=2 * DAY)
    young = _leftovers(vessel_project.pk, "running", age_seconds=60)
    removed = media_sweep_orphans(older_than=timedelta(hours=24))
    assert sorted(removed) == sorted(p.relative_to(settings.MEDIA_ROOT).as_posix() for p in old)
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in young + stored)
    assert media_sweep_orphans(older_than=timedelta(hours=24)) == []


def test_the_command_lists_before_it_removes(vessel_project, capsys):
    old = _leftovers(vessel_project.pk, "killed", age_seconds=2 * DAY)
    call_command("sweep_media", "--dry-run")
    out = capsys.readouterr().out
    assert f"would remove  dicom/{vessel_project.pk}/killed.dcm" in out and "3 orphaned entries (dry run)" in out
    assert all(p.exists() for p in old)
    call_command("sweep_media", "--older-than-hours", "1")
    assert "3 orphaned entries" in capsys.readouterr().out and not any(p.exists() for p in old)


def test_arrays_derived_from_a_stored_file_stay_with_it_and_go_without_it(vessel_project):
    from learning.tasks import CineRef, get_task

    _import(vessel_project, "run.dcm", samples.xa_bytes(seed=1))
    instance = Instance.objects.get(project=vessel_project)
    task = get_task("vessel_type", settings.MEDIA_ROOT)
    task.frames(CineRef(item_id=1, path=instance.file_path), 32)  # what a training or scoring job leaves
    root = Path(settings.MEDIA_ROOT)
    kept = next((root / "derived" / instance.file_path).glob("frames32.v1.*.npy"))
    gone = root / "derived" / f"dicom/{vessel_project.pk}/deleted.dcm" / "frames32.v1.100.npy"
    gone.parent.mkdir(parents=True)
    gone.write_bytes(b"stale")
    for path in (kept, gone):
        os.utime(path, (time.time() - 2 * DAY,) * 2)
    assert media_sweep_orphans(older_than=timedelta(hours=24)) == [gone.relative_to(root).as_posix()]
    assert kept.exists() and not gone.exists()


def test_interpolated_frames_go_with_their_model_or_their_frame_cache(vessel_project):
    from annotation.models import InterpolationModel

    _import(vessel_project, "run.dcm", samples.xa_bytes(seed=2))
    instance = Instance.objects.get(project=vessel_project)
    model = InterpolationModel.objects.create(project=vessel_project, weights_path="interpolation/x.pt")
    root = Path(settings.MEDIA_ROOT) / "derived" / "interpolated"
    kept = root / str(model.pk) / instance.frames_dir / "000003.webp"
    deleted_model = root / str(model.pk + 1) / instance.frames_dir / "000003.webp"
    old_frames = root / str(model.pk) / f"frames/{vessel_project.pk}/before-masking" / "000003.webp"
    for path in (kept, deleted_model, old_frames):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"webp")
        os.utime(path, (time.time() - 2 * DAY,) * 2)
    media = Path(settings.MEDIA_ROOT)
    swept = media_sweep_orphans(older_than=timedelta(hours=24))
    assert sorted(swept) == sorted(p.relative_to(media).as_posix() for p in (deleted_model, old_frames))
    assert kept.exists() and not deleted_model.exists() and not old_frames.exists()
