"""Reads behind the lead's item browser: a project's items with their status, labels and the champion's opinion.

An item's statuses reuse the definitions the rest of Lumen acts on, and an item may have several at once:

- `unlabelled` / `labelled`: whether anyone holds a current label of it;
- `skipped`: an annotator skipped it (an `Assignment` in state skipped), whoever labelled it since;
- `in_review`: a lead sent a label of it back and the annotator has not answered yet (an open `ReviewItem`);
- `disputed`: it is on the adjudication queue (`annotation.quality.adjudication`: its annotators disagree, or a
  confident model disputes its label, and no lead has settled it since).

Classes come from the project's task (`LabelTask.label_classes` / `predicted_classes`): vessel type has one per
label, SPECT the abnormal territories, OCT masks none. The list costs the same few queries whatever the page size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from django.db.models import Count, Exists, F, FloatField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.urls import reverse

from annotation.models import (
    Assignment,
    AssignmentState,
    Item,
    Label,
    ModelStatus,
    ModelVersion,
    Prediction,
    Project,
    ReviewItem,
)
from annotation.quality.adjudication import adjudication_cases
from annotation.tasks import label_task

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    class Browsed(TypedDict):
        labels_count: int
        last_labelled_at: datetime | None
        uncertainty: float | None
        skipped: bool
        in_review: bool
        excluded_by_name: str | None

    BrowsedItem = WithAnnotations[Item, Browsed]  # what `browsable_items` answers

UNLABELLED, LABELLED, SKIPPED, IN_REVIEW, DISPUTED = "unlabelled", "labelled", "skipped", "in_review", "disputed"
STATUSES = (UNLABELLED, LABELLED, SKIPPED, IN_REVIEW, DISPUTED)
UNASSIGNED = "unassigned"  # how the browser names the split of an item no ranking or training has placed yet
SPLITS = ("train", "validation", "test", UNASSIGNED)

# The orders the browser offers: name → the annotation or field it sorts on (ties by id).
ORDERINGS = {
    "id": "pk",
    "created": "created_at",
    "title": "title",
    "split": "split",
    "uncertainty": "uncertainty",
    "labels": "labels_count",
    "last_labelled": "last_labelled_at",
}


def champion_of(project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, status=ModelStatus.CHAMPION).first()


def browsable_items(project: Project, champion: ModelVersion | None) -> QuerySet[BrowsedItem]:
    """Return the project's items with what the browser filters and sorts on, each as one subquery per row:
    `labels_count`, `last_labelled_at`, the champion's `uncertainty`, `skipped`, `in_review` and
    `excluded_by_name`."""
    current = Label.objects.current().filter(item=OuterRef("pk")).order_by().values("item")
    newest = Label.objects.filter(item=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
    uncertainty: Subquery | Value = Value(None, output_field=FloatField())
    if champion is not None:
        scored = Prediction.objects.filter(item=OuterRef("pk"), model_version=champion).values("uncertainty")[:1]
        uncertainty = Subquery(scored, output_field=FloatField())
    return (
        Item.objects.filter(project=project)
        .annotate(
            labels_count=Coalesce(Subquery(current.annotate(n=Count("pk")).values("n")[:1]), 0),
            last_labelled_at=Subquery(newest),
            uncertainty=uncertainty,
            skipped=Exists(Assignment.objects.filter(item=OuterRef("pk"), state=AssignmentState.SKIPPED)),
            in_review=Exists(ReviewItem.objects.filter(item=OuterRef("pk"), resolved_at__isnull=True)),
            excluded_by_name=F("excluded_by__username"),
        )
        .order_by("pk")
    )


def items_with_status(project: Project, items: QuerySet[BrowsedItem], status: str) -> QuerySet[BrowsedItem]:
    """Narrow `browsable_items` to those with the status (one of STATUSES)."""
    labelled = Exists(Label.objects.current().filter(item=OuterRef("pk")))
    if status == UNLABELLED:
        return items.filter(~labelled)
    if status == LABELLED:
        return items.filter(labelled)
    if status == SKIPPED:
        return items.filter(skipped=True)
    if status == IN_REVIEW:
        return items.filter(in_review=True)
    if status == DISPUTED:
        return items.filter(pk__in=disputed_items(project))
    raise ValueError(f"unknown status {status!r}; statuses: {', '.join(STATUSES)}")


def disputed_items(project: Project, item_ids: Collection[int] | None = None) -> set[int]:
    """Return the ids of the items on the adjudication queue (among `item_ids` if given)."""
    return {case.item for case in adjudication_cases(project, item_ids)}


def items_labelled_as(project: Project, name: str) -> set[int]:
    """Return the ids of the items a current label gives the class `name` (the task says what a class is)."""
    task = label_task(project.task_type)
    rows = Label.objects.current().filter(item__project=project).values_list("item_id", "payload")
    return {item_id for item_id, payload in rows.iterator(chunk_size=2000) if name in task.label_classes(payload)}


def items_predicted_as(project: Project, champion: ModelVersion | None, name: str) -> set[int]:
    """Return the ids of the items the champion's prediction gives the class `name`."""
    if champion is None:
        return set()
    task = label_task(project.task_type)
    rows = Prediction.objects.filter(model_version=champion).values_list("item_id", "output")
    return {item_id for item_id, output in rows.iterator(chunk_size=2000) if name in task.predicted_classes(output)}


def items_labelled_by(items: QuerySet[BrowsedItem], username: str) -> QuerySet[BrowsedItem]:
    """Narrow to the items the user holds a current label of."""
    mine = Label.objects.current().filter(item=OuterRef("pk"), author__username=username)
    return items.filter(Exists(mine))


def items_ordered(items: QuerySet[BrowsedItem], ordering: str) -> QuerySet[BrowsedItem]:
    """Sort by one of ORDERINGS ("-name": descending); empty values last either way, ties by id."""
    name = ordering.removeprefix("-")
    field = F(ORDERINGS[name])
    key = field.desc(nulls_last=True) if ordering.startswith("-") else field.asc(nulls_last=True)
    return items.order_by(key, "pk")


@dataclass(frozen=True)
class PageFacts:
    """What a page of rows shows beyond the item's own columns, read once for the whole page."""

    labels: dict[int, list[dict[str, Any]]]
    predictions: dict[int, dict[str, Any]]
    disputed: set[int]


def page_facts(project: Project, champion: ModelVersion | None, item_ids: Sequence[int]) -> PageFacts:
    """Read the current labels (author, class), the champion's predictions and the disputes of a page's items."""
    task = label_task(project.task_type)
    with_classes = bool(task.class_names)  # an OCT mask is large and has no class: not read
    fields = ["item_id", "author__username", "source", "version", "created_at"]
    labels: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows = Label.objects.current().filter(item_id__in=item_ids).order_by("item_id", "created_at", "pk")
    for row in rows.values(*fields, *(["payload"] if with_classes else [])):
        labels[row["item_id"]].append(
            {
                "author": row["author__username"],
                "classes": list(task.label_classes(row["payload"])) if with_classes else [],
                "source": row["source"],
                "version": row["version"],
                "created_at": row["created_at"],
            }
        )
    predictions: dict[int, dict[str, Any]] = {}
    if champion is not None:
        scored = Prediction.objects.filter(model_version=champion, item_id__in=item_ids)
        for row in scored.values("item_id", "uncertainty", "confidence", *(["output"] if with_classes else [])):
            predictions[row["item_id"]] = {
                "model_version": champion.number,
                "classes": list(task.predicted_classes(row["output"])) if with_classes else [],
                "uncertainty": row["uncertainty"],
                "confidence": row["confidence"],
            }
    return PageFacts(labels=dict(labels), predictions=predictions, disputed=disputed_items(project, item_ids))


def item_row(project: Project, item: BrowsedItem, facts: PageFacts) -> dict[str, Any]:
    """Return one row of the browser: the item, its statuses, labels, the champion's opinion, where to open it."""
    labels = facts.labels.get(item.pk, [])
    statuses = [LABELLED if labels else UNLABELLED]
    statuses += [name for name, on in ((SKIPPED, item.skipped), (IN_REVIEW, item.in_review)) if on]
    if item.pk in facts.disputed:
        statuses.append(DISPUTED)
    return {
        "id": item.pk,
        "title": item.title,
        "kind": item.kind,
        "split": item.split or UNASSIGNED,
        "statuses": statuses,
        "is_gold": item.is_gold,
        "excluded": item.excluded_at is not None,
        "excluded_at": item.excluded_at,
        "excluded_by": item.excluded_by_name,
        "created_at": item.created_at,
        "labels_count": item.labels_count,
        "last_labelled_at": item.last_labelled_at,
        "labels": labels,
        "prediction": facts.predictions.get(item.pk),
        # The workspace opens any item of the project on ?item= (the lead's own label and tool); a lead settles
        # a disputed one on the adjudication page, beside every label and the model's.
        "open_url": f"{reverse('workspace', args=[project.slug])}?item={item.pk}",
        "adjudicate_url": reverse("adjudicate", args=[project.slug, item.pk]),
    }


def annotators_of(project: Project) -> list[str]:
    """Return the usernames of the project's members, for the annotator filter."""
    return sorted(project.memberships.values_list("user__username", flat=True))
