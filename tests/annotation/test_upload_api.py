"""Uploading through the API: staged to disk, answered with a queued import job, imported by the worker, resumable."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from annotation import services
from annotation.models import ImportFile, Instance, Job, JobKind, PatientIdentity
from annotation.services import imports
from annotation.services.imports import import_jobs_run_pending
from tests import dicom_samples as samples

pytestmark = pytest.mark.django_db


def url(project):
    return reverse("api:import-list", args=[project.slug])


def staged_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "imports"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_upload_is_staged_and_answered_with_a_queued_job_then_the_worker_imports_it(
    vessel_project, client_for, lead
):
    upload = SimpleUploadedFile("broken.dcm", samples.xa_bytes()[:-500])
    response = client_for(lead).post(url(vessel_project), {"files": [upload]}, format="multipart")
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued" and job["kind"] == "import"
    assert job["detail"] == {"phase": "importing", "done": 0, "total": 1, "stored": 0, "duplicates": 0, "rejected": 0}
    assert len(staged_files()) == 1 and Instance.objects.count() == 0  # nothing imported inside the request
    assert import_jobs_run_pending() == 1
    body = client_for(lead).get(f"{url(vessel_project)}{job['id']}/").json()
    assert body["status"] == "failed" and body["error"] == "no file in the batch could be stored"
    assert body["result"]["files"][0]["reason"] == "truncated"
    files = client_for(lead).get(f"{url(vessel_project)}{job['id']}/files/").json()
    assert files["files"] == [
        {
            "position": 0,
            "name": "broken.dcm",
            "outcome": "rejected",
            "reason": "truncated",
            "message": files["files"][0]["message"],
            "instance": None,
            "items_created": 0,
        }
    ]
    assert "truncated" in files["files"][0]["message"]
    assert staged_files() == [] and Instance.objects.count() == 0


def test_many_files_a_zip_and_folder_paths_in_one_upload(vessel_project, client_for, lead):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.dcm", samples.xa_bytes(seed=1))
        zf.writestr("b.dcm", samples.xa_bytes(seed=2))
    files = [
        SimpleUploadedFile("runs.zip", archive.getvalue()),
        SimpleUploadedFile("c.dcm", samples.xa_bytes(seed=3)),
        SimpleUploadedFile("d.dcm", samples.xa_bytes(seed=4)[:300]),
    ]
    paths = ["exam 1/runs.zip", "exam 1/left/c.dcm", "../../etc/d.dcm"]
    response = client_for(lead).post(url(vessel_project), {"files": files, "paths": paths}, format="multipart")
    assert response.status_code == 202
    job_id = response.json()["id"]
    import_jobs_run_pending()
    rows = client_for(lead).get(f"{url(vessel_project)}{job_id}/files/").json()["files"]
    assert [(r["name"], r["outcome"]) for r in rows] == [
        ("exam 1/runs.zip/a.dcm", "stored"),
        ("exam 1/runs.zip/b.dcm", "stored"),
        ("exam 1/left/c.dcm", "stored"),
        ("etc/d.dcm", "rejected"),  # a path never climbs out of the upload
    ]
    later = client_for(lead).get(f"{url(vessel_project)}{job_id}/files/?after=1").json()["files"]
    assert [r["position"] for r in later] == [2, 3]
    jobs = client_for(lead).get(url(vessel_project)).json()["results"]
    assert jobs[0]["result"]["summary"] == {"stored": 3, "duplicates": 0, "rejected": 1, "items_created": 3}
    assert jobs[0]["status"] == "succeeded" and jobs[0]["progress"] == 1.0
    assert jobs[0]["detail"]["done"] == jobs[0]["detail"]["total"] == 4
    bad = client_for(lead).get(f"{url(vessel_project)}{job_id}/files/?after=x")
    assert bad.status_code == 400 and "after" in bad.json()


def test_paths_must_match_the_files(vessel_project, client_for, lead):
    files = [SimpleUploadedFile("c.dcm", samples.xa_bytes(seed=3))]
    response = client_for(lead).post(url(vessel_project), {"files": files, "paths": ["a", "b"]}, format="multipart")
    assert response.status_code == 400 and "2 paths for 1 files" in str(response.json()["paths"])
    assert staged_files() == [] and not Job.objects.exists()


def test_refused_uploads_leave_nothing_staged(vessel_project, client_for, annotator, lead, settings):
    files = [SimpleUploadedFile("c.dcm", samples.xa_bytes(seed=3))]
    assert client_for(annotator).post(url(vessel_project), {"files": files}, format="multipart").status_code == 403
    anonymous = client_for().post(url(vessel_project), {"files": files}, format="multipart")
    assert anonymous.status_code in (401, 403)
    assert staged_files() == []
    settings.LUMEN_MAX_UPLOAD_BYTES = 10_000
    big = [SimpleUploadedFile("c.dcm", samples.xa_bytes(seed=3) + bytes(20_000))]
    response = client_for(lead).post(url(vessel_project), {"files": big}, format="multipart")
    assert response.status_code == 413 and "LUMEN_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert staged_files() == [] and not Job.objects.exists()


def test_an_interrupted_job_resumes_after_its_last_recorded_file(vessel_project, client_for, lead, monkeypatch):
    files = [SimpleUploadedFile(f"{n}.dcm", samples.xa_bytes(seed=n)) for n in (1, 2, 3)]
    job_id = client_for(lead).post(url(vessel_project), {"files": files}, format="multipart").json()["id"]
    original = imports.ingest_dicom
    calls = []

    def dies_on_the_second(project, config, source, limits, record=None):
        calls.append(source.name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the worker is killed between two files
        return original(project, config, source, limits, record=record)

    monkeypatch.setattr(imports, "ingest_dicom", dies_on_the_second)
    job = services.jobs.job_claim(kinds=(JobKind.IMPORT,))
    with pytest.raises(KeyboardInterrupt):
        imports.import_job_run(job=job)
    assert list(ImportFile.objects.filter(job=job).values_list("name", "outcome")) == [("1.dcm", "stored")]
    assert Instance.objects.count() == 1
    # The worker's heartbeat goes stale; the job is queued again and resumes with the files it has no row for.
    Job.objects.filter(pk=job_id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert services.jobs.jobs_recover_stale(stale_after=timedelta(minutes=5), max_attempts=3) == 1
    monkeypatch.setattr(imports, "ingest_dicom", original)
    assert import_jobs_run_pending() == 1
    job = Job.objects.get(pk=job_id)
    assert job.status == "succeeded" and job.attempts == 2
    assert job.result["summary"] == {"stored": 3, "duplicates": 0, "rejected": 0, "items_created": 3}
    assert [f["name"] for f in job.result["files"]] == ["1.dcm", "2.dcm", "3.dcm"]
    assert Instance.objects.count() == 3 and staged_files() == []


def test_upload_without_files_is_a_400_naming_the_field(vessel_project, client_for, lead):
    response = client_for(lead).post(url(vessel_project), {}, format="multipart")
    assert response.status_code == 400 and "files" in response.json()


def test_file_names_live_only_in_the_report_and_are_forgotten_after_the_retention(vessel_project, client_for, lead):
    name = "DOE_JANE MRN0001/2024-01-05 cath.dcm"
    ds = samples.dataset(series_description="Jane Doe LAO 30 / CRA 20")
    ds.StudyDescription = "Coronary angio, Dr. House, St. Example"
    ds.ProtocolName = "Doe RCA"
    upload = SimpleUploadedFile("cath.dcm", samples.to_bytes(ds))
    response = client_for(lead).post(url(vessel_project), {"files": [upload], "paths": [name]}, format="multipart")
    job_id = response.json()["id"]
    import_jobs_run_pending()
    files_url = f"{url(vessel_project)}{job_id}/files/"
    assert client_for(lead).get(files_url).json()["files"][0]["name"] == name  # the uploader's receipt
    instance = Instance.objects.select_related("series__study").get()
    assert instance.series_description == instance.series.description == "LAO 30 CRA 20"
    assert instance.series.study.description == "CORONARY ANGIO"
    stored = pydicom.dcmread(Path(settings.MEDIA_ROOT) / instance.file_path)
    assert (stored.SeriesDescription, stored.ProtocolName) == ("LAO 30 CRA 20", "RCA")

    def everything_but_the_report() -> str:
        excluded = (ImportFile, Job, PatientIdentity)
        models = [m for m in apps.get_app_config("annotation").get_models() if m not in excluded]
        return serializers.serialize("json", [row for model in models for row in model.objects.all()])

    rows = everything_but_the_report()
    for leak in ("DOE", "MRN0001", "cath.dcm", "House", "Example", "Jane Doe", "2024-01-05", "20240105"):
        assert leak not in rows, leak
    assert "MRN0001" in serializers.serialize("json", PatientIdentity.objects.all())  # the lead-only identity row

    assert imports.import_reports_forget_names(older_than=timedelta(days=7)) == 0  # still within the retention
    Job.objects.filter(pk=job_id).update(finished_at=timezone.now() - timedelta(days=8))
    assert imports.import_reports_forget_names(older_than=timedelta(days=7)) == 1
    assert imports.import_reports_forget_names(older_than=timedelta(days=7)) == 0  # once
    assert client_for(lead).get(files_url).json()["files"][0]["name"] == "file 1"
    job = Job.objects.get(pk=job_id)
    assert "cath" not in json.dumps([job.params, job.result]) and job.params["files"] == 1
    assert job.result["files"][0]["name"] == "file 1"


def test_too_many_files_is_a_bad_request_that_leaves_nothing_staged(vessel_project, client_for, lead, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    files = [SimpleUploadedFile(f"{n}.dcm", samples.xa_bytes(seed=n)) for n in (1, 2, 3)]
    response = client_for(lead).post(url(vessel_project), {"files": files}, format="multipart")
    assert response.status_code == 400
    assert response.json()["detail"] == "too many files: one upload takes at most 2 (LUMEN_MAX_UPLOAD_FILES)"
    assert staged_files() == [] and not Job.objects.exists()
