"""Uploading through the API: many files or a zip; a truncated file alone answers 400 with the reason."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.models import Instance
from tests import dicom_samples as samples

pytestmark = pytest.mark.django_db


def url(project):
    return reverse("api:import-list", args=[project.slug])


def test_truncated_upload_answers_400_with_the_reason(vessel_project, client_for, lead):
    upload = SimpleUploadedFile("broken.dcm", samples.xa_bytes()[:-500])
    response = client_for(lead).post(url(vessel_project), {"files": [upload]}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert body["files"][0]["reason"] == "truncated"
    assert "broken.dcm" in body["detail"] and "truncated" in body["detail"]
    assert Instance.objects.count() == 0


def test_many_files_and_a_zip_in_one_upload(vessel_project, client_for, lead):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.dcm", samples.xa_bytes(seed=1))
        zf.writestr("b.dcm", samples.xa_bytes(seed=2))
    files = [
        SimpleUploadedFile("runs.zip", archive.getvalue()),
        SimpleUploadedFile("c.dcm", samples.xa_bytes(seed=3)),
        SimpleUploadedFile("d.dcm", samples.xa_bytes(seed=4)[:300]),
    ]
    response = client_for(lead).post(url(vessel_project), {"files": files}, format="multipart")
    assert response.status_code == 201
    assert response.json()["summary"] == {"stored": 3, "duplicates": 0, "rejected": 1, "items_created": 3}
    jobs = client_for(lead).get(url(vessel_project)).json()["results"]
    assert jobs[0]["result"]["summary"]["stored"] == 3 and jobs[0]["status"] == "succeeded"


def test_upload_without_files_is_a_400_naming_the_field(vessel_project, client_for, lead):
    response = client_for(lead).post(url(vessel_project), {}, format="multipart")
    assert response.status_code == 400 and "files" in response.json()
