"""Submit labels: every submit adds a version to the history; concurrent edits conflict instead of overwriting."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from annotation.compiled import CompiledQuery, statement
from annotation.label_schemas import label_payload_validate
from annotation.models import AssignmentState, Draft, Item, Label, LabelSource
from annotation.selectors import current_label
from annotation.services.queue import queue_label_added


class LabelConflict(Exception):
    """The label changed since the client read it; `current` is the version now stored."""

    def __init__(self, current: Label | None, base_version: int | None) -> None:
        have = current.version if current else None
        super().__init__(f"label is at version {have}, but the edit was based on version {base_version}")
        self.current = current
        self.base_version = base_version


def _item_locked(item_id: int, author: User):
    mine = Label.objects.current().filter(item=OuterRef("pk"), author=author)
    return (
        Item.objects.select_for_update()
        .filter(pk=item_id)
        .annotate(
            current_id=Subquery(mine.values("pk")[:1]),
            current_version=Subquery(mine.values("version")[:1]),
            has_draft=Exists(Draft.objects.filter(item=OuterRef("pk"), author=author)),
        )
        .values_list("labellers", "required_labels", "excluded_at", "current_id", "current_version", "has_draft")
    )


# The author's open lease of the item ends as submitted (annotation.compiled.statement).
_SUBMIT_LEASE_SQL = """
UPDATE annotation_assignment SET state = %(submitted)s, finished_at = %(now)s, label_id = %(label)s
WHERE item_id = %(item)s AND annotator_id = %(author)s AND state = %(leased)s
"""

# The item row locked, with the author's current label (id, version) and whether they left a draft of it: what a
# submit reads first, compiled once per process (annotation.compiled).
_ITEM_LOCKED: CompiledQuery[tuple] = CompiledQuery(_item_locked)


def label_submit(
    *,
    item: Item,
    author: User,
    payload: Any,
    base_version: int | None,
    time_spent_ms: int | None = None,
    source: str = LabelSource.ANNOTATOR,
) -> Label:
    """Store `payload` as the next version of `author`'s label of `item`.

    `base_version` is the version the client edited (None for a first label). The current row is
    superseded with a conditional UPDATE, so of two concurrent edits of the same version one wins and
    the other gets LabelConflict; a unique constraint guards the first version the same way.
    The author's open lease of the item is closed as submitted, their draft deleted and the queue told
    (`queue_label_added`) in the same transaction.
    """
    label_payload_validate(item=item, payload=payload)
    try:
        with transaction.atomic():
            # The item row first, as a skip of it does: labels, leases and progress counts of an item change
            # one transaction at a time.
            # With the author's current label (id, version) and whether they left a draft of it, read in the same
            # round trip (both the author's own), and whether a lead has excluded the item (refreshed on `item`: the
            # progress counts ask). Rows of other people (skips, review requests) are read by later statements,
            # which see what committed while this one waited for the lock.
            ((labellers, required, item.excluded_at, current_id, current_version, has_draft),) = _ITEM_LOCKED.rows(
                item_id=item.pk, author=author
            )
            now = timezone.now()
            if current_version != base_version:
                raise LabelConflict(current_label(item, author), base_version)
            if current_id is not None:
                won = Label.objects.current().filter(pk=current_id).update(superseded_at=now)
                if won != 1:
                    raise LabelConflict(current_label(item, author), base_version)
            label = Label.objects.create(
                item=item,
                author=author,
                version=(base_version or 0) + 1,
                previous_id=current_id,
                source=source,
                payload=payload,
                time_spent_ms=time_spent_ms,
            )
            leased = statement(
                _SUBMIT_LEASE_SQL,
                {
                    "submitted": AssignmentState.SUBMITTED.value,
                    "leased": AssignmentState.LEASED.value,
                    "now": now,
                    "label": label.pk,
                    "item": item.pk,
                    "author": author.pk,
                },
            )
            if has_draft:
                Draft.objects.filter(item=item, author=author).delete()
            queue_label_added(
                item=item,
                author=author,
                label=label,
                leased=bool(leased),
                first=current_id is None,
                counts=(labellers, required),
            )
            return label
    except IntegrityError:
        raise LabelConflict(current_label(item, author), base_version) from None
