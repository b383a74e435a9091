"""The annotator's workspace beside the queue: autosave drafts, enter ICA references."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from annotation.models import Draft, IcaReference, Item, ItemKind
from annotation.selectors import current_label
from annotation.services.errors import WorkspaceInputError
from annotation.services.labels import LabelConflict

ICA_VESSELS = ("lm", "lad", "lcx", "rca")


def draft_save(*, item: Item, author: User, payload: Any, base_version: int | None, time_spent_ms: int) -> Draft:
    """Store the annotator's unsubmitted work on the item (one draft per item and author, last write wins).

    The draft must edit the author's current label version; a stale one raises LabelConflict.
    """
    if not isinstance(payload, dict):
        raise WorkspaceInputError("payload", "a draft must be a JSON object")
    size = len(json.dumps(payload, separators=(",", ":")))
    if size > settings.LUMEN_MAX_DRAFT_BYTES:
        raise WorkspaceInputError("payload", f"draft is {size} bytes, more than {settings.LUMEN_MAX_DRAFT_BYTES}")
    with transaction.atomic():
        current = current_label(item, author)
        if (current.version if current else None) != base_version:
            # A late autosave of work already submitted (or edited elsewhere) must not come back as a draft.
            raise LabelConflict(current, base_version)
        draft, _ = Draft.objects.update_or_create(
            item=item,
            author=author,
            defaults={"payload": payload, "base_version": base_version, "time_spent_ms": time_spent_ms},
        )
    return draft


def draft_discard(*, item: Item, author: User) -> None:
    """Delete the annotator's draft of the item, if any."""
    Draft.objects.filter(item=item, author=author).delete()


def ica_reference_add(*, item: Item, entered_by: User, stenosis: dict[str, Any]) -> IcaReference:
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
