"""Dataset exports: one project of each task, labelled by two annotators with superseded versions, a pseudo-label
and splits; the archive's every file is checked against the database, the OCT masks pixel for pixel as PNG and as
DICOM Segmentation (validated with dciodvfy, read back with highdicom), and no original identifier is in it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import signal
import subprocess
import zipfile
from datetime import timedelta
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid

from annotation.models import (
    Item,
    Job,
    JobStatus,
    Label,
    LiveEvent,
    ModelStatus,
    ModelVersion,
    PatientIdentity,
    PseudoLabel,
    Role,
)
from annotation.services import exports as export_service
from annotation.services import label_submit
from annotation.services.exports import ExportRefused, export_archive, export_jobs_run_pending, export_request
from annotation.services.jobs import JobConflict, job_claim, jobs_recover_stale
from learning.cohorts.dicom_common import fake_patient
from learning.cohorts.ivoct import write_oct_pullback
from learning.domain import SEGMENTS, TERRITORY_SEGMENTS, VESSEL_CLASSES
from learning.masks import mask_encode
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.cohort_projects import spect_cohort
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

# Identifiers written into the generated files before import; none may reach an export.
PATIENT_NAME = "WHITMORE^EVANGELINE"
PATIENT_ID = "MRN-7731904"
OTHER_IDENTIFIERS = ("St. Example Hospital", "GREGORY", "ACC998877", "19580312", "WHITMORE", "EVANGELINE")


# ---------------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def second(oct_project, vessel_project, spect_project):
    """A second annotator in every task's project."""
    user = UserFactory(username="second.reader")
    for project in (oct_project, vessel_project, spect_project):
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
    return user


def export_now(project, lead) -> tuple[Job, zipfile.ZipFile]:
    """Queue an export as the lead, run it as the worker does, and open the archive."""
    job = export_request(project=project, by=lead)
    assert export_jobs_run_pending() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    path = export_archive(job)
    assert path is not None and path == Path(settings.MEDIA_ROOT) / f"exports/{project.slug}/{job.pk}.zip"
    return job, zipfile.ZipFile(path)


def read_csv(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8"))))


def cell(value) -> str:
    """A value as the export's CSV files write it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def expected_label(label: Label, *, history: bool = False) -> dict[str, str]:
    """A label's shared columns, from the database."""
    label = Label.objects.select_related("item__patient", "author", "previous").get(pk=label.pk)
    item = label.item
    row = {
        "label_id": label.pk,
        "item_id": item.pk,
        "item_kind": item.kind,
        "item_title": item.title,
        "item_excluded": item.excluded_at is not None,
        "patient": item.patient.pseudonym,
        "split": item.split or "unassigned",
        "author": label.author.username,
        "version": label.version,
        "previous_version": label.previous.version if label.previous else None,
        "source": label.source,
        "schema_version": label.schema_version,
        "created_at": label.created_at.isoformat(),
        "time_spent_ms": label.time_spent_ms,
    }
    if history:
        row |= {
            "previous_label_id": label.previous_id,
            "current": label.superseded_at is None,
            "superseded_at": label.superseded_at.isoformat() if label.superseded_at else None,
        }
    return {key: cell(value) for key, value in row.items()}


def check_label_tables(archive: zipfile.ZipFile, project, task_columns: dict[int, dict[str, object]]) -> None:
    """labels.* hold exactly the current labels and label_history.* every version, with the shared columns right
    and the task's columns as given ({label id: {column: value}})."""
    current = list(Label.objects.filter(item__project=project, superseded_at__isnull=True).order_by("pk"))
    versions = list(Label.objects.filter(item__project=project).order_by("pk"))
    assert len(versions) > len(current)  # the project has superseded versions

    rows = {int(r["label_id"]): r for r in read_csv(archive, "labels.csv")}
    assert set(rows) == {label.pk for label in current}
    for label in current:
        task = {key: cell(value) for key, value in task_columns[label.pk].items()}
        assert rows[label.pk] == expected_label(label) | task

    documents = {d["label_id"]: d for d in json.loads(archive.read("labels.json"))}
    assert set(documents) == {label.pk for label in current}
    for label in current:
        assert documents[label.pk]["payload"] == label.payload
        assert documents[label.pk]["author"] == label.author.username
        assert documents[label.pk]["time_spent_ms"] == label.time_spent_ms

    history = {int(r["label_id"]): r for r in read_csv(archive, "label_history.csv")}
    assert set(history) == {label.pk for label in versions}
    for label in versions:
        assert {k: history[label.pk][k] for k in expected_label(label, history=True)} == expected_label(
            label, history=True
        )
    history_documents = {d["label_id"]: d for d in json.loads(archive.read("label_history.json"))}
    assert {pk: d["payload"] for pk, d in history_documents.items()} == {label.pk: label.payload for label in versions}
    superseded = [label for label in versions if label.superseded_at is not None]
    for old in superseded:
        newer = Label.objects.get(previous=old)
        assert history[newer.pk]["previous_label_id"] == str(old.pk)
        assert history[newer.pk]["previous_version"] == str(old.version)
        assert history[old.pk]["current"] == "false"


def check_splits(archive: zipfile.ZipFile, project) -> None:
    rows = read_csv(archive, "splits.csv")
    items = Item.objects.filter(project=project).select_related("patient").order_by("pk")
    assert rows == [
        {
            "item_id": str(item.pk),
            "item_kind": item.kind,
            "item_title": item.title,
            "patient": item.patient.pseudonym,
            "split": item.split or "unassigned",
            "excluded": cell(item.excluded_at is not None),
            "gold": cell(item.is_gold),
        }
        for item in items
    ]


def check_manifest(archive: zipfile.ZipFile, job: Job, project, lead) -> dict:
    """The manifest names the export and lists every other file with its size and SHA-256."""
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == "lumen-dataset-export" and manifest["format_version"] == 1
    assert manifest["project"] == {
        "slug": project.slug,
        "name": project.name,
        "task": project.task_type,
        "task_title": project.task.title,
    }
    assert manifest["job"] == job.pk and manifest["created_by"] == lead.username
    assert manifest["created_at"] == job.created_at.isoformat()
    assert manifest["label_schema"] == {"task": project.task_type, "versions": [1]}
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == set(archive.namelist()) - {"manifest.json"}
    assert len(listed) == len(manifest["files"])  # no path twice
    for path, entry in listed.items():
        data = archive.read(path)
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), path
    labels = Label.objects.filter(item__project=project)
    counts = manifest["counts"]
    assert counts["current_labels"] == labels.filter(superseded_at__isnull=True).count()
    assert counts["label_versions"] == labels.count()
    assert counts["authors"] == labels.values("author").distinct().count()
    assert counts["items"] == Item.objects.filter(project=project).count()
    assert counts["pseudo_labels"] == PseudoLabel.objects.filter(item__project=project).count()
    assert counts["files"] == len(archive.namelist())
    assert job.result["counts"] == counts and job.result["bytes"] == export_archive(job).stat().st_size
    return manifest


def identifiers() -> set[str]:
    """Every original identifier the database knows (the lead-only table), name components included."""
    found = set(OTHER_IDENTIFIERS) | {PATIENT_NAME, PATIENT_ID}
    for identity in PatientIdentity.objects.all():
        found |= {identity.original_patient_id, identity.original_name, identity.original_birth_date}
        found |= {part for part in identity.original_name.split("^") if len(part) >= 4}
    return {value for value in found if value}


def assert_no_identifiers(archive: zipfile.ZipFile) -> None:
    secrets = identifiers()
    assert PATIENT_ID in secrets
    for name in archive.namelist():
        data = archive.read(name)
        texts = [name, data.decode("latin-1")]
        if name.endswith(".dcm"):
            texts.append(str(dcmread(io.BytesIO(data))))
        for text in texts:
            leaked = [secret for secret in secrets if secret in text]
            assert not leaked, f"{name} carries {leaked}"


def job_events(job: Job) -> list[dict]:
    return [
        event.payload
        for event in LiveEvent.objects.filter(project=job.project).order_by("pk")
        if event.payload.get("event") == "job" and event.payload.get("job") == job.pk
    ]


# ---------------------------------------------------------------------------------------------------- vessel type
@pytest.fixture
def vessel_world(vessel_project, lead, annotator, second):
    """Three runs of three patients; two annotators, a superseded version, an unusable answer; splits; a champion
    whose pseudo-label covers the unlabelled run."""
    report = run(
        vessel_project,
        ("a.dcm", samples.xa_bytes(seed=1, patient_id=PATIENT_ID, patient_name=PATIENT_NAME)),
        ("b.dcm", samples.xa_bytes(seed=2, patient_id="MRN-5550002", patient_name="QUARTERMAINE^ALLAN")),
        ("c.dcm", samples.xa_bytes(seed=3, patient_id="MRN-5550003", patient_name="FAIRWEATHER^OPHELIA")),
    )
    assert report.summary()["stored"] == 3
    a, b, c = Item.objects.filter(project=vessel_project).order_by("pk")
    label_submit(item=a, author=annotator, payload={"vessel": "LCA"}, base_version=None, time_spent_ms=4100)
    label_submit(item=a, author=annotator, payload={"vessel": "RCA"}, base_version=1, time_spent_ms=2500)
    reason = "no contrast filling"
    label_submit(item=a, author=second, payload={"vessel": "unusable", "unusable_reason": reason}, base_version=None)
    label_submit(item=b, author=second, payload={"vessel": "neither"}, base_version=None, time_spent_ms=700)
    for item, split in ((a, "train"), (b, "test"), (c, "validation")):
        Item.objects.filter(pk=item.pk).update(split=split)
    retired = ModelVersion.objects.create(project=vessel_project, number=1, family="metadata_logreg", status="retired")
    champion = ModelVersion.objects.create(
        project=vessel_project, number=2, family="r2plus1d", status=ModelStatus.CHAMPION, trained_at=timezone.now()
    )
    PseudoLabel.objects.create(item=c, model_version=champion, payload={"target": 1}, confidence=0.97)
    PseudoLabel.objects.create(item=c, model_version=retired, payload={"target": 0}, confidence=0.91)
    return vessel_project


def test_vessel_export_holds_every_label_version_split_and_pseudo_label(vessel_world, lead):
    project = vessel_world
    job, archive = export_now(project, lead)
    manifest = check_manifest(archive, job, project, lead)
    columns = {
        label.pk: {"vessel": label.payload["vessel"], "unusable_reason": label.payload.get("unusable_reason", "")}
        for label in Label.objects.filter(item__project=project)
    }
    check_label_tables(archive, project, columns)
    check_splits(archive, project)
    assert {row["split"] for row in read_csv(archive, "splits.csv")} == {"train", "test", "validation"}

    # Pseudo-labels name the model version behind them; the manifest names the champion and both versions.
    pseudo = sorted(read_csv(archive, "pseudo_labels.csv"), key=lambda r: r["model_version"])
    c = Item.objects.get(project=project, split="validation")
    assert [
        (r["item_id"], r["model_version"], r["model_family"], r["model_status"], r["confidence"], r["target"])
        for r in pseudo
    ] == [
        (str(c.pk), "1", "metadata_logreg", "retired", "0.91", "0"),
        (str(c.pk), "2", "r2plus1d", "champion", "0.97", "1"),
    ]
    assert [p["target"] for p in json.loads(archive.read("pseudo_labels.json"))] == [0, 1]
    assert manifest["champion"]["number"] == 2 and manifest["champion"]["family"] == "r2plus1d"
    assert [(m["number"], m["status"], m["pseudo_labels"]) for m in manifest["pseudo_label_models"]] == [
        (1, "retired", 1),
        (2, "champion", 1),
    ]

    # The task's own file: each current label's class with the run's de-identified UIDs.
    classes = {int(r["label_id"]): r for r in read_csv(archive, "vessel_type/classes.csv")}
    current = Label.objects.filter(item__project=project, superseded_at__isnull=True).select_related(
        "item__instance__series__study", "author"
    )
    assert set(classes) == {label.pk for label in current}
    for label in current:
        row, instance = classes[label.pk], label.item.instance
        vessel = label.payload["vessel"]
        assert row["sop_instance_uid"] == instance.sop_instance_uid
        assert row["series_instance_uid"] == instance.series.series_instance_uid
        assert row["study_instance_uid"] == instance.series.study.study_instance_uid
        assert row["vessel"] == vessel and row["author"] == label.author.username
        assert row["class_index"] == (str(VESSEL_CLASSES.index(vessel)) if vessel in VESSEL_CLASSES else "")
    assert json.loads(archive.read("vessel_type/classes.json"))["classes"] == list(VESSEL_CLASSES)
    assert_no_identifiers(archive)


# ---------------------------------------------------------------------------------------------------- OCT calcium
def _mask(rng, shape, density) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    top, left = rng.integers(0, shape[0] // 2), rng.integers(0, shape[1] // 2)
    mask[top : top + shape[0] // 3, left : left + shape[1] // 4] = True
    return mask | (rng.random(shape) < density)


@pytest.fixture
def oct_world(oct_project, annotator, second, tmp_path):
    """Two pullbacks: a minimal IVOCT file with a Frame of Reference and the identifiers above, and a generated
    one without (its functional groups give pixel spacing but no slice thickness). Labels: a mask superseded by
    another, a second annotator's mask of the same frame, an excluded frame, an empty mask."""
    first = samples.dataset(
        modality="IVOCT",
        sop_class=samples.IVOCT_CLASS,
        frames=4,
        size=32,
        patient_id=PATIENT_ID,
        patient_name=PATIENT_NAME,
    )
    first.FrameOfReferenceUID = generate_uid()
    rng = np.random.default_rng(5)
    generated = tmp_path / "pullback.dcm"
    write_oct_pullback(generated, rng=rng, patient=fake_patient(rng, 0), frames=3, size=48)
    report = run(oct_project, ("one.dcm", samples.to_bytes(first)), ("two.dcm", generated.read_bytes()))
    assert report.summary()["stored"] == 2, report.as_json()
    items = Item.objects.filter(project=oct_project).select_related("instance").order_by("instance_id", "frame_index")
    one = [item for item in items if item.instance.rows == 32]
    two = [item for item in items if item.instance.rows == 48]
    masks = {}

    def label(item, author, mask, base=None, **extra):
        saved = label_submit(item=item, author=author, payload={"mask": mask_encode(mask)}, base_version=base, **extra)
        masks[saved.pk] = mask
        return saved

    label(one[0], annotator, _mask(rng, (32, 32), 0.05), time_spent_ms=12000)
    label(one[0], annotator, _mask(rng, (32, 32), 0.1), base=1, time_spent_ms=3000)
    label(one[0], second, _mask(rng, (32, 32), 0.1), time_spent_ms=9000)
    excluded = {"excluded": True, "exclusion_reason": "in_guide_catheter"}
    label_submit(item=one[1], author=annotator, payload=excluded, base_version=None)
    label(one[2], annotator, np.zeros((32, 32), dtype=bool))
    label(two[1], second, _mask(rng, (48, 48), 0.2), time_spent_ms=4000)
    Item.objects.filter(pk__in=[i.pk for i in one]).update(split="train")
    Item.objects.filter(pk__in=[i.pk for i in two]).update(split="test")
    return oct_project, masks, first


def run_dciodvfy(path: Path) -> str:
    binary = shutil.which("dciodvfy")
    if binary is None:
        pytest.fail("dciodvfy not found: install Debian's dicom3tools (`make test` does)")
    done = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def test_oct_export_masks_as_png_and_dicom_seg_pixel_for_pixel(oct_world, lead, tmp_path):
    project, masks, original = oct_world
    job, archive = export_now(project, lead)
    check_manifest(archive, job, project, lead)

    current = list(
        Label.objects.filter(item__project=project, superseded_at__isnull=True)
        .select_related("item__instance__series__study", "item__patient", "author")
        .order_by("pk")
    )
    names = {label.pk: f"item-{label.item_id}_{label.author.username}" for label in current}
    drawn = [label for label in current if not label.payload.get("excluded")]
    columns = {}
    for label in Label.objects.filter(item__project=project):
        if label.payload.get("excluded"):
            columns[label.pk] = {
                "excluded": True,
                "exclusion_reason": "in_guide_catheter",
                "mask_pixels": None,
                "mask_png": None,
                "mask_seg": None,
            }
            continue
        is_current = label.superseded_at is None
        name = f"item-{label.item_id}_{label.author.username}"
        columns[label.pk] = {
            "excluded": False,
            "exclusion_reason": "",
            "mask_pixels": int(masks[label.pk].sum()),
            "mask_png": f"oct_calcium/png/{name}.png" if is_current else None,
            "mask_seg": f"oct_calcium/seg/{name}.dcm" if is_current else None,
        }
    check_label_tables(archive, project, columns)
    check_splits(archive, project)

    # One PNG and one SEG per current drawn label; none for the superseded version or the excluded frame.
    expected_files = {f"oct_calcium/png/{names[label.pk]}.png" for label in drawn} | {
        f"oct_calcium/seg/{names[label.pk]}.dcm" for label in drawn
    }
    assert {n for n in archive.namelist() if n.startswith(("oct_calcium/png/", "oct_calcium/seg/"))} == expected_files
    index = {int(r["label_id"]): r for r in read_csv(archive, "oct_calcium/masks.csv")}
    assert set(index) == {label.pk for label in current}

    for label in drawn:
        mask, item = masks[label.pk], label.item
        instance = item.instance
        png = np.asarray(Image.open(io.BytesIO(archive.read(f"oct_calcium/png/{names[label.pk]}.png"))))
        assert png.dtype == np.uint8 and png.shape == mask.shape
        assert np.array_equal(png, np.where(mask, 255, 0))

        seg_path = tmp_path / f"{names[label.pk]}.dcm"
        seg_path.write_bytes(archive.read(f"oct_calcium/seg/{names[label.pk]}.dcm"))
        report = run_dciodvfy(seg_path)
        errors = [line for line in report.splitlines() if "Error" in line]
        assert not errors, report
        seg = hd.seg.segread(seg_path)
        assert seg.SegmentationType == "BINARY" and seg.Modality == "SEG"
        pixels = seg.get_pixels_by_source_frame(
            source_sop_instance_uid=instance.sop_instance_uid,
            source_frame_numbers=[item.frame_index + 1],
            combine_segments=True,
        )
        assert pixels.shape == (1, *mask.shape)
        assert np.array_equal(pixels[0] > 0, mask)
        # It references the stored, de-identified pullback and the frame, and carries its pseudonym.
        source = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
        assert source.ReferencedSOPInstanceUID == instance.sop_instance_uid
        assert int(source.ReferencedFrameNumber) == item.frame_index + 1
        referenced = seg.ReferencedSeriesSequence[0]
        assert referenced.SeriesInstanceUID == instance.series.series_instance_uid
        assert referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == instance.sop_instance_uid
        assert seg.StudyInstanceUID == instance.series.study.study_instance_uid
        assert seg.PatientID == item.patient.pseudonym and str(seg.PatientName) == item.patient.pseudonym
        assert str(seg.ContentCreatorName).rstrip("^") == label.author.username
        stored = dcmread(Path(settings.MEDIA_ROOT) / instance.file_path, stop_before_pixels=True)
        if "FrameOfReferenceUID" in stored:
            assert seg.FrameOfReferenceUID == stored.FrameOfReferenceUID
        else:
            assert "FrameOfReferenceUID" not in seg

        row = index[label.pk]
        assert row["sop_instance_uid"] == instance.sop_instance_uid
        assert (row["frame_index"], row["frame_number"]) == (str(item.frame_index), str(item.frame_index + 1))
        assert row["mask_pixels"] == str(int(mask.sum())) and row["seg_sop_instance_uid"] == seg.SOPInstanceUID
        assert row["excluded"] == "false" and row["png"].endswith(".png")

    # The stored source is the de-identified copy: its UID is not the original's.
    assert original.SOPInstanceUID not in {label.item.instance.sop_instance_uid for label in current}
    excluded = next(label for label in current if label.payload.get("excluded"))
    assert index[excluded.pk]["excluded"] == "true"
    assert index[excluded.pk]["exclusion_reason"] == "in_guide_catheter"
    assert index[excluded.pk]["png"] == "" and index[excluded.pk]["seg"] == ""
    assert_no_identifiers(archive)


# ---------------------------------------------------------------------------------------------------- SPECT
@pytest.fixture
def spect_world(spect_project, annotator, second, tmp_path):
    truth = spect_cohort(spect_project, tmp_path / "spect", patients=3)
    first, other, third = sorted(truth, key=lambda item: item.pk)

    def scores(item):
        return {"stress": list(truth[item].stress_scores), "rest": list(truth[item].rest_scores)}

    label_submit(item=first, author=annotator, payload=scores(first), base_version=None, time_spent_ms=30000)
    changed = scores(first) | {"flag_overrides": {"RCA": {"abnormal": True, "reason": "attenuation ruled out"}}}
    changed["stress"][2] = 3  # segment 3 (RCA) read more severe in the second version
    label_submit(item=first, author=annotator, payload=changed, base_version=1, time_spent_ms=15000)
    label_submit(item=first, author=second, payload=scores(first), base_version=None, time_spent_ms=21000)
    label_submit(item=other, author=second, payload=scores(other), base_version=None)
    Item.objects.filter(pk=third.pk).update(split="test")
    return spect_project


def test_spect_export_has_segment_scores_and_territory_flags(spect_world, lead):
    project = spect_world
    job, archive = export_now(project, lead)
    check_manifest(archive, job, project, lead)
    columns = {}
    for label in Label.objects.filter(item__project=project):
        payload = label.payload
        overrides = payload.get("flag_overrides", {})
        row: dict[str, object] = {
            f"{phase}_{s}": payload[phase][s - 1] for phase in ("stress", "rest") for s in SEGMENTS
        }
        for territory, segments in TERRITORY_SEGMENTS.items():
            sss = sum(payload["stress"][s - 1] for s in segments)
            abnormal = overrides[territory]["abnormal"] if territory in overrides else sss >= 4
            row[f"{territory}_abnormal"] = abnormal
            row[f"{territory}_override_reason"] = overrides.get(territory, {}).get("reason", "")
        columns[label.pk] = row
    check_label_tables(archive, project, columns)
    check_splits(archive, project)

    current = Label.objects.filter(item__project=project, superseded_at__isnull=True).select_related("author")
    scores = read_csv(archive, "spect_territory/segment_scores.csv")
    assert len(scores) == 2 * current.count()
    for label in current:
        for phase in ("stress", "rest"):
            row = next(r for r in scores if r["label_id"] == str(label.pk) and r["phase"] == phase)
            assert [int(row[f"segment_{s}"]) for s in SEGMENTS] == label.payload[phase]
            assert row["author"] == label.author.username and row["version"] == str(label.version)

    territories = read_csv(archive, "spect_territory/territories.csv")
    assert len(territories) == 3 * current.count()
    for label in current:
        payload, overrides = label.payload, label.payload.get("flag_overrides", {})
        for territory, segments in TERRITORY_SEGMENTS.items():
            row = next(r for r in territories if r["label_id"] == str(label.pk) and r["territory"] == territory)
            sss = sum(payload["stress"][s - 1] for s in segments)
            srs = sum(payload["rest"][s - 1] for s in segments)
            assert (row["sss"], row["srs"], row["sds"]) == (str(sss), str(srs), str(sss - srs))
            assert row["abnormal_by_score"] == cell(sss >= 4)
            override = overrides.get(territory)
            assert row["override_abnormal"] == cell(override["abnormal"] if override else None)
            assert row["abnormal"] == cell(override["abnormal"] if override else sss >= 4)
    overridden = next(r for r in territories if r["override_reason"])
    assert (overridden["territory"], overridden["override_reason"]) == ("RCA", "attenuation ruled out")
    assert len(read_csv(archive, "spect_territory/segments.csv")) == 17
    assert_no_identifiers(archive)


# ---------------------------------------------------------------------------------------------------- the job
def test_export_progress_is_reported_live_and_ends_complete(vessel_world, lead, monkeypatch):
    monkeypatch.setattr(export_service, "PROGRESS_EVERY_SECONDS", 0.0)  # every step reports
    job, _ = export_now(vessel_world, lead)
    assert job.progress == 1.0 and job.detail["phase"] == "manifest"
    assert job.detail["done"] == job.detail["total"] and job.finished_at is not None
    events = job_events(job)
    assert [e["status"] for e in events][:2] == ["queued", "running"] and events[-1]["status"] == "succeeded"
    assert all(e["kind"] == "export" for e in events)
    running = [e["progress"] for e in events if e["status"] == "running"]
    assert running == sorted(running) and any(0 < p < 1 for p in running)
    assert {e["detail"].get("phase") for e in events if e["status"] == "running"} >= {"labels", "splits", "task files"}
    # Only leads hear job events.
    assert all(
        event.leads_only
        for event in LiveEvent.objects.filter(project=vessel_world)
        if event.payload.get("job") == job.pk
    )


def test_a_failed_export_says_why_and_leaves_no_archive(oct_world, lead):
    project, _, _ = oct_world
    instance = Item.objects.filter(project=project, labels__isnull=False).first().instance
    (Path(settings.MEDIA_ROOT) / instance.file_path).unlink()  # the stored pullback is gone
    job = export_request(project=project, by=lead)
    assert export_jobs_run_pending() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert f"the stored file of pullback {instance.pk} is missing from storage" in job.error
    assert export_archive(job) is None
    folder = Path(settings.MEDIA_ROOT) / "exports" / project.slug
    assert list(folder.iterdir()) == []  # neither the archive nor a partial one
    assert job_events(job)[-1]["status"] == "failed" and job_events(job)[-1]["error"] == job.error


def test_a_stale_export_is_queued_again_and_rewritten_from_the_start(vessel_world, lead):
    job = export_request(project=vessel_world, by=lead)
    claimed = job_claim(kinds=("export",))
    assert claimed.pk == job.pk
    # The worker died while writing: its partial archive stays, its heartbeat stops.
    folder = Path(settings.MEDIA_ROOT) / "exports" / vessel_world.slug
    folder.mkdir(parents=True)
    partial = folder / f"{job.pk}.zip.deadbeef.part"
    partial.write_bytes(b"PK half an archive")
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    assert jobs_recover_stale(stale_after=timedelta(minutes=5), max_attempts=2) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert export_jobs_run_pending() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert sorted(p.name for p in folder.iterdir()) == [f"{job.pk}.zip"]
    with zipfile.ZipFile(export_archive(job)) as archive:
        assert archive.testzip() is None and "manifest.json" in archive.namelist()

    # Out of attempts, a stale export fails with the reason.
    again = export_request(project=vessel_world, by=lead)
    job_claim(kinds=("export",))
    Job.objects.filter(pk=again.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10), attempts=2)
    jobs_recover_stale(stale_after=timedelta(minutes=5), max_attempts=2)
    again.refresh_from_db()
    assert again.status == JobStatus.FAILED and "stopped responding" in again.error


def test_a_project_without_labels_exports_tables_with_their_headers(spect_project, lead):
    job, archive = export_now(spect_project, lead)
    assert read_csv(archive, "labels.csv") == [] and json.loads(archive.read("labels.json")) == []
    header = archive.read("labels.csv").decode().splitlines()[0].split(",")
    assert header[:3] == ["label_id", "item_id", "item_kind"] and "stress_17" in header and "LCX_abnormal" in header
    assert read_csv(archive, "spect_territory/territories.csv") == []
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["counts"]["current_labels"] == 0 and manifest["champion"] is None
    assert job.progress == 1.0


def test_the_import_worker_command_runs_queued_exports(vessel_world, lead):
    job = export_request(project=vessel_world, by=lead)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    out = io.StringIO()
    try:
        call_command("import_worker", "--once", stdout=out)
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and export_archive(job) is not None
    assert "1 import or export job(s) run" in out.getvalue()


def test_one_export_at_a_time_and_leads_only(vessel_world, lead, annotator):
    job = export_request(project=vessel_world, by=lead)
    with pytest.raises(JobConflict, match=f"#{job.pk}"):
        export_request(project=vessel_world, by=lead)
    with pytest.raises(ExportRefused, match="leads"):
        export_request(project=vessel_world, by=annotator)


# ---------------------------------------------------------------------------------------------------- API
def test_export_api_for_leads_only(vessel_world, lead, annotator, stranger, client_for):
    list_url = reverse("api:export-list", args=[vessel_world.slug])
    as_annotator, as_stranger, as_lead = client_for(annotator), client_for(stranger), client_for(lead)
    assert as_annotator.post(list_url).status_code == 403
    assert as_annotator.get(list_url).status_code == 403
    assert as_stranger.post(list_url).status_code == 404
    assert client_for().get(list_url).status_code in (401, 403)

    started = as_lead.post(list_url)
    assert started.status_code == 202, started.content
    job_id = started.json()["id"]
    assert started.json()["status"] == "queued" and started.json()["download_url"] is None
    again = as_lead.post(list_url)
    assert again.status_code == 409 and "already" in again.json()["detail"]
    download_url = reverse("api:export-download", args=[vessel_world.slug, job_id])
    waiting = as_lead.get(download_url)
    assert waiting.status_code == 404 and "it is queued" in waiting.json()["detail"]
    assert as_annotator.get(download_url).status_code == 403

    assert export_jobs_run_pending() == 1
    listed = as_lead.get(list_url).json()["results"]
    assert [e["id"] for e in listed] == [job_id]
    entry = listed[0]
    job = Job.objects.get(pk=job_id)
    path = export_archive(job)
    assert entry["status"] == "succeeded" and entry["progress"] == 1.0
    assert entry["bytes"] == path.stat().st_size and entry["sha256"] == job.result["sha256"]
    assert entry["created_by"] == lead.username and entry["download_url"] == download_url
    assert entry["counts"]["current_labels"] == 3
    detail = as_lead.get(reverse("api:export-detail", args=[vessel_world.slug, job_id])).json()
    assert detail == entry

    response = as_lead.get(download_url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="{job.result["filename"]}"'
    assert job.result["filename"].startswith(f"{vessel_world.slug}-dataset-{job_id}-")
    assert b"".join(response.streaming_content) == path.read_bytes()
    assert as_annotator.get(download_url).status_code == 403
    assert as_stranger.get(download_url).status_code == 404
    missing = reverse("api:export-download", args=[vessel_world.slug, job_id + 100])
    assert as_lead.get(missing).status_code == 404


def test_the_exports_card_is_on_the_project_page_of_leads_only(client, vessel_project, lead, annotator):
    client.force_login(annotator)
    page = client.get(f"/projects/{vessel_project.slug}/").content.decode()
    assert 'id="exports"' not in page and "frontend/exports.js" not in page
    client.force_login(lead)
    page = client.get(f"/projects/{vessel_project.slug}/").content.decode()
    assert 'id="exports"' in page and 'id="export-start"' in page and "frontend/exports.js" in page
    assert f'data-exports-url="{reverse("api:export-list", args=[vessel_project.slug])}"' in page
