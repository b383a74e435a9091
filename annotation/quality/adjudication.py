"""The leads' adjudication queue: items whose labels disagree, and labels a confident model disputes.

An item comes back here when
- its annotators disagree beyond the task's threshold (the same test that keeps it out of training:
  `TaskSpec.targets_agree` — same class, same SPECT territory flags, OCT masks with Dice >= agreement_dice), or
- a promoted model, scoring the item before anyone labelled it, was at least `suspect_confidence` sure of a
  different answer than the label it then got,
and no adjudication or lead's label has settled it since the newest label. Cases are ranked by how much they
matter: held-out test items count most (they decide which model is champion), then validation, gold items
(they grade annotators), and the size of the disagreement or the model's confidence.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from annotation.models import (
    Item,
    Label,
    LabelSource,
    Project,
    Role,
    Split,
)
from annotation.project_settings import parse_settings
from annotation.quality.agreement import Rating, ratings_by_item, target_agreement
from annotation.selectors import promoted_predictions
from annotation.tasks import label_task
from annotation.training_data import targets_all_agree

SPLIT_WEIGHT: dict[str, float] = {Split.TEST: 3.0, Split.VALIDATION: 2.0, Split.TRAIN: 1.0, Split.UNASSIGNED: 1.0}
GOLD_WEIGHT = 1.0
DISAGREEMENT = "disagreement"
MODEL_DISAGREES = "model_disagrees"


@dataclass
class Case:
    """One item a lead should settle, with everything the side-by-side view shows."""

    item: int
    title: str
    split: str
    is_gold: bool
    reason: str
    importance: float
    detail: str
    labels: list[dict[str, Any]] = field(default_factory=list)
    prediction: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _label_json(rating: Rating) -> dict[str, Any]:
    return {
        "label": rating.label_id,
        "author": rating.username,
        "payload": rating.payload,
        "created_at": rating.created_at.isoformat(),
    }


def _settled_at(project: Project, item_ids: Collection[int] | None = None) -> dict[int, Any]:
    """Return, per item, when a lead last settled it (an adjudication, or a lead's own current label)."""
    leads = project.memberships.filter(role=Role.LEAD).values("user")
    rows = Label.objects.current().filter(item__project=project).filter(
        source=LabelSource.ADJUDICATION
    ) | Label.objects.current().filter(item__project=project, author__in=leads)
    if item_ids is not None:
        rows = rows.filter(item_id__in=item_ids)
    settled: dict[int, Any] = {}
    for item_id, created_at in rows.values_list("item_id", "created_at"):
        settled[item_id] = max(created_at, settled.get(item_id, created_at))
    return settled


def adjudication_cases(project: Project, item_ids: Collection[int] | None = None) -> list[Case]:
    """Return the items waiting for a lead's decision, most important first; among `item_ids` only if given."""
    settings = parse_settings(project.task_type, project.settings)
    spec = label_task(project.task_type).learning()
    by_item = ratings_by_item(project, item_ids)
    settled = _settled_at(project, item_ids)
    open_items = {
        item_id: ratings
        for item_id, ratings in by_item.items()
        if item_id not in settled or settled[item_id] < max(r.created_at for r in ratings)
    }
    items = {item.pk: item for item in Item.objects.filter(pk__in=open_items).only("pk", "title", "split", "is_gold")}
    predictions = promoted_predictions(project, set(open_items))
    cases = []
    for item_id, ratings in open_items.items():
        item = items[item_id]
        base = SPLIT_WEIGHT.get(item.split, 1.0) + (GOLD_WEIGHT if item.is_gold else 0.0)
        targets = [spec.target_from_payload(r.payload) for r in ratings]
        prediction = predictions.get(item_id)
        shown = None
        if prediction is not None:
            shown = {
                "model_version": prediction.model_version.number,
                "output": prediction.output,
                "confidence": prediction.confidence,
            }
        if len(ratings) >= 2 and not targets_all_agree(spec, targets):
            agreement = [target_agreement(project.task_type, r.payload, targets[0]) for r in ratings[1:]]
            gap = 1.0 - sum(agreement) / len(agreement)
            cases.append(
                Case(
                    item_id,
                    item.title,
                    item.split,
                    item.is_gold,
                    DISAGREEMENT,
                    round(base + gap, 4),
                    f"{len(ratings)} annotators disagree",
                    [_label_json(r) for r in ratings],
                    shown,
                )
            )
            continue
        # A prediction stored without a confidence is never suspect (also when suspect_confidence is 0).
        if prediction is None or prediction.confidence is None or prediction.confidence < settings.suspect_confidence:
            continue
        predicted = spec.target_from_output(prediction.output)
        newer = [r for r in ratings if r.created_at > prediction.created_at]
        if predicted is None or not newer:
            continue
        disputed = targets[-1] is None or not spec.targets_agree(predicted, targets[-1])
        if disputed:
            cases.append(
                Case(
                    item_id,
                    item.title,
                    item.split,
                    item.is_gold,
                    MODEL_DISAGREES,
                    round(base + float(prediction.confidence), 4),
                    f"model v{prediction.model_version.number} is {prediction.confidence:.0%} sure of another answer",
                    [_label_json(r) for r in ratings],
                    shown,
                )
            )
    return sorted(cases, key=lambda c: (-c.importance, c.item))
