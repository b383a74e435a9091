"""How far annotators agree, per task, and how each annotator works: the reads behind the leads' quality pages.

Ratings are every person's current label of an item (adjudications excluded: they settle disagreements,
they are not a rater). Two people who labelled the same item form a pair; per-pair statistics use the
items both labelled, overall ones pool the pairs (the lower user id as the first rater) or, for Fleiss'
kappa, count every item's ratings.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model

from annotation.models import Assignment, AssignmentState, Item, Label, LabelSource, Project
from annotation.tasks import label_task
from annotation.training_data import final_targets
from learning import metrics
from learning.agreement import cohen_kappa, confusion_matrix, fleiss_kappa, icc, percent_agreement
from learning.domain import SEGMENT_COUNT, SEGMENT_SCORES, TERRITORIES, VESSEL_CHOICES
from learning.masks import MaskFormatError, mask_decode
from learning.spect_scoring import territory_flags, territory_rollup


@dataclass(frozen=True)
class Rating:
    item_id: int
    author_id: int
    username: str
    payload: dict
    label_id: int
    created_at: Any
    time_spent_ms: int | None


def ratings_by_item(project: Project, item_ids: Collection[int] | None = None) -> dict[int, list[Rating]]:
    """Return each item's current labels by people (not adjudications), oldest first; of `item_ids` only if given."""
    rows = (
        Label.objects.current()
        .filter(item__project=project)
        .exclude(source=LabelSource.ADJUDICATION)
        .select_related("author")
        .order_by("item_id", "created_at", "pk")
    )
    if item_ids is not None:
        rows = rows.filter(item_id__in=item_ids)
    out: dict[int, list[Rating]] = defaultdict(list)
    for label in rows.iterator(chunk_size=2000):
        out[label.item_id].append(
            Rating(
                label.item_id,
                label.author_id,
                label.author.username,
                label.payload,
                label.pk,
                label.created_at,
                label.time_spent_ms,
            )
        )
    return dict(out)


def _pairs(by_item: dict[int, list[Rating]]) -> dict[tuple[int, int], list[tuple[Rating, Rating]]]:
    pairs: dict[tuple[int, int], list[tuple[Rating, Rating]]] = defaultdict(list)
    for ratings in by_item.values():
        for first, second in combinations(sorted(ratings, key=lambda r: r.author_id), 2):
            pairs[(first.author_id, second.author_id)].append((first, second))
    return dict(pairs)


def _safe(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def _names(by_item: dict[int, list[Rating]]) -> dict[int, str]:
    return {r.author_id: r.username for ratings in by_item.values() for r in ratings}


def _pair_rows(pairs, names, compute: Callable[[list[tuple[Rating, Rating]]], dict]) -> list[dict]:
    return [
        {"first": names[a], "second": names[b], "items": len(rows), **compute(rows)}
        for (a, b), rows in sorted(pairs.items())
    ]


# ---------------------------------------------------------------------------------------------------- vessel type
def _vessel_stats(rows: list[tuple[Rating, Rating]]) -> dict:
    # JSON values, None where a label names no vessel (the metrics compare them as objects).
    a: list[Any] = [r.payload.get("vessel") for r, _ in rows]
    b: list[Any] = [r.payload.get("vessel") for _, r in rows]
    return {
        "percent_agreement": _safe(percent_agreement(a, b)),
        "kappa": _safe(cohen_kappa(a, b, labels=VESSEL_CHOICES)),
        "confusion": confusion_matrix(a, b, labels=VESSEL_CHOICES).tolist(),
    }


def vessel_agreement(by_item: dict[int, list[Rating]]) -> dict:
    pairs, names = _pairs(by_item), _names(by_item)
    pooled = [row for rows in pairs.values() for row in rows]
    counts = [
        [sum(r.payload.get("vessel") == c for r in ratings) for c in VESSEL_CHOICES]
        for ratings in by_item.values()
        if len(ratings) >= 2
    ]
    overall = {"items": len(counts), "categories": list(VESSEL_CHOICES)}
    if pooled:
        overall.update(_vessel_stats(pooled))
        overall["fleiss_kappa"] = _safe(fleiss_kappa(counts))
    return {"overall": overall, "pairs": _pair_rows(pairs, names, _vessel_stats)}


# ---------------------------------------------------------------------------------------------------- OCT
def _mask(payload: dict) -> np.ndarray | None:
    try:
        return None if payload.get("excluded") else mask_decode(payload["mask"])
    except (KeyError, MaskFormatError):
        return None


def _oct_frames(rows: list[tuple[Rating, Rating]]) -> list[dict]:
    frames = []
    for first, second in rows:
        a, b = _mask(first.payload), _mask(second.payload)
        if a is None or b is None or a.shape != b.shape:
            continue
        frames.append({"item": first.item_id, "dice": _safe(metrics.dice(a, b)), "iou": _safe(metrics.iou(a, b))})
    return frames


def _oct_stats(rows: list[tuple[Rating, Rating]]) -> dict:
    frames = _oct_frames(rows)
    excluded_a = [bool(r.payload.get("excluded")) for r, _ in rows]
    excluded_b = [bool(r.payload.get("excluded")) for _, r in rows]
    dice = [f["dice"] for f in frames]
    iou = [f["iou"] for f in frames]
    return {
        "frames_with_masks": len(frames),
        "dice_mean": _safe(float(np.mean(dice))) if dice else None,
        "dice_sd": _safe(float(np.std(dice))) if dice else None,
        "iou_mean": _safe(float(np.mean(iou))) if iou else None,
        "excluded_agreement": _safe(percent_agreement(excluded_a, excluded_b)),
        "excluded_kappa": _safe(cohen_kappa(excluded_a, excluded_b, labels=[False, True])),
    }


def oct_agreement(by_item: dict[int, list[Rating]]) -> dict:
    pairs, names = _pairs(by_item), _names(by_item)
    pooled = [row for rows in pairs.values() for row in rows]
    frames = [
        {"first": names[a], "second": names[b], **frame}
        for (a, b), rows in sorted(pairs.items())
        for frame in _oct_frames(rows)
    ]
    overall = {"items": len({r.item_id for r, _ in pooled})}
    if pooled:
        overall.update(_oct_stats(pooled))
    return {"overall": overall, "pairs": _pair_rows(pairs, names, _oct_stats), "frames": frames}


# ---------------------------------------------------------------------------------------------------- SPECT
def _spect_flags(payload: dict) -> dict[str, bool]:
    rollup = territory_rollup(payload["stress"], payload["rest"])
    return territory_flags(rollup, payload.get("flag_overrides") or {})


def _spect_stats(rows: list[tuple[Rating, Rating]]) -> dict:
    segment_kappa = []
    for segment in range(SEGMENT_COUNT):
        a = [r.payload["stress"][segment] for r, _ in rows]
        b = [r.payload["stress"][segment] for _, r in rows]
        segment_kappa.append(_safe(cohen_kappa(a, b, labels=SEGMENT_SCORES, weights="quadratic")))
    pooled_a = [score for r, _ in rows for score in r.payload["stress"]]
    pooled_b = [score for _, r in rows for score in r.payload["stress"]]
    territories = {}
    for name in TERRITORIES:
        sss = [[territory_rollup(r.payload["stress"], r.payload["rest"])[name].sss for r in pair] for pair in rows]
        flags_a = [_spect_flags(r.payload)[name] for r, _ in rows]
        flags_b = [_spect_flags(r.payload)[name] for _, r in rows]
        territories[name] = {
            "sss_icc": _safe(icc(sss)) if len(rows) >= 2 else None,
            "flag_kappa": _safe(cohen_kappa(flags_a, flags_b, labels=[False, True])),
            "flag_agreement": _safe(percent_agreement(flags_a, flags_b)),
        }
    return {
        "segment_weighted_kappa": segment_kappa,
        "weighted_kappa_all_segments": _safe(
            cohen_kappa(pooled_a, pooled_b, labels=SEGMENT_SCORES, weights="quadratic")
        ),
        "territories": territories,
    }


def spect_agreement(by_item: dict[int, list[Rating]]) -> dict:
    pairs, names = _pairs(by_item), _names(by_item)
    pooled = [row for rows in pairs.values() for row in rows]
    overall = {"items": len({r.item_id for r, _ in pooled})}
    if pooled:
        overall.update(_spect_stats(pooled))
    return {"overall": overall, "pairs": _pair_rows(pairs, names, _spect_stats)}


def agreement_over_time(task_type: str, by_item: dict[int, list[Rating]]) -> list[dict]:
    """Return per day: pairs of labels completed that day (the later label's day) and their mean agreement.

    Agreement of a pair is the task's: same class (vessel), Dice of the masks (OCT; both excluded agree),
    share of territory flags in common (SPECT).
    """
    spec = label_task(task_type).learning()
    by_day: dict[str, list[float]] = defaultdict(list)
    for rows in _pairs(by_item).values():
        for first, second in rows:
            later = max(first.created_at, second.created_at)
            agreement = target_agreement(task_type, first.payload, spec.target_from_payload(second.payload))
            by_day[later.date().isoformat()].append(agreement)
    return [
        {"day": day, "pairs": len(values), "agreement": _safe(float(np.mean(values)))}
        for day, values in sorted(by_day.items())
    ]


def project_agreement(project: Project) -> dict:
    """Return the project's inter-annotator agreement: overall, per annotator pair (and per frame for OCT),
    and per day."""
    by_item = ratings_by_item(project)
    task = label_task(project.task_type)
    return task.agreement(by_item) | {"over_time": agreement_over_time(project.task_type, by_item)}


# ---------------------------------------------------------------------------------------------------- annotators
def target_agreement(task_type: str, payload: dict, target: Any) -> float:
    """Return how far a label agrees with a reference target: 1/0 for classes and flags, Dice for masks."""
    task = label_task(task_type)
    mine = task.learning().target_from_payload(payload)
    if mine is None or target is None:
        return 1.0 if mine is None and target is None else 0.0
    return task.target_agreement(mine, target)


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return _safe(float(np.mean(kept))) if kept else None


def annotator_stats(project: Project) -> list[dict]:
    """Return per annotator: labels, agreement with gold and with the consensus, pace and skip rate."""
    by_item = ratings_by_item(project)
    gold_items = set(Item.objects.filter(project=project, is_gold=True).values_list("pk", flat=True))
    targets, _ = final_targets(project)
    gold_truth = {}
    for item_id in gold_items:
        final = targets.get(item_id)
        if final is not None and final.label is not None:
            gold_truth[item_id] = (final.label.author_id, final.target)
    per_user: dict[int, dict[str, Any]] = defaultdict(lambda: {"labels": [], "gold": [], "consensus": []})
    for item_id, ratings in by_item.items():
        for rating in ratings:
            row = per_user[rating.author_id]
            row["username"] = rating.username
            row["labels"].append(rating)
            if item_id in gold_truth and gold_truth[item_id][0] != rating.author_id:
                row["gold"].append(target_agreement(project.task_type, rating.payload, gold_truth[item_id][1]))
            final = targets.get(item_id)
            if final is not None and final.label is not None and final.label.pk != rating.label_id:
                row["consensus"].append(target_agreement(project.task_type, rating.payload, final.target))
    skips = defaultdict(set)
    for annotator_id, item_id in Assignment.objects.filter(
        item__project=project, state=AssignmentState.SKIPPED
    ).values_list("annotator_id", "item_id"):
        skips[annotator_id].add(item_id)
    for user_id, username in (
        get_user_model().objects.filter(pk__in=set(skips) - set(per_user)).values_list("pk", "username")
    ):
        per_user[user_id]["username"] = username
    out = []
    for user_id, row in per_user.items():
        times = [r.time_spent_ms for r in row["labels"] if r.time_spent_ms]
        labelled = {r.item_id for r in row["labels"]}
        skipped = skips.get(user_id, set()) - labelled
        hours = sum(times) / 3.6e6
        out.append(
            {
                "annotator": row["username"],
                "labels": len(row["labels"]),
                "gold_items": len(row["gold"]),
                "gold_agreement": _mean(row["gold"]),
                "consensus_items": len(row["consensus"]),
                "consensus_agreement": _mean(row["consensus"]),
                "items_per_hour": _safe(len(times) / hours) if hours > 0 else None,
                "median_seconds_per_item": _safe(statistics.median(times) / 1000) if times else None,
                "skips": len(skipped),
                "skip_rate": _safe(len(skipped) / (len(labelled) + len(skipped))) if labelled or skipped else None,
            }
        )
    return sorted(out, key=lambda r: r["annotator"])
