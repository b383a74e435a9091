"""The hostile corpus (tests/hostile_corpus.py) uploaded through the API in one request: every file and archive
member gets its exact outcome, nothing answers 5xx, nothing is half-stored, and the job finishes."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.models import ImportFile, Instance, Item, Job
from annotation.services.imports import import_jobs_run_pending
from tests.hostile_corpus import corpus

pytestmark = pytest.mark.django_db


def test_every_hostile_file_gets_its_exact_outcome_and_nothing_is_half_stored(
    vessel_project, client_for, lead, isolated_media
):
    cases = corpus()
    assert len(cases) >= 40
    uploads = [SimpleUploadedFile(case.name, case.data) for case in cases]
    answer = client_for(lead).post(
        reverse("api:import-list", args=[vessel_project.slug]), {"files": uploads}, format="multipart"
    )
    assert answer.status_code == 202, answer.content[:500]
    assert import_jobs_run_pending() == 1
    job = Job.objects.get(pk=answer.json()["id"])
    assert job.status == "succeeded", job.error

    rows = {row.name: row for row in ImportFile.objects.filter(job=job)}
    expected = {name: outcome for case in cases for name, outcome in case.expected.items()}
    got = {name: (row.outcome, row.reason) for name, row in rows.items()}
    wrong = {
        name: (got.get(name), want, rows[name].message if name in rows else None)
        for name, want in expected.items()
        if got.get(name) != want
    }
    assert not wrong, "\n".join(f"{name}: got {g}, want {w}: {m}" for name, (g, w, m) in wrong.items())
    assert set(got) == set(expected)  # no line missing, none unexpected
    assert all(rows[name].message for name in rows if rows[name].outcome != "stored")  # every refusal says why
    for lie in ("rle-under-native.dcm", "rle-lie.dcm"):  # the header and the data disagree: said as such
        assert "contradicts itself" in rows[lie].message, rows[lie].message

    # Whole or nothing: each stored row has its instance, file and items; nothing else was written.
    stored = [row for row in rows.values() if row.outcome == "stored"]
    assert Instance.objects.count() == len(stored) == Item.objects.count()
    for row in stored:
        assert (Path(isolated_media) / row.instance.file_path).is_file()
    media = Path(isolated_media)
    dicom = {p for p in media.rglob("*.dcm") if "imports" not in p.parts}
    assert dicom == {media / row.instance.file_path for row in stored}
    assert not list((media / "imports").rglob("*")) if (media / "imports").exists() else True
