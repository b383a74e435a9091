"""The Label Studio round trip against a real Label Studio: label-studio from PyPI in its own virtualenv
(benchmarks/label_studio_server.py), started on a free loopback port once for the session with a SQLite database
of its own (about 30 s). If it cannot start, these tests fail; they are never skipped.

For each task: push the items with the champion's predictions, annotate them in Label Studio through the SDK as
two people whose emails are the project members', pull, and every label equals what was drawn (classes, all 34
SPECT scores, OCT masks pixel for pixel) with its author and source; pulling again adds nothing, a changed
annotation adds one version, and the JSON file exported here imports into a fresh project to the same labels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from label_studio_sdk import LabelStudio
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from annotation.credentials import credential_decrypt
from annotation.ingest.sources import ArchiveLimits, sources_from_path
from annotation.models import (
    BurnedInReview,
    ExternalServer,
    Item,
    Label,
    LabelSource,
    ModelStatus,
    ModelVersion,
    Prediction,
    Project,
    Role,
    Split,
)
from annotation.services import import_run, membership_set, project_create
from benchmarks.al_http import free_port
from benchmarks.label_studio_server import Account, LabelStudioServer
from learning.masks import mask_decode, mask_encode
from tests import dicom_samples as samples
from tests.cohort_projects import spect_cohort, vessel_cohort
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LEAD = "lead@lumen.example"
FIRST = "annotator.one@lumen.example"
SECOND = "annotator.two@lumen.example"
STRANGER = "someone.else@lumen.example"
ROWS, COLUMNS = 37, 53  # the OCT pullback's frames: odd sizes, not square


# ---------------------------------------------------------------------------------------------------- the server
@dataclass(frozen=True)
class Studio:
    url: str
    accounts: dict[str, Account]

    def sdk(self, email: str, legacy: bool = False) -> LabelStudio:
        account = self.accounts[email]
        return LabelStudio(base_url=self.url, api_key=account.legacy_token if legacy else account.personal_token)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> Iterator[Studio]:
    """A real Label Studio for the session; a failure to install or start it fails the test that asked."""
    server = None
    try:
        server = LabelStudioServer(tmp_path_factory.mktemp("label-studio"))
        server.start(timeout=300)
        studio = Studio(server.url, server.accounts([LEAD, FIRST, SECOND, STRANGER]))
    except Exception as error:  # whatever went wrong, the test must fail and say it
        if server is not None:
            server.stop()
        pytest.fail(f"the Label Studio server could not be started: {type(error).__name__}: {error}")
    yield studio
    server.stop()


@dataclass(frozen=True)
class People:
    lead: Any
    first: Any
    second: Any
    outsider: Any  # a Lumen user, not a member of the projects

    def by_email(self, email: str):
        return {LEAD: self.lead, FIRST: self.first, SECOND: self.second}[email]


@pytest.fixture
def people(db) -> People:
    return People(
        lead=UserFactory(username="ls-lead", email=LEAD),
        first=UserFactory(username="ls-first", email="Annotator.One@lumen.example"),  # case differs from Label Studio
        second=UserFactory(username="ls-second", email=SECOND),
        outsider=UserFactory(username="ls-outsider", email=STRANGER),
    )


def _project(task_type: str, people: People, slug: str) -> Project:
    project = project_create(
        slug=slug, name=f"LS {slug}", task_type=task_type, creator=people.lead, settings={"overlap_rate": 0.0}
    )
    for person in (people.first, people.second):
        membership_set(project=project, user=person, role=Role.ANNOTATOR)
    return project


def _import_folder(project: Project, folder: Path) -> list[Item]:
    report = import_run(project=project, sources=sources_from_path(folder, limits=ArchiveLimits(members=100)))
    assert report.summary()["rejected"] == 0, report.as_json()
    return list(project.items.order_by("pk"))


def _url(name: str, project: Project) -> str:
    return reverse(f"api:label-studio{name}", args=[project.slug])


def _connect(api, project: Project, studio: Studio) -> None:
    answer = api.put(_url("", project), {"url": studio.url, "token": studio.accounts[LEAD].personal_token})
    assert answer.status_code == 200, answer.content


# ---------------------------------------------------------------------------------------------------- the tasks
@dataclass(frozen=True)
class Drawn:
    """An annotation made in Label Studio and the label payload it must become."""

    email: str
    item: int  # index into the project's items
    result: list[dict]
    payload: dict
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # OCT: the mask drawn, to compare pixel for pixel


@dataclass(frozen=True)
class Case:
    load: Callable[[Project, Path], list[Item]]
    drawn: list[Drawn]
    changed: Drawn  # a new result for drawn[0]
    family: str
    output: Callable[[int], dict]  # the champion's prediction of the item at an index
    prefilled: Callable[[int], list[dict]]  # what that prediction must pre-fill in Label Studio
    identity: Callable[[Item], Any]  # what an item shows, to find it in another project


def _choice(name: str, to: str, value: str) -> dict:
    return {"from_name": name, "to_name": to, "type": "choices", "value": {"choices": [value]}}


def _text(name: str, to: str, text: str) -> dict:
    return {"from_name": name, "to_name": to, "type": "textarea", "value": {"text": [text]}}


def _vessels(project: Project, folder: Path) -> list[Item]:
    vessel_cohort(project, folder, patients=3, runs=1)
    return list(project.items.order_by("pk"))


VESSEL = Case(
    load=_vessels,
    drawn=[
        Drawn(FIRST, 0, [_choice("vessel", "image", "LCA")], {"vessel": "LCA"}),
        Drawn(FIRST, 1, [_choice("vessel", "image", "RCA")], {"vessel": "RCA"}),
        Drawn(
            FIRST,
            2,
            [_choice("vessel", "image", "unusable"), _text("unusable_reason", "image", "catheter only, no contrast")],
            {"vessel": "unusable", "unusable_reason": "catheter only, no contrast"},
        ),
        Drawn(SECOND, 0, [_choice("vessel", "image", "neither")], {"vessel": "neither"}),
    ],
    changed=Drawn(FIRST, 0, [_choice("vessel", "image", "RCA")], {"vessel": "RCA"}),
    family="contrast_logreg",
    output=lambda i: {"vessel": ("RCA", "LCA", "neither")[i], "probabilities": {}, "family": "contrast_logreg"},
    prefilled=lambda i: [_choice("vessel", "image", ("RCA", "LCA", "neither")[i])],
    identity=lambda item: item.instance.sop_instance_uid,
)


def _pullback(project: Project, folder: Path) -> list[Item]:
    """One 3-frame IVOCT pullback of 37 x 53 frames."""
    ds = samples.dataset(modality="IVOCT", sop_class=samples.IVOCT_CLASS, frames=3, size=8, patient_id="MRN-LS-7")
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.PixelData = np.random.default_rng(5).integers(0, 256, (3, ROWS, COLUMNS), dtype=np.uint8).tobytes()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pullback.dcm").write_bytes(samples.to_bytes(ds))
    return _import_folder(project, folder)


def _mask(*cells: tuple[slice | int, slice | int]) -> np.ndarray:
    mask = np.zeros((ROWS, COLUMNS), dtype=bool)
    for rows, columns in cells:
        mask[rows, columns] = True
    return mask


def _brush(mask: np.ndarray) -> dict:
    """A brush stroke as Label Studio stores it, encoded by the SDK's mask2rle (not by Lumen's code)."""
    value = {"format": "rle", "rle": mask2rle(mask.astype(np.uint8) * 255), "brushlabels": ["calcium"]}
    return {"from_name": "calcium", "to_name": "image", "type": "brushlabels", "value": value} | {
        "original_width": COLUMNS,
        "original_height": ROWS,
        "image_rotation": 0,
    }


EDGES = _mask((0, slice(0, 9)), (slice(None), -1), (-1, 0), (slice(12, 20), slice(3, 41)))  # touches all four sides
RING = _mask((slice(5, 30), slice(10, 12)), (slice(5, 7), slice(10, 45)))
SPECK = _mask((-1, -1))  # the bottom-right pixel alone
BLOB = np.random.default_rng(9).random((ROWS, COLUMNS)) > 0.7  # ragged edges everywhere
LEFT, RIGHT = _mask((slice(None), slice(0, 3))), _mask((slice(30, 37), slice(40, 53)))
EMPTY = _mask()

OCT = Case(
    load=_pullback,
    drawn=[
        Drawn(FIRST, 0, [_brush(EDGES)], {"excluded": False, "mask": mask_encode(EDGES)}, {"drawn": EDGES}),
        Drawn(
            FIRST,
            1,
            [_brush(LEFT), _brush(RIGHT)],  # two strokes: the label is their union
            {"excluded": False, "mask": mask_encode(LEFT | RIGHT)},
            {"drawn": LEFT | RIGHT},
        ),
        Drawn(
            FIRST,
            2,
            [_choice("excluded", "image", "in guide catheter")],
            {"excluded": True, "exclusion_reason": "in_guide_catheter"},
        ),
        Drawn(SECOND, 0, [], {"excluded": False, "mask": mask_encode(EMPTY)}, {"drawn": EMPTY}),  # no calcium
        Drawn(SECOND, 1, [_brush(SPECK)], {"excluded": False, "mask": mask_encode(SPECK)}, {"drawn": SPECK}),
        Drawn(SECOND, 2, [_brush(BLOB)], {"excluded": False, "mask": mask_encode(BLOB)}, {"drawn": BLOB}),
    ],
    changed=Drawn(FIRST, 0, [_brush(RING)], {"excluded": False, "mask": mask_encode(RING)}, {"drawn": RING}),
    family="unet",
    output=lambda i: {"mask": mask_encode((RING, BLOB, EDGES)[i]), "calcium_fraction": 0.1, "family": "unet"},
    prefilled=lambda i: [_brush((RING, BLOB, EDGES)[i])],
    identity=lambda item: (item.instance.sop_instance_uid, item.frame_index),
)


def _scores(seed: int) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    return {phase: [int(v) for v in rng.integers(0, 5, 17)] for phase in ("stress", "rest")}


def _numbers(scores: dict[str, list[int]]) -> list[dict]:
    return [
        {"from_name": f"{phase}_{n + 1}", "to_name": phase, "type": "number", "value": {"number": score}}
        for phase in ("stress", "rest")
        for n, score in enumerate(scores[phase])
    ]


def _spect(seed: int, overrides: dict | None = None) -> tuple[list[dict], dict]:
    scores = _scores(seed)
    result = _numbers(scores)
    for territory, override in (overrides or {}).items():
        result.append(_choice(f"flag_{territory}", "stress", "abnormal" if override["abnormal"] else "normal"))
        result.append(_text(f"flag_{territory}_reason", "stress", override["reason"]))
    return result, {**scores, "flag_overrides": overrides or {}}


def _spect_drawn(email: str, index: int, seed: int, overrides: dict | None = None) -> Drawn:
    result, payload = _spect(seed, overrides)
    return Drawn(email, index, result, payload)


FLAGS = ({"LAD": True, "RCA": False, "LCX": True}, {"LAD": False, "RCA": False, "LCX": False}, {})


def _patients(project: Project, folder: Path) -> list[Item]:
    spect_cohort(project, folder, patients=3)
    return list(project.items.order_by("pk"))


SPECT = Case(
    load=_patients,
    drawn=[
        _spect_drawn(FIRST, 0, 1, {"LCX": {"abnormal": True, "reason": "transient ischaemic dilation"}}),
        _spect_drawn(FIRST, 1, 2),
        _spect_drawn(FIRST, 2, 3),
        _spect_drawn(SECOND, 1, 4, {"RCA": {"abnormal": False, "reason": "diaphragmatic attenuation"}}),
    ],
    changed=_spect_drawn(FIRST, 0, 5),
    family="polar_cnn",
    output=lambda i: {"abnormal": FLAGS[i], "probabilities": {}, "patient": 0.5, "family": "polar_cnn"},
    prefilled=lambda i: [
        _choice(f"flag_{t}", "stress", "abnormal" if flag else "normal") for t, flag in FLAGS[i].items()
    ],
    identity=lambda item: (item.spect.rest.sha256, item.spect.stress.sha256),
)

CASES = {"vessel_type": VESSEL, "oct_calcium": OCT, "spect_territory": SPECT}


def _oct_pixels(result: list[dict]) -> np.ndarray:
    """The union of brush strokes as Label Studio (and the SDK's converters) read them: the alpha channel."""
    mask = np.zeros((ROWS, COLUMNS), dtype=bool)
    for region in result:
        mask |= decode_rle(region["value"]["rle"]).reshape(ROWS, COLUMNS, 4)[:, :, 3] > 0
    return mask


def _champion(project: Project, items: list[Item], case: Case) -> None:
    """A champion that predicted every item; the last item is a held-out test item (never shown a prediction)."""
    version = ModelVersion.objects.create(
        project=project, number=1, family=case.family, status=ModelStatus.CHAMPION, promoted_at=timezone.now()
    )
    for index, item in enumerate(items):
        Prediction.objects.create(item=item, model_version=version, output=case.output(index), confidence=0.75)
    Item.objects.filter(pk=items[-1].pk).update(split=Split.TEST)


# ---------------------------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("task_type", list(CASES))
def test_labels_made_in_label_studio_come_back_exactly(task_type, label_studio, people, client_for, tmp_path):
    case = CASES[task_type]
    project = _project(task_type, people, f"ls-{task_type.replace('_', '-')}")
    items = case.load(project, tmp_path / "data")
    assert len(items) == 3
    _champion(project, items, case)
    api = client_for(people.lead)
    _connect(api, project, label_studio)

    # Push: every item once, with the champion's prediction except on the held-out test item.
    pushed = api.post(_url("-push", project)).json()
    assert (pushed["project_created"], pushed["tasks_added"], pushed["predictions_added"]) == (True, 3, 2), pushed
    again = api.post(_url("-push", project)).json()
    assert (again["project_created"], again["tasks_added"], again["tasks_present"]) == (False, 0, 3), again
    assert again["predictions_added"] == 0 and again["remote_project"] == pushed["remote_project"]
    remote = pushed["remote_project"]
    tasks = {t.data["lumen_item"]: t for t in label_studio.sdk(LEAD).tasks.list(project=remote, fields="all")}
    assert set(tasks) == {item.pk for item in items}  # no duplicates
    for index, item in enumerate(items):
        there = tasks[item.pk]
        assert there.data["title"] == item.title
        identity = item.patient.identity  # item ids, titles as annotators see them, links: no patient identifier
        said = json.dumps(there.data)
        assert all(value not in said for value in (identity.original_patient_id, identity.original_name) if value)
        if index == len(items) - 1:
            assert not there.predictions
            continue
        (prediction,) = there.predictions
        assert prediction.model_version == f"lumen-v1-{case.family}"
        assert prediction.result == case.prefilled(index)

    # The links Label Studio holds serve the rendered image to a browser that is not logged in.
    task = project.task
    for name, path in task.label_studio_images(items[0]).items():
        image = Client().get(urlsplit(tasks[items[0].pk].data[name]).path)
        assert image.status_code == 200 and image.content == path.read_bytes()
        assert image["Access-Control-Allow-Origin"] == "*"

    # Annotate in Label Studio as two people (the second with a legacy token), a stranger, and one skip.
    made = []
    for number, drawn in enumerate(case.drawn):
        sdk = label_studio.sdk(drawn.email, legacy=drawn.email == SECOND)
        lead_time = 10.0 + number
        made.append(sdk.annotations.create(tasks[items[drawn.item].pk].id, result=drawn.result, lead_time=lead_time))
    label_studio.sdk(STRANGER).annotations.create(tasks[items[0].pk].id, result=case.drawn[0].result)
    label_studio.sdk(LEAD).annotations.create(tasks[items[1].pk].id, result=[], was_cancelled=True)

    pulled = api.post(_url("-pull", project)).json()
    assert (pulled["created"], pulled["unchanged"]) == (len(case.drawn), 0), pulled
    refused = {(r["email"], r["item"]): r["reason"] for r in pulled["rejected"]}
    assert refused == {
        (STRANGER, items[0].pk): f"completed by {STRANGER}, who is not a member of this project",
        (LEAD, items[1].pk): "skipped in Label Studio: a cancelled annotation holds no label",
    }
    for number, drawn in enumerate(case.drawn):
        label = Label.objects.get(item=items[drawn.item], author=people.by_email(drawn.email))
        assert label.payload == drawn.payload
        assert (label.source, label.version, label.time_spent_ms) == (
            LabelSource.LABEL_STUDIO,
            1,
            10_000 + 1000 * number,
        )
        if "drawn" in drawn.masks:  # pixel for pixel, as the SDK decodes what was drawn
            stored = mask_decode(label.payload["mask"])
            assert np.array_equal(stored, drawn.masks["drawn"]) and np.array_equal(stored, _oct_pixels(drawn.result))
    assert Label.objects.filter(item__project=project).count() == len(case.drawn)

    # Pulling again changes nothing.
    twice = api.post(_url("-pull", project)).json()
    assert (twice["created"], twice["unchanged"], len(twice["rejected"])) == (0, len(case.drawn), 2), twice
    assert Label.objects.filter(item__project=project).count() == len(case.drawn)

    # One annotation changed in Label Studio: one new version, the old one kept.
    label_studio.sdk(FIRST).annotations.update(made[0].id, result=case.changed.result)
    changed = api.post(_url("-pull", project)).json()
    assert (changed["created"], changed["unchanged"]) == (1, len(case.drawn) - 1), changed
    history = Label.objects.filter(item=items[0], author=people.first).order_by("version")
    assert [(label.version, label.superseded_at is None) for label in history] == [(1, False), (2, True)]
    assert history[1].payload == case.changed.payload and history[1].previous_id == history[0].pk
    assert history[0].payload == case.drawn[0].payload

    # The JSON file exported here imports into a fresh project with the same files: the same labels, by the same people.
    exported = api.get(_url("-export", project))
    assert exported.status_code == 200 and "attachment" in exported["Content-Disposition"]
    rows = json.loads(exported.content)
    assert len(rows) == 3 and sum(len(row["annotations"]) for row in rows) == len(case.drawn)
    fresh = _project(task_type, people, f"ls-fresh-{task_type.replace('_', '-')}")
    fresh_items = _import_folder(fresh, tmp_path / "data")
    upload = SimpleUploadedFile("tasks.json", exported.content, content_type="application/json")
    imported = api.post(_url("-import", fresh), {"file": upload}, format="multipart").json()
    assert (imported["created"], imported["unchanged"], imported["rejected"]) == (len(case.drawn), 0, []), imported

    def labels_of(of: list[Item]) -> dict:
        current = Label.objects.current().filter(item__in=of).select_related("item__instance", "item__spect__rest")
        current = current.select_related("item__spect__stress", "author")
        return {(case.identity(label.item), label.author.pk): label.payload for label in current}

    assert labels_of(fresh_items) == labels_of(items)
    assert set(Label.objects.filter(item__project=fresh).values_list("source", flat=True)) == {LabelSource.LABEL_STUDIO}
    upload = SimpleUploadedFile("tasks.json", exported.content, content_type="application/json")
    twice = api.post(_url("-import", fresh), {"file": upload}, format="multipart").json()
    assert (twice["created"], twice["unchanged"]) == (0, len(case.drawn))


# ---------------------------------------------------------------------------------------------------- the edges
def test_the_server_is_checked_before_it_is_stored_and_the_token_never_read_back(label_studio, people, client_for):
    project = _project("vessel_type", people, "ls-connect")
    api = client_for(people.lead)
    closed = f"http://127.0.0.1:{free_port()}"
    answer = api.put(_url("", project), {"url": closed, "token": label_studio.accounts[LEAD].personal_token})
    assert answer.status_code == 400 and answer.json()["field"] == "url"
    assert "could not be reached" in answer.json()["detail"]
    answer = api.put(_url("", project), {"url": label_studio.url, "token": "not-a-token"})
    assert answer.status_code == 400 and answer.json()["field"] == "token"
    assert "refused" in answer.json()["detail"]
    assert api.put(_url("", project), {"url": "ftp://example.org"}).json()["field"] == "url"
    assert api.put(_url("", project), {"url": label_studio.url}).json()["field"] == "token"  # none stored yet
    assert not ExternalServer.objects.filter(project=project).exists()

    token = label_studio.accounts[LEAD].legacy_token
    saved = api.put(_url("", project), {"url": label_studio.url + "/", "token": token})
    assert saved.status_code == 200
    body = saved.json()
    assert body == {
        "url": label_studio.url,
        "username": LEAD,
        "has_token": True,
        "remote_project": None,
        "remote_url": "",
    }
    assert token not in saved.content.decode() and token not in api.get(_url("", project)).content.decode()
    server = ExternalServer.objects.get(project=project)
    assert token not in server.secret and credential_decrypt(server.secret) == token  # encrypted at rest
    assert api.put(_url("", project), {"url": label_studio.url}).status_code == 200  # an empty token keeps it
    assert api.delete(_url("", project)).status_code == 204
    assert api.get(_url("", project)).json()["url"] == ""


def test_only_the_projects_leads_reach_label_studio(people, client_for):
    project = _project("vessel_type", people, "ls-roles")
    routes = [("get", ""), ("put", ""), ("delete", ""), ("post", "-push"), ("post", "-pull"), ("get", "-export")]
    routes.append(("post", "-import"))
    for method, name in routes:
        assert getattr(client_for(people.first), method)(_url(name, project)).status_code == 403, name
        assert getattr(client_for(people.outsider), method)(_url(name, project)).status_code == 404, name


def test_push_and_pull_say_what_is_missing_first(people, client_for, label_studio):
    project = _project("vessel_type", people, "ls-not-ready")
    api = client_for(people.lead)
    answer = api.post(_url("-push", project))
    assert answer.status_code == 409 and "no Label Studio server" in answer.json()["detail"]
    _connect(api, project, label_studio)
    answer = api.post(_url("-pull", project))
    assert answer.status_code == 409 and "push the items first" in answer.json()["detail"]


def test_excluded_and_held_items_never_reach_label_studio(label_studio, people, client_for, tmp_path, monkeypatch):
    project = _project("vessel_type", people, "ls-held")
    items = _vessels(project, tmp_path / "data")
    Item.objects.filter(pk=items[1].pk).update(excluded_at=timezone.now())
    items[2].instance.burned_in_review = BurnedInReview.PENDING
    items[2].instance.save(update_fields=["burned_in_review"])
    api = client_for(people.lead)
    _connect(api, project, label_studio)
    pushed = api.post(_url("-push", project)).json()
    assert (pushed["tasks_added"], pushed["items_left_out"]) == (1, 2), pushed
    (task,) = label_studio.sdk(LEAD).tasks.list(project=pushed["remote_project"])
    assert task.data["lumen_item"] == items[0].pk
    link = urlsplit(task.data["image"]).path
    assert Client().get(link).status_code == 200
    from annotation.services import label_studio as service

    monkeypatch.setattr(service, "LINK_RENEW_DAYS", -1)  # every link is due: a push renews it
    renewed = api.post(_url("-push", project)).json()
    assert (renewed["tasks_added"], renewed["links_renewed"]) == (0, 1), renewed
    (task,) = label_studio.sdk(LEAD).tasks.list(project=pushed["remote_project"])
    assert Client().get(urlsplit(task.data["image"]).path).status_code == 200  # signed again (same second: same link)
    assert Client().get(link[:-3] + ("A" if link[-3] != "A" else "B") + link[-2:]).status_code == 404  # tampered
    Item.objects.filter(pk=items[0].pk).update(excluded_at=timezone.now())  # a lead excludes it: the link stops
    assert Client().get(link).status_code == 404
    rows = json.loads(api.get(_url("-export", project)).content)
    assert rows == []


def test_an_old_link_has_expired(people, tmp_path, monkeypatch):
    import time

    from django.core import signing

    from annotation.services.label_studio import LINK_DAYS, image_link

    project = _project("vessel_type", people, "ls-old-link")
    item = _vessels(project, tmp_path / "data")[0]
    fresh = image_link(item_id=item.pk, key="image", base_url="http://testserver/")
    then = int(time.time()) - (LINK_DAYS + 1) * 86400
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda signer: signing.b62_encode(then))
    old = image_link(item_id=item.pk, key="image", base_url="http://testserver/")
    monkeypatch.undo()
    assert Client().get(urlsplit(fresh).path).status_code == 200
    answer = Client().get(urlsplit(old).path)
    assert answer.status_code == 410 and b"push the project" in answer.content


def test_an_imported_file_is_read_with_a_reason_for_everything_it_cannot_use(people, client_for, tmp_path):
    project = _project("vessel_type", people, "ls-file")
    items = _vessels(project, tmp_path / "data")
    api = client_for(people.lead)

    def send(content: bytes):
        upload = SimpleUploadedFile("tasks.json", content, content_type="application/json")
        return api.post(_url("-import", project), {"file": upload}, format="multipart")

    assert send(b"{not json").json()["field"] == "file"
    assert send(b'{"tasks": []}').json()["field"] == "file"
    vessel = [_choice("vessel", "image", "LCA")]
    tasks = [
        {"data": {"lumen_item": items[0].pk}, "annotations": [{"result": vessel, "completed_by": {"email": FIRST}}]},
        {"data": {"lumen_item": 10**9}, "annotations": [{"result": vessel, "completed_by": {"email": FIRST}}]},
        {"data": {"lumen_item": items[1].pk}, "annotations": [{"result": vessel, "completed_by": 4}]},
        {"data": {"lumen_item": items[1].pk}, "annotations": [{"result": vessel}]},
        {
            "data": {"lumen_item": items[1].pk},
            "annotations": [{"result": [_choice("vessel", "image", "LAD")], "completed_by": {"email": SECOND}}],
        },
        {
            "data": {"lumen_item": items[2].pk},
            "annotations": [
                {"id": 1, "result": vessel, "completed_by": {"email": SECOND}, "updated_at": "2026-01-01T00:00:00Z"},
                {"id": 2, "result": [], "completed_by": {"email": SECOND}, "updated_at": "2026-01-02T00:00:00Z"},
            ],
        },
    ]
    report = send(json.dumps(tasks).encode()).json()
    assert report["created"] == 1 and Label.objects.get(item=items[0]).author == people.first
    reasons = [(r["item"], r["reason"]) for r in report["rejected"]]
    assert reasons == [
        (None, "the task names no item of this project that Label Studio may show (lumen_item 1000000000)"),
        (
            items[1].pk,
            "no author Lumen can match: completed by Label Studio user 4, whose email only its Label Studio server "
            "knows: set the server",
        ),
        (items[1].pk, "no author Lumen can match: the annotation names no author"),
        (items[2].pk, "superseded by the same author's newer annotation 2"),
        (items[1].pk, reasons[4][1]),
        (items[2].pk, "vessel: no vessel chosen"),
    ]
    assert reasons[4][1].startswith("does not fit the project's labeling config: Region 0: Invalid value for control")


@pytest.mark.skipif(not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"), reason="PostgreSQL's lock")
def test_a_push_while_another_runs_is_refused(people, client_for):
    import psycopg
    from django.db import connection

    from annotation.credentials import credential_encrypt
    from annotation.services.label_studio import LOCK_CLASS

    project = _project("vessel_type", people, "ls-busy")
    ExternalServer.objects.create(
        project=project, kind="label_studio", url="http://127.0.0.1:9", secret=credential_encrypt("a-legacy-token")
    )
    db = connection.settings_dict
    other = psycopg.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"], port=db["PORT"] or 5432
    )
    try:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, project.pk])  # another push holds it
        answer = client_for(people.lead).post(_url("-push", project))
        assert answer.status_code == 409 and "is running" in answer.json()["detail"]
    finally:
        other.close()
