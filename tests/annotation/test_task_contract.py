"""One contract every registered labelling task passes: ingest → label → train tiny → score → queue → agreement →
export. The three built-in tasks run it, and so does a fourth task defined only in the tests (tests/image_task.py),
added through LUMEN_TASKS without touching a production module."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from annotation.ingest.sources import SourceFile
from annotation.label_schemas import LabelPayloadError, label_payload_validate
from annotation.models import Item, ModelVersion, Prediction, QueueEntry, Role
from annotation.quality.agreement import project_agreement
from annotation.services import import_run, item_next, label_submit, membership_set, project_create
from annotation.services.exports import export_archive, export_jobs_run_pending, export_request
from annotation.services.learning import scoring_request, training_request
from annotation.services.queue import queue_rerank
from annotation.tasks import UnknownTaskType, label_task, label_tasks
from tests import image_task
from tests.cohort_projects import oct_cohort, spect_cohort, vessel_cohort
from tests.factories import UserFactory
from tests.jobs import run_next_job

pytestmark = pytest.mark.django_db
IMAGE_TASK = "tests.image_task.ImageClass"


@dataclass(frozen=True)
class Case:
    """How to feed one task: import a small cohort (returning {item: truth}) and write a true label."""

    load: Callable[[Any, Path], dict]
    payload: Callable[[Any], dict]
    family: str
    hparams: dict = field(default_factory=dict)
    bad_payload: dict = field(default_factory=lambda: {"nonsense": True})


def _oct_payload(truth) -> dict:
    from learning.masks import mask_encode

    _, mask, quality = truth
    if quality != "ok":
        return {"excluded": True, "exclusion_reason": "in_guide_catheter"}
    return {"mask": mask_encode(mask)}


def _images(project, folder: Path) -> dict:
    sources, truth = [], {}
    for patient in range(6):
        for shot in range(2):
            kind = "bright" if (patient + shot) % 2 else "dark"
            data = image_task.png_bytes(200 if kind == "bright" else 50, seed=10 * patient + shot)
            name = f"P{patient}-{shot}.png"
            sources.append(SourceFile(name=name, size=len(data), reader=lambda d=data: d))
            truth[name] = kind
    report = import_run(project=project, sources=sources)
    assert report.summary()["stored"] == len(sources), report.as_json()
    return {item: truth[item.title] for item in project.items.all()}


CASES = {
    "vessel_type": Case(
        load=lambda project, folder: vessel_cohort(project, folder, patients=6, runs=2),
        payload=lambda truth: {"vessel": truth.vessel},
        family="metadata_logreg",
    ),
    "oct_calcium": Case(
        load=lambda project, folder: oct_cohort(project, folder, pullbacks=3, frames=4),
        payload=_oct_payload,
        family="unet",
        hparams={"epochs": 1, "size": 16, "base": 2, "depth": 2, "min_steps": 0, "min_validation": 1},
    ),
    "spect_territory": Case(
        load=lambda project, folder: spect_cohort(project, folder, patients=8),
        payload=lambda truth: {"stress": list(truth.stress_scores), "rest": list(truth.rest_scores)},
        family="polar_cnn",
        hparams={"epochs": 1, "size": 16, "width": 2},
    ),
    "image_class": Case(
        load=_images, payload=lambda truth: {"class": truth}, family="tiny_linear", hparams={"epochs": 3}
    ),
}


@pytest.fixture
def image_task_registered(settings):
    """List the test-only task in LUMEN_TASKS: the registry also makes its learning side known to the workers."""
    from learning import tasks as learning_tasks

    settings.LUMEN_TASKS = [*settings.LUMEN_TASKS, IMAGE_TASK]
    yield
    learning_tasks.TASKS.pop("image_class", None)


@pytest.fixture(params=list(CASES))
def task_name(request) -> str:
    if request.param == "image_class":
        request.getfixturevalue("image_task_registered")
    return request.param


def test_every_registered_task_has_a_contract_case(image_task_registered):
    assert set(label_tasks()) == set(CASES)


def test_an_unregistered_task_is_refused_by_name(lead):
    with pytest.raises(UnknownTaskType, match="unknown task type 'image_class'; known: vessel_type, oct_calcium"):
        project_create(slug="nope", name="nope", task_type="image_class", creator=lead)


def test_the_task_contract(task_name, tmp_path, executor, lead, client_for, client):
    case = CASES[task_name]
    task = label_task(task_name)
    project = project_create(
        slug=f"contract-{task_name.replace('_', '-')}",
        name=task.title,
        task_type=task_name,
        creator=lead,
        settings={"overlap_rate": 0.0, "test_fraction": 0.25, "validation_fraction": 0.2},
    )
    annotators = [UserFactory(username=f"{task_name}-annotator-{i}") for i in range(2)]
    for person in annotators:
        membership_set(project=project, user=person, role=Role.ANNOTATOR)

    # Ingest: files become items, and every item joins the queue.
    truth = case.load(project, tmp_path / "data")
    items = sorted(truth, key=lambda item: item.pk)
    assert len(items) >= 6 and Item.objects.filter(project=project).count() == len(items)
    assert QueueEntry.objects.filter(project=project).count() == len(items)

    # Label: the schema refuses a wrong payload naming the field; the queue hands items out until most are done.
    with pytest.raises(LabelPayloadError):
        label_payload_validate(item=items[0], payload=case.bad_payload)
    first, second = annotators
    target = len(items) - 2
    labelled = []
    while len(labelled) < target and (lease := item_next(project=project, annotator=first)) is not None:
        item = next(i for i in items if i.pk == lease.item_id)
        label_submit(item=item, author=first, payload=case.payload(truth[item]), base_version=None)
        labelled.append(item)
    assert len(labelled) == target
    for item in labelled[:3]:  # a second opinion on a few, for agreement
        label_submit(item=item, author=second, payload=case.payload(truth[item]), base_version=None)

    # Train tiny, then score what is still unlabelled with the new version.
    training_request(project=project, by=lead, family=case.family, hparams=case.hparams)
    job = run_next_job(executor)
    assert job.status == "succeeded", job.error
    version = ModelVersion.objects.get(project=project)
    assert version.status in ("candidate", "rejected") and version.decision_rule
    if not project.jobs.filter(kind="score", status="queued").exists():
        scoring_request(version=version)
    scored = run_next_job(executor)
    assert scored.status == "succeeded", scored.error
    unlabelled = {i.pk for i in items if i not in labelled}
    assert set(Prediction.objects.filter(model_version=version).values_list("item_id", flat=True)) == unlabelled

    # Queue: the version's scores order what is left, and the next hand-out is one of those items.
    queue_rerank(project=project, version=version)
    assert set(QueueEntry.objects.filter(project=project).values_list("item_id", flat=True)) == unlabelled
    assert item_next(project=project, annotator=second).item_id in unlabelled | {i.pk for i in labelled[3:]}

    # Agreement: the task's statistic, with the platform's per-day series.
    agreement = project_agreement(project)
    assert {"overall", "pairs", "over_time"} <= set(agreement)
    assert sum(day["pairs"] for day in agreement["over_time"]) == 3

    # Export: the lead downloads the dashboard tables as CSV.
    api = client_for(lead)
    for table in ("agreement_pairs", "model_versions", "annotators"):
        response = api.get(reverse("api:quality-export", args=[project.slug, table]))
        assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    versions_csv = api.get(reverse("api:quality-export", args=[project.slug, "model_versions"])).content.decode()
    assert version.family in versions_csv

    # Dataset export: the archive holds every current label with the task's own columns; the manifest lists its files.
    job = export_request(project=project, by=lead)
    assert export_jobs_run_pending() == 1
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    with zipfile.ZipFile(export_archive(job)) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
        listed = {entry["path"] for entry in json.loads(archive.read("manifest.json"))["files"]}
        assert listed == set(archive.namelist()) - {"manifest.json"}
    exported = {(int(row["item_id"]), row["author"]) for row in rows}
    assert len(rows) == len(exported)
    assert exported == {(i.pk, first.username) for i in labelled} | {(i.pk, second.username) for i in labelled[:3]}
    assert set(task.exporter().columns) <= set(rows[0])

    # Item browser: the lead sees each item's labels with the classes the task gives them (none for masks).
    rows = api.get(reverse("api:project-items", args=[project.slug]), {"limit": 500}).json()["results"]
    assert {row["id"] for row in rows} == {i.pk for i in items}
    classes = {c for row in rows for label in row["labels"] for c in label["classes"]}
    assert classes <= set(task.class_names) and bool(classes) == bool(task.class_names)

    # Pages: the project page and the workspace carry the task's own words and browser tool.
    client.force_login(lead)
    page = client.get(f"/projects/{project.slug}/").content.decode()
    assert task.title in page
    workspace = client.get(f"/projects/{project.slug}/label/").content.decode()
    assert task.tool_script in workspace


def test_a_plugin_cannot_take_a_learning_task_name_already_used():
    from learning.tasks import VesselTask, register_task

    register_task(VesselTask)  # the same class again: nothing happens
    imposter = type("Imposter", (image_task.ImageClassSpec,), {"name": "vessel_type"})
    with pytest.raises(ValueError, match="already registered as 'vessel_type'"):
        register_task(imposter)
