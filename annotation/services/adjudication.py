"""Leads settle labels: adjudicate an item, or send an annotator's recent work back for review.

An adjudication is stored as a new label version with source "adjudication" (so the final label is what
training and evaluation use, `annotation.training_data.final_targets`), plus an `Adjudication` row recording
the labels and prediction that were weighed. Nothing is overwritten: every earlier label stays in history.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from annotation.models import (
    Adjudication,
    AdjudicationReason,
    Item,
    Label,
    LabelSource,
    Project,
    ReviewItem,
    ReviewRequest,
)
from annotation.selectors import current_label, promoted_predictions
from annotation.services.errors import WorkspaceInputError
from annotation.services.labels import label_submit

REVIEW_LIMIT_MAX = 500


def adjudication_settle(*, item: Item, lead: User, payload: Any, reason: str, note: str = "") -> Adjudication:
    """Store the lead's final label of the item and the record of what was weighed, in one transaction.

    The payload is validated like any label (a 400 names the field). The lead's own label chain gets the
    new version, so concurrent decisions by the same lead conflict instead of overwriting.
    """
    if reason not in AdjudicationReason.values:
        raise WorkspaceInputError("reason", f"must be one of {', '.join(AdjudicationReason.values)}")
    note = (note or "").strip()
    if len(note) > 2000:
        raise WorkspaceInputError("note", "must be at most 2000 characters")
    with transaction.atomic():
        current = current_label(item, lead)
        considered = list(
            Label.objects.current()
            .filter(item=item)
            .exclude(author=lead)
            .order_by("created_at", "pk")
            .values_list("pk", flat=True)
        )
        prediction = promoted_predictions(item.project, [item.pk]).get(item.pk)
        label = label_submit(
            item=item,
            author=lead,
            payload=payload,
            base_version=current.version if current else None,
            source=LabelSource.ADJUDICATION,
        )
        return Adjudication.objects.create(
            item=item,
            decided_by=lead,
            label=label,
            reason=reason,
            considered_labels=considered,
            prediction=prediction,
            note=note,
        )


def review_request_create(
    *,
    project: Project,
    annotator: User,
    requested_by: User,
    limit: int = 20,
    since=None,
    note: str = "",
    item_ids: Collection[int] | None = None,
) -> ReviewRequest:
    """Send the annotator's most recent labels (at most `limit`, or all since `since`) back to them for review;
    with `item_ids`, their labels of those items (the item browser's selection, which bounds it instead of
    `limit`).

    Items already waiting for this annotator's review are not sent twice.
    """
    if item_ids is None and not 1 <= limit <= REVIEW_LIMIT_MAX:
        raise WorkspaceInputError("limit", f"must be between 1 and {REVIEW_LIMIT_MAX}")
    labels = Label.objects.current().filter(item__project=project, author=annotator, source=LabelSource.ANNOTATOR)
    if since is not None:
        labels = labels.filter(created_at__gte=since)
    if item_ids is not None:
        labels = labels.filter(item_id__in=item_ids)
        limit = len(item_ids)
    pending = ReviewItem.objects.filter(
        request__annotator=annotator, request__project=project, resolved_at__isnull=True
    ).values("item")
    chosen = list(labels.exclude(item__in=pending).order_by("-created_at", "-pk")[:limit])
    if not chosen:
        raise WorkspaceInputError("annotator", "has no labels in this project to review (or all are under review)")
    with transaction.atomic():
        request = ReviewRequest.objects.create(
            project=project, annotator=annotator, requested_by=requested_by, note=(note or "").strip()[:2000]
        )
        ReviewItem.objects.bulk_create(ReviewItem(request=request, item_id=lb.item_id, label=lb) for lb in chosen)
    return request
