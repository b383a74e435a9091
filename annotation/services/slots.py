"""Open slots: how many more annotators may take an item. Every change of `Item.open_slots` is made here.

The invariant, for every item:

    open_slots == max(required_labels - labellers - live queue leases, 0)    (0 while a lead excludes it)

where `labellers` counts the annotators holding a current label of the item and a queue lease is an open
`Assignment` of kind "queue" (gold and review leases take no slot). An excluded item (`Item.excluded_at`) keeps
its `required_labels`, so including it again opens exactly the places it had. A database check constraint backs
the part a row can see (`open_slots` never exceeds `required_labels - labellers` unless it is 0), `slots_recount`
restores the whole of it from the stored rows, and `tests/annotation/test_slots.py` replays random sequences of
every operation against that recount.

Changes are relative (`F() ± n`, conditional `UPDATE … WHERE open_slots > 0`), never read-then-write, so they are
safe without locks; the callers' transactions (the label's, the lease's) make each change atomic with the rows it
accounts for. Every write goes through `_write`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, Count, F, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Least

from annotation.models import Assignment, AssignmentKind, AssignmentState, Item, Label

# Fields an item is created with when it is held (burned-in text waiting for a lead): it wants no labels yet.
HELD = {"required_labels": 0, "open_slots": 0}


def _write(items: Any, **fields: int | Combinable) -> int:
    """Update `open_slots` and `required_labels` of the items in one statement; return how many rows changed."""
    return items.update(**fields)


def slots_take(*, item_id: int) -> bool:
    """Take one open slot of the item if one is left (a first label without a lease); return whether it did."""
    return bool(_write(Item.objects.filter(pk=item_id, open_slots__gt=0), open_slots=F("open_slots") - 1))


def slots_give_back(leases: Iterable[tuple[int, str]]) -> None:
    """Give back one slot per finished queue lease; `leases` are (item id, kind) of leases just closed."""
    per_item = Counter(item_id for item_id, kind in leases if kind == AssignmentKind.QUEUE)
    for item_id, count in per_item.items():
        _write(Item.objects.filter(pk=item_id), open_slots=F("open_slots") + count)


def slots_widen(*, item_ids: Sequence[int], labels: int) -> None:
    """Let single-label items take `labels` annotators (the overlap share): the extra places open at once."""
    _write(
        Item.objects.filter(pk__in=item_ids, required_labels=1),
        required_labels=labels,
        open_slots=F("open_slots") + labels - 1,
    )


def slots_add_place(*, item_id: int) -> None:
    """Give an adjudicating lead's first label a place of its own on an item that still wants labels.

    Without it the lead's label would take the slot a blind annotator is still due (an overlap item's second
    label), and the item would leave the queue unlabelled by them. The caller holds the item's row lock.
    """
    _write(
        Item.objects.filter(pk=item_id, required_labels__gt=F("labellers")),
        required_labels=F("required_labels") + 1,
    )


def slots_hold(*, item_ids: Sequence[int]) -> None:
    """Take the items out of labelling: they want no labels and have no slots (their leases are ended first)."""
    _write(Item.objects.filter(pk__in=item_ids), **HELD)


def slots_unhold(*, labelled: Sequence[int], fresh: Sequence[int]) -> None:
    """Give held items back: labelled ones count as done with the labels they have, unlabelled ones want one
    (its place opens unless a lead excluded the item)."""
    _write(Item.objects.filter(pk__in=labelled), required_labels=F("labellers"), open_slots=0)
    opens = Case(When(excluded_at__isnull=True, then=Value(1)), default=Value(0))
    _write(Item.objects.filter(pk__in=fresh), required_labels=1, open_slots=opens)


def slots_close(*, item_ids: Sequence[int]) -> None:
    """Close every open place of items a lead excluded (their leases are ended first); `required_labels` stays."""
    _write(Item.objects.filter(pk__in=item_ids, excluded_at__isnull=False), open_slots=0)


def slots_require(*, item_id: int, labels: int) -> None:
    """Set how many annotators an unlabelled item wants (a re-drawn overlap share); `slots_recount` follows.

    Its open slots are capped at the new number at once, so the row stays within the constraint until then.
    """
    _write(Item.objects.filter(pk=item_id), required_labels=labels, open_slots=Least(F("open_slots"), labels))


def slots_recount(*, item_ids: Sequence[int]) -> int:
    """Recompute the items' open slots from the labels and leases stored (locks the item rows first); return how
    many were wrong."""
    with transaction.atomic():
        locked = list(
            Item.objects.select_for_update().filter(pk__in=item_ids).order_by("pk").values_list("pk", flat=True)
        )
        labellers = dict(
            Label.objects.current()
            .filter(item_id__in=locked)
            .values("item")
            .annotate(n=Count("author", distinct=True))
            .values_list("item", "n")
        )
        leases = dict(
            Assignment.objects.filter(item_id__in=locked, state=AssignmentState.LEASED, kind=AssignmentKind.QUEUE)
            .values("item")
            .annotate(n=Count("pk"))
            .values_list("item", "n")
        )
        fixed = 0
        rows = Item.objects.filter(pk__in=locked).values_list("pk", "required_labels", "excluded_at")
        for pk, required, excluded_at in rows:
            slots = 0 if excluded_at else max(required - labellers.get(pk, 0) - leases.get(pk, 0), 0)
            fixed += _write(Item.objects.filter(pk=pk).exclude(open_slots=slots), open_slots=slots)
    return fixed


# The queue pick and the slot it takes, in one statement (the hot path of `next`: no ORM compile, one round trip).
# The subquery's row lock (PostgreSQL: FOR UPDATE OF the item, SKIP LOCKED) keeps concurrent callers on
# different items, and the locked row is re-checked before the update, so the slot it counted is still there;
# SQLite serialises writers instead and has no row locks.
_TAKE_NEXT_SQL = """
UPDATE annotation_item SET open_slots = open_slots - 1
WHERE open_slots > 0 AND id = (
    SELECT q.item_id FROM annotation_queueentry q JOIN annotation_item i ON i.id = q.item_id
    WHERE q.project_id = %(project)s
      AND q.generation = (SELECT generation FROM annotation_projectqueue WHERE project_id = %(project)s)
      AND i.open_slots > 0 AND NOT i.is_gold
      AND NOT EXISTS (SELECT 1 FROM annotation_label l WHERE l.item_id = q.item_id AND l.author_id = %(annotator)s)
      AND NOT EXISTS (
          SELECT 1 FROM annotation_assignment a
          WHERE a.item_id = q.item_id AND a.annotator_id = %(annotator)s AND a.state IN (%(skipped)s, %(leased)s)
      )
    ORDER BY q.priority DESC, q.item_id
    LIMIT 1{lock}
)
RETURNING id
"""


def slots_take_next(*, project_id: int, annotator_id: int) -> int | None:
    """Take a slot of the best-ranked open item the annotator has not labelled, skipped or leased; return its id.

    None when nothing is open for them (or, on PostgreSQL, every open item is being leased right now). The caller
    creates the queue lease in the same transaction.
    """
    lock = " FOR UPDATE OF i SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    params: dict[str, int | str] = {
        "project": project_id,
        "annotator": annotator_id,
        "skipped": AssignmentState.SKIPPED.value,
        "leased": AssignmentState.LEASED.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_NEXT_SQL.format(lock=lock), params)
        taken = cursor.fetchone()
    return None if taken is None else taken[0]
