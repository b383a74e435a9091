"""Model health for leads: each version's held-out metrics over time, the learning curve, how often the model
agreed with the labels people gave afterwards, and how unsure the champion is about what is still queued."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from annotation.models import Label, LabelSource, ModelStatus, ModelVersion, Prediction, Project
from annotation.quality.agreement import target_agreement
from annotation.selectors import promoted_predictions
from annotation.services.queue import items_wanting_labels
from annotation.tasks import label_task

HISTOGRAM_BINS = 20


def _metric(metrics: dict, split: str, name: str) -> float | None:
    value = (metrics.get(split) or {}).get(name)
    return None if value is None else round(float(value), 4)


def version_history(project: Project) -> list[dict[str, Any]]:
    """Return every model version, oldest first, with its held-out (and validation) primary metric."""
    primary = label_task(project.task_type).learning().primary_metric
    rows = []
    for version in ModelVersion.objects.filter(project=project).order_by("number"):
        metrics = version.metrics or {}
        ci = (metrics.get("test") or {}).get(f"{primary}_ci")
        rows.append(
            {
                "number": version.number,
                "family": version.family,
                "status": version.status,
                "trained_at": version.trained_at.isoformat() if version.trained_at else None,
                "promoted_at": version.promoted_at.isoformat() if version.promoted_at else None,
                "train_examples": metrics.get("train_examples"),
                "pseudo_examples": metrics.get("pseudo_examples", 0),
                "metric": primary,
                "test": _metric(metrics, "test", primary),
                "test_ci": ci if isinstance(ci, list) else None,
                "test_items": (metrics.get("test") or {}).get("n"),
                "validation": _metric(metrics, "validation", primary),
                "rule": version.decision_rule or None,
            }
        )
    return rows


def learning_curve(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return (human labels trained on, held-out metric) per version that has both, by label count."""
    points = [
        {
            "labels": (row["train_examples"] or 0) - (row["pseudo_examples"] or 0),
            "test": row["test"],
            "version": row["number"],
            "status": row["status"],
        }
        for row in history
        if row["test"] is not None and row["train_examples"]
    ]
    return sorted(points, key=lambda p: (p["labels"], p["version"]))


def model_human_agreement(project: Project) -> list[dict[str, Any]]:
    """Return per day: items people labelled after a promoted model had scored them, and how far they agreed.

    Each item counts once, with the first label it got after the prediction, against the newest prediction of a
    version that was champion when it was made.
    """
    newest = promoted_predictions(project)
    labels = (
        Label.objects.filter(item_id__in=newest, version=1)
        .exclude(source=LabelSource.ADJUDICATION)
        .order_by("item_id", "created_at")
    )
    spec = label_task(project.task_type).learning()
    by_day: dict[str, list[float]] = defaultdict(list)
    seen: set[int] = set()
    for label in labels:
        prediction = newest[label.item_id]
        if label.item_id in seen or label.created_at <= prediction.created_at:
            continue
        seen.add(label.item_id)
        predicted = spec.target_from_output(prediction.output)
        if predicted is None:
            continue
        agreement = target_agreement(project.task_type, label.payload, predicted)
        by_day[label.created_at.date().isoformat()].append(agreement)
    return [
        {"day": day, "items": len(values), "agreement": round(float(np.mean(values)), 4)}
        for day, values in sorted(by_day.items())
    ]


def queue_uncertainty(project: Project) -> dict[str, Any]:
    """Return a histogram of the champion's uncertainty over the items still wanting labels."""
    champion = ModelVersion.objects.filter(project=project, status=ModelStatus.CHAMPION).first()
    if champion is None:
        return {"model_version": None, "items": 0, "bins": [], "counts": []}
    wanting = set(items_wanting_labels(project))
    values = np.array(
        [
            u
            for item_id, u in Prediction.objects.filter(model_version=champion, uncertainty__isnull=False).values_list(
                "item_id", "uncertainty"
            )
            if item_id in wanting
        ],
        dtype=float,
    )
    if values.size == 0:
        return {"model_version": champion.number, "items": 0, "bins": [], "counts": []}
    top = float(values.max()) if values.max() > 0 else 1.0
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(0.0, top))
    return {
        "model_version": champion.number,
        "items": int(values.size),
        "mean": round(float(values.mean()), 4),
        "median": round(float(np.median(values)), 4),
        "bins": [round(float(e), 4) for e in edges],
        "counts": counts.tolist(),
    }


def model_health(project: Project) -> dict[str, Any]:
    """Return everything the model-health panel plots."""
    history = version_history(project)
    return {
        "metric": label_task(project.task_type).learning().primary_metric,
        "versions": history,
        "learning_curve": learning_curve(history),
        "model_vs_human": model_human_agreement(project),
        "queue_uncertainty": queue_uncertainty(project),
    }
