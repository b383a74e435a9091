"""DICOM ingest: items per task, de-identification, duplicates, and a clear reason for every bad file."""

from __future__ import annotations

import datetime as dt
import io
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.conf import settings
from PIL import Image

from annotation.ingest import render
from annotation.ingest.results import Outcome
from annotation.ingest.sources import ArchiveLimits, SourceFile, sources_from_path
from annotation.models import (
    Instance,
    Item,
    ItemKind,
    Job,
    JobStatus,
    Patient,
    PatientIdentity,
    PolarMap,
    SpectExam,
    Study,
)
from annotation.services import import_run
from tests import dicom_samples as samples

pytestmark = pytest.mark.django_db


def source(name: str, data: bytes) -> SourceFile:
    return SourceFile(name=name, size=len(data), reader=lambda: data)


def run(project, *files: tuple[str, bytes]):
    return import_run(project=project, sources=[source(n, d) for n, d in files])


def media_files() -> set[Path]:
    root = Path(settings.MEDIA_ROOT)
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_cine_run_becomes_one_item_with_queryable_geometry_and_rendered_frames(vessel_project):
    report = run(vessel_project, ("run1.dcm", samples.xa_bytes(frames=6, size=48)))
    assert report.summary() == {"stored": 1, "duplicates": 0, "rejected": 0, "items_created": 1}
    item = Item.objects.get(project=vessel_project)
    assert item.kind == ItemKind.CINE_RUN
    assert "LAO 30 / CAU 20" in item.title
    instance = item.instance
    assert (instance.number_of_frames, instance.rows, instance.columns) == (6, 48, 48)
    assert instance.frame_time_ms == pytest.approx(66.7)
    assert instance.frame_rate == pytest.approx(1000 / 66.7, rel=1e-3)
    assert (
        Instance.objects.filter(
            positioner_primary_angle=30,
            positioner_secondary_angle=-20,
            distance_source_to_detector=1040,
            distance_source_to_patient=760,
        ).count()
        == 1
    )
    frames = sorted((Path(settings.MEDIA_ROOT) / instance.frames_dir).iterdir())
    assert len(frames) == 6
    with Image.open(frames[0]) as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
        assert image.size == (48, 48)
        assert np.abs(pixels[..., 0] - pixels[..., 1]).max() <= 3  # grey stays grey through the web format


def test_stored_file_is_deidentified_and_the_identity_is_kept_for_leads_only(vessel_project):
    original = samples.dataset()
    run(vessel_project, ("run.dcm", samples.to_bytes(original)))
    instance = Instance.objects.get()
    stored = pydicom.dcmread(Path(settings.MEDIA_ROOT) / instance.file_path)
    patient = Patient.objects.get()
    assert str(stored.PatientName) == patient.pseudonym == str(stored.PatientID)
    assert patient.pseudonym.startswith("P-")
    for keyword in ("PatientAge", "PatientWeight"):
        assert keyword not in stored, keyword
    assert stored.PatientBirthDate == "" and stored.InstitutionName == "ANONYMIZED"
    assert stored.ReferringPhysicianName == "" and stored.AccessionNumber == ""
    # The study date moved back by whole weeks, the same for this patient as the study row says.
    shift = dt.date(2024, 1, 5) - dt.datetime.strptime(stored.StudyDate, "%Y%m%d").date()
    assert shift.days % 7 == 0 and 364 <= shift.days <= 3640
    assert Study.objects.get().study_date == dt.date(2024, 1, 5) - shift
    assert stored.PatientIdentityRemoved == "YES"
    assert stored.SOPInstanceUID != original.SOPInstanceUID
    assert stored.StudyInstanceUID != original.StudyInstanceUID
    assert stored.SOPInstanceUID == instance.sop_instance_uid
    raw = (Path(settings.MEDIA_ROOT) / instance.file_path).read_bytes()
    for secret in (b"DOE^JANE", b"MRN0001", b"19580312", b"St. Example", b"HOUSE^GREGORY", b"ACC998877"):
        assert secret not in raw
    identity = PatientIdentity.objects.get(patient=patient)
    assert (identity.original_patient_id, identity.original_name) == ("MRN0001", "DOE^JANE")
    np.testing.assert_array_equal(stored.pixel_array, original.pixel_array)


def test_same_patient_gets_the_same_pseudonym_and_reimport_is_detected(vessel_project):
    first = samples.xa_bytes(seed=1)
    second = samples.xa_bytes(seed=2)
    run(vessel_project, ("a.dcm", first), ("b.dcm", second))
    assert Patient.objects.count() == 1 and Instance.objects.count() == 2
    files_before = media_files()
    report = run(vessel_project, ("a-again.dcm", first))
    assert [r.outcome for r in report.files] == [Outcome.DUPLICATE]
    assert "already imported" in report.files[0].message
    assert Instance.objects.count() == 2 and Item.objects.count() == 2
    assert media_files() == files_before


def test_a_taken_sop_instance_uid_with_other_content_is_a_conflict_not_a_duplicate(vessel_project):
    ds = samples.dataset(seed=1)
    run(vessel_project, ("a.dcm", samples.to_bytes(ds)))
    files_before = media_files()
    ds.PixelData = bytes(len(ds.PixelData))  # same UIDs, other pixels
    [result] = run(vessel_project, ("a-edited.dcm", samples.to_bytes(ds))).files
    assert (result.outcome, result.reason) == (Outcome.REJECTED, "uid_conflict")
    assert "different content" in result.message and result.instance_id == Instance.objects.get().pk
    assert media_files() == files_before


def test_pullback_becomes_one_item_per_frame_in_order(oct_project):
    data = samples.xa_bytes(modality="IVOCT", sop_class=samples.IVOCT_CLASS, frames=5, samples=3)
    report = run(oct_project, ("pullback.dcm", data))
    assert report.summary()["items_created"] == 5
    items = list(Item.objects.filter(project=oct_project).order_by("frame_index"))
    assert [i.frame_index for i in items] == [0, 1, 2, 3, 4]
    assert {i.instance_id for i in items} == {items[0].instance_id}
    assert all(i.kind == ItemKind.OCT_FRAME for i in items)
    assert items[2].title.endswith("frame 3/5")


@pytest.mark.parametrize(
    ("name", "data", "reason", "words"),
    [
        ("notes.txt", b"this is not an image" * 20, "not_dicom", "not a DICOM file"),
        ("truncated.dcm", samples.xa_bytes()[:-700], "truncated", "truncated"),
        ("no-pixels.dcm", samples.no_pixels_bytes(), "no_pixel_data", "no pixel data"),
        ("video.dcm", samples.mpeg4_bytes(), "unsupported_transfer_syntax", "MPEG-4 AVC/H.264"),
        ("ct.dcm", samples.xa_bytes(modality="CT"), "modality_mismatch", "modality CT does not fit"),
        ("single.dcm", samples.xa_bytes(frames=1), "not_multiframe", "not a cine run: NumberOfFrames is"),
    ],
    ids=["not-dicom", "truncated", "no-pixels", "mpeg4", "wrong-modality", "single-frame"],
)
def test_each_bad_file_is_rejected_with_its_reason_and_leaves_nothing(vessel_project, name, data, reason, words):
    report = run(vessel_project, (name, data))
    [result] = report.files
    assert (result.outcome, result.reason) == (Outcome.REJECTED, reason)
    assert words in result.message
    assert Instance.objects.count() == 0 and Item.objects.count() == 0 and Patient.objects.count() == 0
    assert media_files() == set()


def test_too_large_file_is_rejected_before_it_is_read(vessel_project, settings):
    settings.LUMEN_MAX_FILE_BYTES = 1000
    report = run(vessel_project, ("big.dcm", samples.xa_bytes()))
    assert report.files[0].reason == "too_large"
    assert "limit is 1000 bytes" in report.files[0].message


def test_good_files_in_a_batch_are_stored_beside_bad_ones_and_the_job_records_all(vessel_project):
    report = run(
        vessel_project,
        ("good.dcm", samples.xa_bytes(seed=5)),
        ("bad.dcm", samples.xa_bytes()[:400]),
        ("good2.dcm", samples.xa_bytes(seed=6)),
    )
    assert [r.outcome for r in report.files] == [Outcome.STORED, Outcome.REJECTED, Outcome.STORED]
    job = Job.objects.get(pk=report.job_id)
    assert job.status == JobStatus.SUCCEEDED and job.progress == 1.0
    assert job.result["summary"]["rejected"] == 1
    assert job.result["files"][1]["name"] == "bad.dcm"


def test_a_database_failure_while_storing_leaves_no_rows_and_no_files(vessel_project, monkeypatch):
    from annotation.ingest import pipeline

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline, "_make_items", broken)
    report = run(vessel_project, ("run.dcm", samples.xa_bytes()))
    assert report.files[0].reason == "storage_failed"
    assert "No space left on device" in report.files[0].message
    assert Instance.objects.count() == 0 and Patient.objects.count() == 0
    assert media_files() == set()


def test_zip_archives_are_expanded_and_each_member_reported(vessel_project, tmp_path):
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("study/run1.dcm", samples.xa_bytes(seed=11))
        zf.writestr("study/run2.dcm", samples.xa_bytes(seed=12))
        zf.writestr("study/readme.txt", "not dicom at all, just a note about the study")
        zf.writestr("__MACOSX/._run1.dcm", "resource fork")
    report = import_run(project=vessel_project, sources=sources_from_path(archive, limits=ArchiveLimits(members=100)))
    outcomes = {r.name: r.outcome for r in report.files}
    assert outcomes == {
        "batch.zip/study/run1.dcm": Outcome.STORED,
        "batch.zip/study/run2.dcm": Outcome.STORED,
        "batch.zip/study/readme.txt": Outcome.REJECTED,
    }


def test_broken_zip_is_reported_not_crashed(vessel_project, tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    report = import_run(project=vessel_project, sources=sources_from_path(archive, limits=ArchiveLimits(members=100)))
    assert report.files[0].reason == "bad_archive"


def spect_dicom(phase: str, patient_id: str = "MRN42", seed: int = 0) -> bytes:
    return samples.xa_bytes(
        modality="NM",
        sop_class=samples.SC_CLASS,
        frames=1,
        size=64,
        patient_id=patient_id,
        series_description=f"{phase.upper()} POLAR MAP",
        seed=seed,
    )


def test_spect_dicom_pairs_rest_and_stress_into_one_item_with_clinical_features(spect_project):
    first = run(spect_project, ("rest.dcm", spect_dicom("rest")))
    assert first.files[0].outcome == Outcome.STORED and first.items_created == 0
    assert "waiting for the matching stress map" in first.files[0].message
    second = run(spect_project, ("stress.dcm", spect_dicom("stress", seed=1)))
    assert second.items_created == 1
    exam = SpectExam.objects.get()
    assert (exam.rest.phase, exam.stress.phase) == ("rest", "stress")
    assert (exam.age, exam.sex, exam.weight_kg, exam.height_cm) == (67, "F", 71.0, 164.0)
    with Image.open(Path(settings.MEDIA_ROOT) / exam.stress.image_path) as image:
        assert np.asarray(image).max() == 255  # normalised to its own maximum


def png(seed: int, size: int = 40) -> bytes:
    buffer = io.BytesIO()
    values = np.random.default_rng(seed).integers(0, 200, size=(size, size), dtype=np.uint8)
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


MANIFEST = "patient,rest_file,stress_file,age,sex,weight,height\n"


def test_spect_png_manifest_makes_one_item_per_row(spect_project):
    manifest = MANIFEST + "SPECT-0001,maps/r1.png,maps/s1.png,63,M,82.5,178\nSPECT-0002,maps/r2.png,maps/s2.png,,F,,\n"
    report = run(
        spect_project,
        ("upload/manifest.csv", manifest.encode()),
        ("upload/maps/r1.png", png(1)),
        ("upload/maps/s1.png", png(2)),
        ("upload/maps/r2.png", png(3)),
        ("upload/maps/s2.png", png(4)),
    )
    assert report.summary()["items_created"] == 2, report.as_json()
    exams = {e.item.patient.identity.original_patient_id: e for e in SpectExam.objects.select_related("item")}
    assert (exams["SPECT-0001"].age, exams["SPECT-0001"].sex, exams["SPECT-0001"].weight_kg) == (63, "M", 82.5)
    assert exams["SPECT-0002"].age is None
    assert PolarMap.objects.count() == 4


@pytest.mark.parametrize(
    ("manifest", "words"),
    [
        ("patient,rest_file,stress_file,age\nX,r.png,s.png,50\n", "lacks column(s) sex, weight, height"),
        (MANIFEST + "P1,r.png,missing.png,50,F,60,160\n", "stress_file 'missing.png' is not in the upload"),
        (MANIFEST + "P1,r.png,s.png,fifty,F,60,160\n", "age 'fifty' is not a whole number"),
        (MANIFEST + "P1,r.png,s.png,50,Q,60,160\n", "sex 'Q' must be F, M or O"),
    ],
    ids=["missing-columns", "missing-file", "bad-age", "bad-sex"],
)
def test_bad_manifest_rows_are_rejected_with_the_row_and_column(spect_project, manifest, words):
    report = run(spect_project, ("manifest.csv", manifest.encode()), ("r.png", png(1)), ("s.png", png(2)))
    messages = " | ".join(r.message for r in report.files)
    assert words in messages
    assert SpectExam.objects.count() == 0


def test_png_that_is_not_an_image_is_rejected_in_its_row(spect_project):
    manifest = MANIFEST + "P1,r.png,s.png,50,F,60,160\n"
    report = run(spect_project, ("manifest.csv", manifest.encode()), ("r.png", b"not a png"), ("s.png", png(2)))
    assert "is not a readable PNG image" in report.files[0].message
    assert PolarMap.objects.count() == 0 and media_files() == set()


def test_a_large_run_is_decoded_in_batches_and_stored_with_its_pixels_copied_across(vessel_project, settings):
    settings.LUMEN_INGEST_BATCH_FRAMES = 4
    original = samples.dataset(frames=10, size=256)  # 640 KB of pixel data: left in the file while reading
    report = run(vessel_project, ("big.dcm", samples.to_bytes(original)))
    assert report.summary()["stored"] == 1, report.files
    instance = Instance.objects.get()
    stored = pydicom.dcmread(Path(settings.MEDIA_ROOT) / instance.file_path)
    np.testing.assert_array_equal(stored.pixel_array, original.pixel_array)
    assert (
        str(stored.PatientID).startswith("P-")
        and b"MRN0001" not in (Path(settings.MEDIA_ROOT) / instance.file_path).read_bytes()
    )
    frames = sorted((Path(settings.MEDIA_ROOT) / instance.frames_dir).iterdir())
    assert [f.name.split(".")[0] for f in frames] == [f"{i:05d}" for i in range(10)]  # numbered across batches
    # Batches are windowed alike: the cached frames match a whole-run rendering.
    whole = render.frames_as_uint8(original, original.pixel_array)
    with Image.open(frames[9]) as image:
        assert np.abs(np.asarray(image.convert("L")).astype(int) - whole[9].astype(int)).mean() < 3


def test_pixel_data_running_past_the_end_of_a_large_file_is_truncated(vessel_project):
    data = samples.to_bytes(samples.dataset(frames=10, size=256))[:-5000]
    report = run(vessel_project, ("cut.dcm", data))
    assert report.files[0].reason == "truncated"
    assert "declares 655360 bytes but only 650360 are in the file" in report.files[0].message
    assert Instance.objects.count() == 0 and media_files() == set()


def test_a_damaged_zip_member_is_that_files_rejection(vessel_project):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("good.dcm", samples.xa_bytes(seed=1))
        zf.writestr("bad.dcm", samples.xa_bytes(seed=2))
    data = bytearray(archive.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        bad = zf.getinfo("bad.dcm")
    data[bad.header_offset + 30 + len("bad.dcm") + 40] ^= 0xFF  # flip a byte of the compressed member
    sources = list(sources_from_path_bytes("runs.zip", bytes(data)))
    report = import_run(project=vessel_project, sources=sources)
    outcomes = {r.name: (r.outcome, r.reason) for r in report.files}
    assert outcomes["runs.zip/good.dcm"] == (Outcome.STORED, "")
    assert outcomes["runs.zip/bad.dcm"][1] == "bad_archive"
    assert "cannot be extracted" in next(r.message for r in report.files if r.name == "runs.zip/bad.dcm")


def sources_from_path_bytes(name: str, data: bytes):
    folder = Path(tempfile.mkdtemp())
    (folder / name).write_bytes(data)
    return sources_from_path(folder / name, limits=ArchiveLimits(members=100))


def test_nul_characters_in_text_values_are_dropped_not_a_server_error(vessel_project):
    ds = samples.dataset(patient_id="MRN\x000042")
    ds.PatientName = "DOE\x00^JOHN"
    ds.StudyDescription = "CORONARY\x00 ANGIO"
    report = run(vessel_project, ("nul.dcm", samples.to_bytes(ds)))
    assert report.summary()["stored"] == 1, report.files
    identity = PatientIdentity.objects.get()
    assert (identity.original_patient_id, identity.original_name) == ("MRN0042", "DOE^JOHN")
    assert Instance.objects.get().series.study.description == "CORONARY ANGIO"


def test_an_unexpected_failure_in_one_file_is_its_rejection_and_the_batch_goes_on(vessel_project, monkeypatch):
    from annotation.services import imports

    original = imports.ingest_dicom

    def breaks_on_b(project, config, source, limits, record=None):
        if source.name == "b.dcm":
            raise RuntimeError("DOE^JANE broke something")  # the message is never shown or logged
        return original(project, config, source, limits, record=record)

    monkeypatch.setattr(imports, "ingest_dicom", breaks_on_b)
    report = run(
        vessel_project,
        ("a.dcm", samples.xa_bytes(seed=1)),
        ("b.dcm", samples.xa_bytes(seed=2)),
        ("c.dcm", samples.xa_bytes(seed=3)),
    )
    assert [(r.name, r.outcome, r.reason) for r in report.files] == [
        ("a.dcm", Outcome.STORED, ""),
        ("b.dcm", Outcome.REJECTED, "storage_failed"),
        ("c.dcm", Outcome.STORED, ""),
    ]
    assert "RuntimeError" in report.files[1].message and "DOE" not in report.files[1].message
    assert Job.objects.get().status == JobStatus.SUCCEEDED


@pytest.mark.parametrize(("stated", "said"), [(0, "NumberOfFrames is 0"), (None, "NumberOfFrames is absent")])
def test_a_run_without_frames_says_what_the_file_states(vessel_project, stated, said):
    ds = samples.dataset(frames=1)
    if stated is None:
        ds.pop("NumberOfFrames", None)
    else:
        ds.NumberOfFrames = stated
    [result] = run(vessel_project, ("odd.dcm", samples.to_bytes(ds))).files
    assert result.reason == "not_multiframe" and said in result.message and "at least 2 frames" in result.message


def test_zip_members_that_climb_out_or_are_links_are_reported_not_dropped(vessel_project):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.dcm", samples.xa_bytes(seed=1))
        zf.writestr("../../etc/evil.dcm", samples.xa_bytes(seed=2))
        link = zipfile.ZipInfo("link.dcm")
        link.external_attr = 0o120777 << 16  # a symbolic link, as zip -y stores one
        zf.writestr(link, "/etc/passwd")
    report = import_run(project=vessel_project, sources=list(sources_from_path_bytes("a.zip", archive.getvalue())))
    outcomes = {r.name: (r.outcome, r.reason, r.message) for r in report.files}
    assert outcomes["a.zip/ok.dcm"][0] == Outcome.STORED
    assert outcomes["a.zip/../../etc/evil.dcm"][:2] == (Outcome.REJECTED, "bad_archive")
    assert "climbs out of the archive" in outcomes["a.zip/../../etc/evil.dcm"][2]
    assert outcomes["a.zip/link.dcm"][:2] == (Outcome.REJECTED, "bad_archive")
    assert "symbolic link" in outcomes["a.zip/link.dcm"][2]
    assert Instance.objects.count() == 1


def test_reading_an_invalid_uid_warns_nothing_that_would_quote_it(vessel_project, recwarn, caplog):
    ds = samples.dataset()
    ds.SeriesDescription = "X" * 80  # longer than LO allows
    data = samples.to_bytes(ds).replace(b"1.2.840.10008.5.1.4.1.1.12.1", b"1.2.840.10008.5.1.4.1.1.12.x")
    run(vessel_project, ("odd-uid.dcm", data))
    quoted = [str(w.message) for w in recwarn if "12.x" in str(w.message) or "XXXX" in str(w.message)]
    assert quoted == [] and "12.x" not in caplog.text


def test_a_zip_bomb_by_ratio_is_refused_from_the_directory_without_inflating(vessel_project):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("run.dcm", samples.xa_bytes(seed=1))
        zf.writestr("bomb.dcm", bytes(64 * 1024**2))  # 64 MiB of zeros: about 64 KiB compressed
    started = time.monotonic()
    report = import_run(project=vessel_project, sources=list(sources_from_path_bytes("b.zip", archive.getvalue())))
    outcomes = {r.name: r for r in report.files}
    assert outcomes["b.zip/run.dcm"].outcome == Outcome.STORED
    bomb = outcomes["b.zip/bomb.dcm"]
    assert (bomb.outcome, bomb.reason) == (Outcome.REJECTED, "bad_archive") and "zip bomb" in bomb.message
    assert time.monotonic() - started < 10


def test_members_past_the_archives_expansion_budget_are_each_reported(vessel_project, tmp_path):
    archive = tmp_path / "runs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(3):
            zf.writestr(f"run{n}.dcm", samples.xa_bytes(seed=n))
    one = zipfile.ZipFile(archive).getinfo("run0.dcm").file_size
    limits = ArchiveLimits(members=100, expanded_bytes=2 * one + 10)
    report = import_run(project=vessel_project, sources=sources_from_path(archive, limits=limits))
    outcomes = {r.name: r for r in report.files}
    assert [outcomes[f"runs.zip/run{n}.dcm"].outcome for n in range(3)] == [Outcome.STORED] * 2 + [Outcome.REJECTED]
    assert f"more than {2 * one + 10} bytes" in outcomes["runs.zip/run2.dcm"].message


def test_a_member_that_inflates_past_its_declared_size_is_rejected(vessel_project):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("liar.dcm", samples.xa_bytes(seed=3))
    data = bytearray(archive.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("liar.dcm")
    central = data.rindex(b"PK\x01\x02")  # the member's central directory entry: declared size at offset 24
    data[central + 24 : central + 28] = (1024).to_bytes(4, "little")
    data[info.header_offset + 22 : info.header_offset + 26] = (1024).to_bytes(4, "little")
    report = import_run(project=vessel_project, sources=list(sources_from_path_bytes("l.zip", bytes(data))))
    [result] = report.files
    assert (result.outcome, result.reason) == (Outcome.REJECTED, "bad_archive"), result
    assert not vessel_project.items.exists()
