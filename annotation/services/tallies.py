"""Progress counts kept incrementally, so `next` and the project pages never count a whole project per request.

Three counters, each changed in the same transaction as the label, skip or lease that moves it:
- `Item.labellers`: annotators holding a current label of the item (a first label adds one; a new version of
  one's own label does not). The item wants labels while it is below `required_labels` and no lead excluded it
  (`annotation.services.items` moves the counters below when a lead excludes or includes items).
- `ProjectQueue.wanting_items`: the project's items that want labels.
- `WorkTally` per (project, annotator): current labels, items skipped and not labelled since, items still
  wanting labels that they labelled or skipped (`excused`), and hand-outs for the gold rate.

An annotator's items to do are `wanting_items - excused`. A tally that does not exist yet is counted once from
the rows by the first write that needs it (readers count without storing); `progress_recount` rebuilds all of
a project's counters from the rows (after a bulk load, or to check them).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Subquery, Value

from annotation.compiled import CompiledQuery, statement
from annotation.models import Assignment, AssignmentState, Item, Label, Project, ProjectQueue, WorkTally
from annotation.selectors import tally_count, wanting_count


def tally_bump(project_id: int, annotator_id: int, **deltas: int) -> None:
    """Add `deltas` to an annotator's tally, after the change they describe is written in this transaction
    (once per transaction and annotator, with every delta of the change).

    A tally that does not exist yet is counted from the rows instead, which already include the change. When a
    concurrent transaction creates it first, its count could not see this uncommitted change: add the deltas.
    """
    deltas = {name: value for name, value in sorted(deltas.items()) if value}
    if not deltas:
        return
    if _tally_add(project_id, annotator_id, deltas):
        return
    try:
        with transaction.atomic():
            WorkTally.objects.create(
                project_id=project_id, annotator_id=annotator_id, **tally_count(project_id, annotator_id)
            )
    except IntegrityError:
        _tally_add(project_id, annotator_id, deltas)


_TALLY_FIELDS = frozenset({"done", "skipped", "excused", "handouts", "gold_handouts"})


def _tally_add(project_id: int, annotator_id: int, deltas: dict[str, int]) -> int:
    """Add `deltas` to the tally row in one statement (one text per set of counters); return whether it exists."""
    unknown = set(deltas) - _TALLY_FIELDS
    if unknown:
        raise ValueError(f"no such tally counter: {', '.join(sorted(unknown))}")
    assignments = ", ".join(f"{name} = {name} + %s" for name in deltas)
    return statement(
        f"UPDATE annotation_worktally SET {assignments} WHERE project_id = %s AND annotator_id = %s",
        [*deltas.values(), project_id, annotator_id],
    )


def wanting_bump(project_id: int, delta: int) -> None:
    """Add delta to the project's wanting items (always an UPDATE of the queue row, so it takes that row's lock)."""
    statement(
        "UPDATE annotation_projectqueue SET wanting_items = wanting_items + %s WHERE project_id = %s",
        [delta, project_id],
    )


def wanting_init(queue: ProjectQueue) -> None:
    """Count the wanting items of a queue row locked by the caller if it has never been counted."""
    if queue.wanting_items is None:
        queue.wanting_items = wanting_count(queue.pk)
        ProjectQueue.objects.filter(pk=queue.pk).update(wanting_items=queue.wanting_items)


def _skippers(item_id: int):
    return (
        Assignment.objects.filter(item_id=item_id, state=AssignmentState.SKIPPED)
        .order_by()
        .annotate(skipped=Value(True))
        .values_list("annotator_id", "skipped")
    )


def _skippers_and_authors(item_id: int):
    authors = Label.objects.current().filter(item_id=item_id).order_by().annotate(skipped=Value(False))
    return _skippers(item_id).union(authors.values_list("author_id", "skipped"), all=True)


# (person, skipped) rows of an item, compiled once per process (annotation.compiled): each first label reads them.
_SKIPPERS: CompiledQuery[tuple[int, bool]] = CompiledQuery(_skippers)
_SKIPPERS_AND_AUTHORS: CompiledQuery[tuple[int, bool]] = CompiledQuery(_skippers_and_authors)


def tally_label_added(*, item: Item, author_id: int, labellers: int, required: int) -> int:
    """Account for the author's first label of the item; return its labellers now.

    The caller holds the item's row lock and read `labellers`, `required` and `item.excluded_at` under it (an
    excluded item wants no labels, before or after this one). Tallies are updated in annotator id order, so two
    labels closing two items at once never wait for each other's tally rows.
    """
    statement("UPDATE annotation_item SET labellers = labellers + 1 WHERE id = %s", [item.pk])
    labellers += 1
    item.labellers = labellers
    wanted = item.excluded_at is None
    was_open, is_open = wanted and labellers - 1 < required, wanted and labellers < required
    # Who skipped the item, and (when this label completes it) who holds a label of it, in one round trip.
    rows = (_SKIPPERS_AND_AUTHORS if was_open and not is_open else _SKIPPERS).rows(item_id=item.pk)
    skippers = {person for person, skipped in rows if skipped}
    had_skip = author_id in skippers
    deltas: dict[int, dict[str, int]] = {author_id: {"done": 1, "skipped": -1 if had_skip else 0}}
    if was_open and is_open and not had_skip:
        deltas[author_id]["excused"] = 1  # theirs no more, though the item still wants someone else's label
    elif was_open and not is_open:
        deltas[author_id]["excused"] = -1 if had_skip else 0
        others = {person for person, _ in rows}
        for other in others - {author_id}:
            deltas[other] = {"excused": -1}
    for annotator_id in sorted(deltas):
        tally_bump(item.project_id, annotator_id, **deltas[annotator_id])
    if was_open and not is_open:
        # Last: every label that completes an item in the project takes this one row's lock, held to the commit.
        wanting_bump(item.project_id, -1)
    return labellers


def tally_skipped(*, item: Item, annotator_id: int, handout: bool) -> None:
    """Account for a skip just stored (`handout`: a skip without a lease, its own assignment row): a first skip
    of an item they have not labelled takes it off their list.

    One bump per transaction and annotator: a tally counted from the rows by the first bump already includes
    the whole change.
    """
    deltas = {"handouts": 1 if handout else 0}
    labelled = Label.objects.current().filter(item=item, author_id=annotator_id).exists()
    skips = Assignment.objects.filter(item=item, annotator_id=annotator_id, state=AssignmentState.SKIPPED).count()
    if not labelled and skips == 1:
        labellers, required, excluded_at = (
            Item.objects.filter(pk=item.pk).values_list("labellers", "required_labels", "excluded_at").get()
        )
        deltas.update(skipped=1, excused=1 if labellers < required and not excluded_at else 0)
    tally_bump(item.project_id, annotator_id, **deltas)


def tally_handout(*, project_id: int, annotator_id: int, gold: bool) -> None:
    tally_bump(project_id, annotator_id, handouts=1, gold_handouts=1 if gold else 0)


def progress_recount(*, project: Project) -> dict[str, Any]:
    """Rebuild the project's counters from the rows; return what changed (items relabelled, tallies rebuilt)."""
    current = (
        Label.objects.current()
        .filter(item=OuterRef("pk"))
        .values("item")
        .annotate(n=Count("author", distinct=True))
        .values("n")
    )
    with transaction.atomic():
        queue = ProjectQueue.objects.select_for_update().filter(pk=project.pk).first()
        any_label = Exists(Label.objects.current().filter(item=OuterRef("pk")))
        items = Item.objects.filter(project=project)
        fixed = items.filter(any_label).exclude(labellers=Subquery(current)).update(labellers=Subquery(current))
        fixed += items.filter(labellers__gt=0).exclude(any_label).update(labellers=0)
        if queue is not None:
            queue.wanting_items = wanting_count(project.pk)
            ProjectQueue.objects.filter(pk=queue.pk).update(wanting_items=queue.wanting_items)
        rebuilt = 0
        for tally in WorkTally.objects.select_for_update().filter(project=project):
            counted = tally_count(project.pk, tally.annotator_id)
            if any(getattr(tally, name) != value for name, value in counted.items()):
                WorkTally.objects.filter(pk=tally.pk).update(**counted)
                rebuilt += 1
    return {"items_fixed": fixed, "tallies_fixed": rebuilt, "wanting_items": queue.wanting_items if queue else None}
