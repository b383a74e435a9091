"""The annotator's workspace: lease the next item, skip or release it, autosave drafts, enter ICA references."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation import selectors
from annotation.models import Assignment, AssignmentState, Draft, IcaReference, Item, ItemKind, Label, Project
from annotation.project_settings import parse_settings
from annotation.services.labels import LabelConflict

ICA_VESSELS = ("lm", "lad", "lcx", "rca")


class WorkspaceInputError(ValueError):
    """A workspace request carries a bad value; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _expire_stale_leases(project: Project, now) -> None:
    Assignment.objects.filter(item__project=project, state=AssignmentState.LEASED, expires_at__lte=now).update(
        state=AssignmentState.EXPIRED, finished_at=now
    )


def item_next(*, project: Project, annotator: AbstractBaseUser) -> Assignment | None:
    """Lease the next item to the annotator, or return None when nothing is left for them.

    An open lease of theirs is resumed (and extended) first. Otherwise the highest-priority open item
    is locked with SELECT … FOR UPDATE SKIP LOCKED, so concurrent callers never lease the same item
    beyond its required number of labels.
    """
    now = timezone.now()
    lease = timedelta(minutes=parse_settings(project.task_type, project.settings).lease_minutes)
    with transaction.atomic():
        _expire_stale_leases(project, now)
        mine = (
            Assignment.objects.select_for_update()
            .filter(item__project=project, annotator=annotator, state=AssignmentState.LEASED)
            .order_by("leased_at")
            .first()
        )
        if mine is not None:
            mine.expires_at = now + lease
            mine.save(update_fields=["expires_at"])
            return mine
        item = (
            selectors.items_to_lease(project, annotator, now)
            .order_by("-priority", "id")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if item is None:
            return None
        return Assignment.objects.create(item=item, annotator=annotator, expires_at=now + lease)


def item_skip(*, item: Item, annotator: AbstractBaseUser, reason: str) -> Assignment:
    """Skip the item with a reason; it will not be offered to this annotator again."""
    reason = (reason or "").strip()
    if not reason:
        raise WorkspaceInputError("reason", "a skip needs a reason")
    if len(reason) > 500:
        raise WorkspaceInputError("reason", "must be at most 500 characters")
    now = timezone.now()
    with transaction.atomic():
        lease = (
            Assignment.objects.select_for_update()
            .filter(item=item, annotator=annotator, state=AssignmentState.LEASED)
            .first()
        )
        if lease is None:
            return Assignment.objects.create(
                item=item,
                annotator=annotator,
                state=AssignmentState.SKIPPED,
                expires_at=now,
                finished_at=now,
                skip_reason=reason,
            )
        lease.state, lease.finished_at, lease.skip_reason = AssignmentState.SKIPPED, now, reason
        lease.save(update_fields=["state", "finished_at", "skip_reason"])
        return lease


def assignment_release(*, item: Item, annotator: AbstractBaseUser) -> int:
    """Give the item back to the queue unlabelled; return how many leases were released (0 or 1)."""
    return Assignment.objects.filter(item=item, annotator=annotator, state=AssignmentState.LEASED).update(
        state=AssignmentState.RELEASED, finished_at=timezone.now()
    )


def draft_save(
    *, item: Item, author: AbstractBaseUser, payload: Any, base_version: int | None, time_spent_ms: int
) -> Draft:
    """Store the annotator's unsubmitted work on the item (one draft per item and author, last write wins).

    The draft must edit the author's current label version; a stale one raises LabelConflict.
    """
    if not isinstance(payload, dict):
        raise WorkspaceInputError("payload", "a draft must be a JSON object")
    size = len(json.dumps(payload, separators=(",", ":")))
    if size > settings.LUMEN_MAX_DRAFT_BYTES:
        raise WorkspaceInputError("payload", f"draft is {size} bytes, more than {settings.LUMEN_MAX_DRAFT_BYTES}")
    with transaction.atomic():
        current = Label.objects.filter(item=item, author=author, superseded_at__isnull=True).first()
        if (current.version if current else None) != base_version:
            # A late autosave of work already submitted (or edited elsewhere) must not come back as a draft.
            raise LabelConflict(current, base_version)
        draft, _ = Draft.objects.update_or_create(
            item=item,
            author=author,
            defaults={"payload": payload, "base_version": base_version, "time_spent_ms": time_spent_ms},
        )
    return draft


def draft_discard(*, item: Item, author: AbstractBaseUser) -> None:
    """Delete the annotator's draft of the item, if any."""
    Draft.objects.filter(item=item, author=author).delete()


def ica_reference_add(*, item: Item, entered_by: AbstractBaseUser, stenosis: dict[str, Any]) -> IcaReference:
    """Record a lead's angiography reference (% stenosis of LM, LAD, LCX, RCA) for a SPECT item; append-only."""
    if item.kind != ItemKind.SPECT_PAIR:
        raise WorkspaceInputError("item", "ICA references belong to SPECT items")
    unknown = sorted(set(stenosis) - {f"stenosis_{v}" for v in ICA_VESSELS})
    if unknown:
        raise WorkspaceInputError(unknown[0], "unknown field")
    values: dict[str, float | None] = {}
    for vessel in ICA_VESSELS:
        name = f"stenosis_{vessel}"
        value = stenosis.get(name)
        if value in (None, ""):
            values[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise WorkspaceInputError(name, "must be a percentage between 0 and 100, or empty")
        values[name] = float(value)
    if all(v is None for v in values.values()):
        raise WorkspaceInputError("stenosis_lm", "enter the stenosis of at least one vessel")
    return IcaReference.objects.create(item=item, entered_by=entered_by, **values)
