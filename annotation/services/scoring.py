"""Scoring jobs: a model version scores the items wanting labels in chunks, then may be promoted.

The executor scores the chunks (on a Ray cluster, in parallel on scoring actors that each hold the model once)
and streams them back as they finish; each chunk's predictions are stored in a transaction of their own, so a
killed job keeps what it scored and the retry scores only the rest. Predictions of a candidate touch nothing
annotators see: the queue is ordered by the champion's scores alone. When the last chunk is in, one transaction
promotes the candidate (if the champion it beat is still champion), retires the old champion and re-ranks the
queue on the new scores; a crash at any point before that commit leaves the previous champion, its scores and the
queue exactly as they were.

Before the first champion, the newest model (trained and rejected: it has not yet beaten its task's trivial
baseline on the locked test items) scores the items wanting labels too, and ranks the queue: only that. It makes
no pseudo-labels, and nothing an annotator sees, nor any flag on a human label, comes from it (those read the
champion's predictions). Test items keep their own random hand-out order whatever ranks the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.conf import settings as django_settings
from django.db import transaction

from annotation.models import Job, Label, ModelStatus, ModelVersion, Prediction, Project, PseudoLabel, Split
from annotation.project_settings import parse_settings
from annotation.services.events import leads_event_send
from annotation.services.jobs import job_fail, job_finish, job_report
from annotation.services.learning import ExecutorLike, json_safe, read_weights
from annotation.services.lifecycle import model_version_move
from annotation.services.queue import items_wanting_labels, queue_rerank
from annotation.tasks import label_task
from annotation.training_data import items_with_inputs, media_root
from gpu_workers.executors import ScoreChunk
from learning.tasks import ItemScore, ScoreRequest

SCORE_BATCH = 16  # items per forward pass inside a request


def scoring_run(
    *, job: Job, executor: ExecutorLike, poll_seconds: float = 1.0, on_progress: Callable | None = None
) -> int | None:
    """Run a claimed scoring job to the end; return the number of items scored, or None if it failed.

    Items this version already scored (an earlier, interrupted attempt) are not scored again.
    """
    version = ModelVersion.objects.select_related("project").get(pk=job.params["model_version"])
    project = version.project
    weights = read_weights(version)
    if weights is None:
        job_fail(job=job, error=f"model v{version.number}: weights file {version.weights_path!r} is missing")
        return None
    settings = parse_settings(project.task_type, project.settings)
    # Pseudo-labels come from a model that beat its comparison (a candidate, or the champion) and from no other.
    promotable = version.status in (ModelStatus.CANDIDATE, ModelStatus.CHAMPION)
    pseudo_threshold = settings.pseudo_label_threshold if promotable else None
    task = label_task(project.task_type)
    wanted = items_wanting_labels(project)
    already = set(Prediction.objects.filter(model_version=version).values_list("item_id", flat=True))
    todo = [item_id for item_id in wanted if item_id not in already]
    total, scored = len(wanted), len(wanted) - len(todo)
    size = django_settings.LUMEN_SCORE_CHUNK
    # Items of the chunks out on the workers, kept until their scores come back to be stored.
    out: dict[int, dict[int, Any]] = {}

    def chunks() -> Iterator[ScoreChunk]:
        """Each chunk's items are read only when the executor has room for it."""
        for start in range(0, len(todo), size):
            ids = todo[start : start + size]
            items = {item.pk: item for item in items_with_inputs(project).filter(pk__in=ids)}
            out[start] = items
            refs = tuple(task.item_ref(items[i]) for i in ids if i in items)
            yield ScoreChunk(index=start, refs=refs, seed=settings.training_seed + start)

    template = ScoreRequest(
        task=task.learning_name, weights=weights, refs=(), media_root=media_root(), batch_size=SCORE_BATCH
    )
    stream = executor.score_stream(
        template, chunks(), key=str(job.pk), count=math.ceil(len(todo) / size), poll_seconds=poll_seconds
    )
    for event in stream:
        if event.chunk is None:  # still working: beat the heartbeat, pass on a running chunk's own progress
            reports = [{**r, "done": scored + r.get("done", 0), "total": total} for r in event.progress]
            job_report(job=job, reports=reports)
            if on_progress and reports:
                on_progress(reports)
            continue
        if event.error is not None:
            job_fail(job=job, error=f"scoring failed after {scored} of {total} items: {event.error}")
            return None
        items = out.pop(event.chunk.index)
        predictions_store(version=version, scores=event.scores, items=items, pseudo_threshold=pseudo_threshold)
        scored += min(size, len(todo) - event.chunk.index)
        report = {"phase": "scoring", "done": scored, "total": total}
        job_report(job=job, reports=[report])
        if on_progress:
            on_progress([report])
    return scoring_finish(job=job, version=version, scored=scored)


def predictions_store(
    *, version: ModelVersion, scores: Sequence[ItemScore], items: dict, pseudo_threshold: float | None
) -> int:
    """Upsert one prediction per scored item and, when enabled, pseudo-labels for confident unlabelled training items.

    One transaction per batch. Returns the pseudo-label count of the batch.
    """
    spec = label_task(version.project.task_type).learning()
    rows = [
        Prediction(
            item_id=s.item_id,
            model_version=version,
            output=json_safe(s.output),
            uncertainty=s.uncertainty if math.isfinite(s.uncertainty) else None,
            uncertainty_detail=json_safe(s.detail),
            confidence=s.confidence,
            embedding=list(s.embedding) if s.embedding is not None else None,
        )
        for s in scores
    ]
    pseudo_rows = []
    if pseudo_threshold is not None:
        trainable = (Split.TRAIN, Split.UNASSIGNED)
        # Only items nobody has labelled: an overlap item waiting for its second annotator has a human label.
        labelled = set(Label.objects.filter(item_id__in=[s.item_id for s in scores]).values_list("item_id", flat=True))
        task = spec(media_root())
        for s in scores:
            target = task.pseudo_target(s, pseudo_threshold)
            if target is not None and items[s.item_id].split in trainable and s.item_id not in labelled:
                pseudo_rows.append(
                    PseudoLabel(
                        item_id=s.item_id, model_version=version, payload={"target": target}, confidence=s.confidence
                    )
                )
    with transaction.atomic():
        Prediction.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["item", "model_version"],
            update_fields=["output", "uncertainty", "uncertainty_detail", "confidence", "embedding"],
            batch_size=1000,
        )
        PseudoLabel.objects.filter(model_version=version, item_id__in=[s.item_id for s in scores]).delete()
        PseudoLabel.objects.bulk_create(pseudo_rows, batch_size=1000)
    return len(pseudo_rows)


def queue_ranker(project: Project) -> ModelVersion | None:
    """Return the model version whose scores order the project's queue, or None (cold start).

    The champion; before the first champion, the project's newest model version once it has been judged and
    rejected (a candidate is about to become champion; a version still being judged ranks nothing yet).
    """
    champion = ModelVersion.objects.filter(project=project, status=ModelStatus.CHAMPION).first()
    if champion is not None:
        return champion
    newest = ModelVersion.objects.filter(project=project).order_by("-number").first()
    return newest if newest is not None and newest.status == ModelStatus.REJECTED else None


def scoring_finish(*, job: Job, version: ModelVersion, scored: int) -> int:
    """Promote the scored candidate if it still should be, re-rank the queue on the ranker's scores, finish.

    The ranker is the champion, or before the first one the newest (rejected) model version: see `queue_ranker`.

    One transaction under the project row lock: promotion, the new queue order and the job's end commit
    together or not at all.
    """
    project = version.project
    with transaction.atomic():
        Project.objects.lock(project.pk)
        version.refresh_from_db()
        champion = ModelVersion.objects.filter(project=project, status=ModelStatus.CHAMPION).first()
        promotion = None
        if version.status == ModelStatus.CANDIDATE:
            promotion = _promote(version, champion)
        ranker = queue_ranker(project)
        reranked = ranker is not None and ranker.pk == version.pk
        if reranked:
            queue_rerank(project=project, version=version, seed=job.pk)
        pseudo = PseudoLabel.objects.filter(model_version=version).count()
        job_finish(
            job=job,
            model_version=version,
            result={
                "model_version": version.number,
                "scored": scored,
                "pseudo_labels": pseudo,
                "promoted": bool(promotion and promotion[0]),
                "promotion_rule": promotion[1] if promotion else None,
                "reranked": reranked,
                "provisional": reranked and version.status != ModelStatus.CHAMPION,
            },
        )
        leads_event_send(
            project.pk,
            {"event": "scored", "model_version": version.number, "items": scored, "pseudo_labels": pseudo},
        )
    return scored


def _promote(version: ModelVersion, champion: ModelVersion | None) -> tuple[bool, str]:
    """Make the candidate champion if the champion it beat still reigns; otherwise reject it, saying why."""
    if (champion.pk if champion else None) != version.compared_with_id:
        now = f"v{champion.number}" if champion else "no champion"
        before = f"v{version.compared_with.number}" if version.compared_with else "no champion"
        rule = f"not promoted: it beat {before}, but {now} reigns now; the next round compares again"
        model_version_move(version=version, to=ModelStatus.REJECTED, rule=rule)
        return False, rule
    rule = version.decision_rule or "promoted"
    if champion is not None:
        model_version_move(version=champion, to=ModelStatus.RETIRED, rule=f"retired: v{version.number} promoted")
    model_version_move(version=version, to=ModelStatus.CHAMPION, rule=rule)
    return True, rule
