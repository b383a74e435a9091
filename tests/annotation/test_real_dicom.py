"""Real DICOM files no one here wrote (pydicom's bundled files and pydicom-data): accepted where they fit."""

from __future__ import annotations

from pathlib import Path

import data_store
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from annotation.ingest.sources import ArchiveLimits, sources_from_path
from annotation.models import Instance, PolarMap, TaskType
from annotation.services import import_run, project_create
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PYDICOM_DATA = Path(data_store.__file__).parent / "data"


def real_file(name: str) -> Path:
    candidate = PYDICOM_DATA / name
    # get_testdata_file with a single name only looks at bundled files (get_testdata_files would download).
    return candidate if candidate.exists() else Path(get_testdata_file(name))


# (file, project task, accepted modalities or None for the task default, outcome, reason or frames stored)
CASES = [
    ("color3d_jpeg_baseline.dcm", TaskType.VESSEL_TYPE, None, "rejected", "modality_mismatch"),
    ("emri_small.dcm", TaskType.OCT_CALCIUM, None, "rejected", "modality_mismatch"),
    ("eCT_Supplemental.dcm", TaskType.VESSEL_TYPE, None, "rejected", "modality_mismatch"),
    ("waveform_ecg.dcm", TaskType.OCT_CALCIUM, None, "rejected", "modality_mismatch"),  # ECGs: XA projects
    ("MR_truncated.dcm", TaskType.VESSEL_TYPE, None, "rejected", "truncated"),
    ("US1_J2KR.dcm", TaskType.VESSEL_TYPE, ["US"], "rejected", "not_multiframe"),
    ("JPEG-lossy.dcm", TaskType.SPECT_TERRITORY, None, "rejected", "undecodable"),  # 12-bit JPEG Extended
    # A lead who widens a project's modalities gets real compressed multi-frame files through the whole pipeline.
    ("color3d_jpeg_baseline.dcm", TaskType.VESSEL_TYPE, ["US"], "stored", 120),
    ("examples_ybr_color.dcm", TaskType.VESSEL_TYPE, ["US"], "stored", 30),
    ("OBXXXX1A_rle_2frame.dcm", TaskType.VESSEL_TYPE, ["US"], "stored", 2),
    ("OBXXXX1A_expb_2frame.dcm", TaskType.VESSEL_TYPE, ["US"], "stored", 2),
    ("emri_small_jpeg_ls_lossless.dcm", TaskType.OCT_CALCIUM, ["MR"], "stored", 10),
    ("emri_small_RLE.dcm", TaskType.OCT_CALCIUM, ["MR"], "stored", 10),
    ("eCT_Supplemental.dcm", TaskType.VESSEL_TYPE, ["CT"], "stored", 2),
]


@pytest.mark.parametrize(
    ("name", "task", "modalities", "outcome", "expected"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{'+'.join(c[2] or ['default'])}" for c in CASES],
)
def test_real_file(name, task, modalities, outcome, expected, isolated_media):
    creator = UserFactory()
    settings = {"accepted_modalities": modalities} if modalities else None
    project = project_create(slug="real", name="Real files", task_type=task, creator=creator, settings=settings)
    report = import_run(project=project, sources=sources_from_path(real_file(name), limits=ArchiveLimits(members=10)))
    [result] = report.files
    assert result.outcome == outcome, result.message
    if outcome == "rejected":
        assert result.reason == expected
        assert result.message  # a sentence a person can act on
        assert Instance.objects.count() == 0
    else:
        instance = Instance.objects.get()
        assert instance.number_of_frames == expected
        assert project.items.count() == (expected if task == TaskType.OCT_CALCIUM else 1)
        rendered = list((isolated_media / instance.frames_dir).glob(f"*.{instance.frame_format}"))
        assert len(rendered) == expected
        if task == TaskType.OCT_CALCIUM:  # the pullback's longitudinal view, one column per frame
            with Image.open(isolated_media / instance.frames_dir / "lmode.png") as lmode:
                assert lmode.size == (expected, instance.columns)


@pytest.mark.parametrize("name", ["JPEG-LL.dcm", "JPEG2000_UNC.dcm"])
def test_real_single_frame_images_without_a_phase_wait_on_the_spect_pairing_list(name, isolated_media):
    project = project_create(slug="real", name="Real", task_type=TaskType.SPECT_TERRITORY, creator=UserFactory())
    report = import_run(project=project, sources=sources_from_path(real_file(name), limits=ArchiveLimits(members=10)))
    [result] = report.files
    assert result.outcome == "stored" and "SPECT pairing list" in result.message
    [polar] = PolarMap.objects.filter(project=project)
    assert polar.phase == "" and polar.instance == Instance.objects.get() and project.items.count() == 0
    with Image.open(isolated_media / polar.image_path) as image:
        assert image.size == (polar.columns, polar.rows)
