"""The slot invariant: one module changes `Item.open_slots`, the database checks it, random replays match a recount."""

from __future__ import annotations

import ast
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from annotation.models import Assignment, AssignmentKind, AssignmentState, Item, Label, ReviewItem
from annotation.services import assignment_release, item_next, item_skip, label_submit, leases_expire, project_update
from annotation.services.adjudication import adjudication_settle, review_request_create
from annotation.services.errors import WorkspaceInputError
from annotation.services.items import items_exclude, items_include
from annotation.services.queue import queue_hold_items, queue_release_items, queue_set_order
from annotation.services.slots import slots_recount
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.annotation.test_queue import annotators

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
OWNER = ROOT / "annotation" / "services" / "slots.py"
SQL_WRITE = re.compile(r"update\s+annotation_item\s+set[^;]*\b(open_slots|required_labels)\b", re.I)


def recount() -> dict[int, tuple[int, int]]:
    """Return, per item, (open slots, labellers) as the stored labels and leases say they must be (an item a lead
    excluded has no open slot)."""
    labellers = dict(
        Label.objects.filter(superseded_at__isnull=True)
        .values("item")
        .annotate(n=Count("author", distinct=True))
        .values_list("item", "n")
    )
    leases = dict(
        Assignment.objects.filter(state=AssignmentState.LEASED, kind=AssignmentKind.QUEUE)
        .values("item")
        .annotate(n=Count("pk"))
        .values_list("item", "n")
    )
    return {
        pk: (0 if excluded_at else max(required - labellers.get(pk, 0) - leases.get(pk, 0), 0), labellers.get(pk, 0))
        for pk, required, excluded_at in Item.objects.values_list("pk", "required_labels", "excluded_at")
    }


def stored() -> dict[int, tuple[int, int]]:
    return {
        pk: (slots, labellers) for pk, slots, labellers in Item.objects.values_list("pk", "open_slots", "labellers")
    }


@pytest.fixture
def overlap_runs(vessel_project):
    """Six imported runs, half of them wanting two blind labels."""
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=i)) for i in range(6)])
    items = list(vessel_project.items.order_by("pk"))
    Item.objects.filter(pk__in=[i.pk for i in items[::2]]).update(required_labels=2, open_slots=2)
    queue_set_order(project=vessel_project, item_ids=[i.pk for i in items], strategy="manual")
    return items


class Replay:
    """Random operations by three annotators and a lead, as the product offers them."""

    def __init__(self, project, lead, people, seed: int) -> None:
        self.project, self.lead, self.people = project, lead, people
        self.rng = random.Random(seed)
        self.done: list[str] = []

    def lease(self) -> None:
        item_next(project=self.project, annotator=self.rng.choice(self.people))

    def _open_lease(self) -> Assignment | None:
        leases = list(Assignment.objects.filter(state=AssignmentState.LEASED).order_by("pk"))
        return self.rng.choice(leases) if leases else None

    def submit(self) -> None:
        lease = self._open_lease()
        if lease is None:
            return
        mine = Label.objects.filter(item=lease.item, author=lease.annotator, superseded_at__isnull=True).first()
        label_submit(
            item=lease.item,
            author=lease.annotator,
            payload={"vessel": self.rng.choice(["LCA", "RCA"])},
            base_version=mine.version if mine else None,
        )

    def skip(self) -> None:
        lease = self._open_lease()
        if lease is not None:
            item_skip(item=lease.item, annotator=lease.annotator, reason="too dark")

    def release(self) -> None:
        lease = self._open_lease()
        if lease is not None:
            assignment_release(item=lease.item, annotator=lease.annotator)

    def expire(self) -> None:
        lease = self._open_lease()
        if lease is not None:
            Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
            leases_expire()

    def late_submit(self) -> None:
        """A label without a lease: submitted after the lease expired, or straight from the item's page."""
        item = self.rng.choice(list(Item.objects.filter(project=self.project)))
        author = self.rng.choice(self.people)
        mine = Label.objects.filter(item=item, author=author, superseded_at__isnull=True).first()
        label_submit(item=item, author=author, payload={"vessel": "LCA"}, base_version=mine.version if mine else None)

    def adjudicate(self) -> None:
        item = self.rng.choice(list(Item.objects.filter(project=self.project)))
        adjudication_settle(item=item, lead=self.lead, payload={"vessel": "RCA"}, reason="lead")

    def review(self) -> None:
        author = self.rng.choice(self.people)
        try:
            review_request_create(project=self.project, annotator=author, requested_by=self.lead, limit=2)
        except WorkspaceInputError:
            return  # nothing of theirs to review yet
        lease = item_next(project=self.project, annotator=author)
        if lease is not None and lease.kind == AssignmentKind.REVIEW:
            current = Label.objects.get(item=lease.item, author=author, superseded_at__isnull=True)
            label_submit(item=lease.item, author=author, payload={"vessel": "RCA"}, base_version=current.version)

    def hold_and_release(self) -> None:
        item = self.rng.choice(list(Item.objects.filter(project=self.project)))
        queue_hold_items(project=self.project, item_ids=[item.pk])
        queue_release_items(project=self.project, item_ids=[item.pk])

    def exclude(self) -> None:
        item = self.rng.choice(list(Item.objects.filter(project=self.project)))
        items_exclude(project=self.project, by=self.lead, item_ids=[item.pk])

    def include(self) -> None:
        excluded = list(
            Item.objects.filter(project=self.project, excluded_at__isnull=False).values_list("pk", flat=True)
        )
        if excluded:
            items_include(project=self.project, by=self.lead, item_ids=[self.rng.choice(excluded)])

    def step(self) -> str:
        name = self.rng.choices(
            [
                "lease",
                "submit",
                "skip",
                "release",
                "expire",
                "late_submit",
                "adjudicate",
                "review",
                "hold_and_release",
                "exclude",
                "include",
            ],
            weights=[6, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        )[0]
        getattr(self, name)()
        self.done.append(name)
        return name


@pytest.mark.parametrize("seed", range(4))
def test_random_operations_keep_open_slots_equal_to_a_recount(overlap_runs, vessel_project, lead, seed):
    replay = Replay(vessel_project, lead, annotators(vessel_project, 3), seed)
    for step in range(60):
        name = replay.step()
        assert stored() == recount(), f"after step {step} ({name}) of {replay.done}"
    assert {"lease", "submit", "adjudicate"} <= set(replay.done)


def test_an_adjudicating_leads_first_label_leaves_the_blind_annotators_slot(overlap_runs, vessel_project, lead):
    first, second = annotators(vessel_project, 2)
    lease = item_next(project=vessel_project, annotator=first)
    item = Item.objects.get(pk=lease.item_id)
    assert item.required_labels == 2
    label_submit(item=item, author=first, payload={"vessel": "LCA"}, base_version=None)
    adjudication_settle(item=item, lead=lead, payload={"vessel": "RCA"}, reason="lead")
    item.refresh_from_db()
    assert (item.open_slots, item.labellers, item.required_labels) == (1, 2, 3)
    assert item_next(project=vessel_project, annotator=second).item_id == item.pk  # still due its second label
    label_submit(item=item, author=second, payload={"vessel": "RCA"}, base_version=None)
    item.refresh_from_db()
    assert (item.open_slots, item.labellers) == (0, 3) and not item.queue_entries.exists()


def test_an_adjudication_of_a_finished_item_opens_nothing(overlap_runs, vessel_project, lead, annotator):
    lease = item_next(project=vessel_project, annotator=annotator)
    Item.objects.filter(pk=lease.item_id).update(required_labels=1, open_slots=0)
    label_submit(item=lease.item, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    adjudication_settle(item=lease.item, lead=lead, payload={"vessel": "RCA"}, reason="disagreement")
    item = Item.objects.get(pk=lease.item_id)
    assert (item.open_slots, item.labellers, item.required_labels) == (0, 2, 1)
    assert stored()[item.pk] == recount()[item.pk]


def test_the_database_refuses_more_open_slots_than_unlabelled_places(overlap_runs):
    item = overlap_runs[1]  # wants one label
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.filter(pk=item.pk).update(open_slots=2)
    Item.objects.filter(pk=item.pk).update(open_slots=0)  # fewer is allowed: a lease holds the place


def test_a_recount_repairs_drifted_slots(overlap_runs, annotator):
    lease = item_next(project=overlap_runs[0].project, annotator=annotator)
    Item.objects.filter(pk=lease.item_id).update(open_slots=0)
    assert slots_recount(item_ids=[i.pk for i in overlap_runs]) == 1
    assert stored() == recount()


def _writes_slots(node: ast.AST) -> bool:
    """Return whether the node is a call writing `open_slots` or `required_labels`, or SQL that sets them."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("update", "create"):
        return any(k.arg in ("open_slots", "required_labels") for k in node.keywords)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(SQL_WRITE.search(node.value))
    return False


def test_only_the_slots_module_writes_open_slots():
    writers = []
    for folder in ("annotation", "frontend", "webapp", "learning", "gpu_workers"):
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts or path == OWNER:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            writers += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(tree) if _writes_slots(n)]
    assert writers == []
    assert any(_writes_slots(n) for n in ast.walk(ast.parse(OWNER.read_text())))  # the check sees the owner's


def test_a_review_lease_takes_no_slot(overlap_runs, vessel_project, lead, annotator):
    lease = item_next(project=vessel_project, annotator=annotator)
    label_submit(item=lease.item, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    review_request_create(project=vessel_project, annotator=annotator, requested_by=lead, limit=1)
    before = stored()
    review = item_next(project=vessel_project, annotator=annotator)
    assert review.kind == AssignmentKind.REVIEW and stored() == before == recount()
    label_submit(item=review.item, author=annotator, payload={"vessel": "RCA"}, base_version=1)
    assert stored() == before and ReviewItem.objects.get().resolved_at is not None
