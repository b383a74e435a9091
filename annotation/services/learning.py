"""Training and scoring jobs end to end: build the request, run it on an executor, register what came back.

The executor (`gpu_workers.executors`) is passed in: Ray in the worker process, inline in tests. Nothing is
written until the worker has finished: a failed or killed job leaves no model version, no weights file and
no predictions behind, and the champion stays as it was.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import (
    Job,
    JobKind,
    ModelStatus,
    ModelVersion,
    Prediction,
    Project,
    PseudoLabel,
    Split,
    TrainingExample,
)
from annotation.project_settings import parse_settings
from annotation.services.jobs import job_enqueue, job_fail, job_finish, job_report, project_event_send
from annotation.services.splits import splits_fill
from annotation.training_data import item_ref, media_root, training_set, unlabelled_items
from learning.tasks import (
    Example,
    HyperparameterError,
    ItemScore,
    ScoreRequest,
    TrainOutcome,
    TrainRequest,
    task_class,
)

SCORE_BATCH = 16


class LearningInputError(ValueError):
    """A training request is wrong; `field` names the bad value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ExecutorLike(Protocol):
    def submit(self, request: Any, key: str) -> Any: ...
    def poll(self, handle: Any, timeout: float = 1.0) -> Any: ...
    def cancel(self, handle: Any) -> None: ...


# ---------------------------------------------------------------------------------------------------- requests
def training_request(*, project: Project, by, family: str | None = None, hparams: dict | None = None) -> Job:
    """Queue a training job for the project ("Retrain now"); refuse bad parameters and a second active one."""
    spec = task_class(project.task_type)
    if family is not None and family not in spec.families:
        raise LearningInputError("family", f"must be one of {', '.join(spec.families)} for this task")
    settings = parse_settings(project.task_type, project.settings)
    merged = {**settings.training_hparams, **(hparams or {})}
    try:
        spec.params_class.parse(merged)
    except HyperparameterError as error:
        raise LearningInputError(f"hparams.{error.field}", str(error).split(": ", 1)[-1]) from None
    return job_enqueue(project=project, kind=JobKind.TRAIN, params={"family": family, "hparams": merged}, by=by)


def scoring_request(*, version: ModelVersion, by=None) -> Job:
    """Queue a scoring job of the project's unlabelled items with this model version."""
    if not version.weights_path:
        raise LearningInputError("model_version", "this model version has no weights file")
    job = job_enqueue(
        project=version.project, kind=JobKind.SCORE, params={"model_version": version.pk}, by=by, exclusive=False
    )
    Job.objects.filter(pk=job.pk).update(model_version=version)
    job.model_version = version
    return job


# ---------------------------------------------------------------------------------------------------- running
def _wait(job: Job, executor: ExecutorLike, request: Any, poll_seconds: float, on_progress: Callable | None):
    """Submit the request and poll it to the end, recording progress; return (result, error)."""
    handle = executor.submit(request, key=str(job.pk))
    while True:
        polled = executor.poll(handle, timeout=poll_seconds)
        job_report(job=job, reports=polled.progress)
        if on_progress and polled.progress:
            on_progress(polled.progress)
        if polled.done:
            return polled.result, polled.error


def weights_file(project: Project, number: int) -> Path:
    return Path(django_settings.MEDIA_ROOT) / "models" / project.slug / f"v{number}-{secrets.token_hex(4)}.pt"


def training_run(
    *, job: Job, executor: ExecutorLike, poll_seconds: float = 1.0, on_progress: Callable | None = None
) -> ModelVersion | None:
    """Run a claimed training job: splits, data, train on the executor, register and maybe promote.

    Returns the new model version, or None when the job failed (the error is on the job).
    """
    project = job.project
    spec = task_class(project.task_type)
    splits_fill(project=project)
    data = training_set(project)
    params = spec.params_class.parse(job.params.get("hparams") or {})
    family = job.params.get("family") or spec.choose_family(data.human_train, params)
    if data.human_train == 0:
        job_fail(job=job, error="no labelled training items yet: label some items of the training split first")
        return None
    champion = ModelVersion.objects.filter(project=project, status=ModelStatus.CHAMPION).first()
    champion_weights = _read_weights(champion) if champion else None
    request = TrainRequest(
        task=project.task_type,
        family=family,
        hparams=params.as_json(),
        train=data.train,
        validation=data.validation,
        test=data.test,
        media_root=media_root(),
        seed=job.pk,
        champion_weights=champion_weights,
    )
    outcome, error = _wait(job, executor, request, poll_seconds, on_progress)
    if error is not None:
        job_fail(job=job, error=f"training failed: {error}")
        return None
    if not isinstance(outcome, TrainOutcome):
        job_fail(job=job, error=f"training returned {type(outcome).__name__}, not a trained model")
        return None
    version = model_version_register(job=job, request=request, outcome=outcome, parent=champion, disputed=data.disputed)
    promoted, reason = model_version_promote_if_better(version=version, primary=spec.primary_metric)
    job_finish(job=job, model_version=version, result={
        "model_version": version.number,
        "family": version.family,
        "promoted": promoted,
        "promotion_rule": reason,
        "metrics": version.metrics,
    })
    if promoted:  # the new champion re-scores the unlabelled items
        scoring_request(version=version)
    return version


def _read_weights(version: ModelVersion) -> bytes | None:
    path = Path(django_settings.MEDIA_ROOT) / version.weights_path
    return path.read_bytes() if version.weights_path and path.is_file() else None


def model_version_register(
    *, job: Job, request: TrainRequest, outcome: TrainOutcome, parent: ModelVersion | None, disputed: int = 0
) -> ModelVersion:
    """Write the weights file, then the version row and its exact training set, all or nothing.

    Locks the project row to number versions without gaps or duplicates. If the database write fails the
    weights file is removed again, so no file exists without its version and no version without its file.
    """
    project = job.project
    path: Path | None = None
    try:
        with transaction.atomic():
            Project.objects.select_for_update().filter(pk=project.pk).first()
            number = (ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
            path = weights_file(project, number)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".partial")
            temporary.write_bytes(outcome.weights)
            os.replace(temporary, path)
            metrics = {**outcome.metrics, "history": outcome.history, "seconds": round(outcome.seconds, 2),
                       "disputed_items": disputed}
            version = ModelVersion.objects.create(
                project=project,
                number=number,
                family=outcome.family,
                status=ModelStatus.CANDIDATE,
                parent=parent,
                hyperparameters=outcome.hparams,
                metrics=_json_safe(metrics),
                weights_path=str(path.relative_to(django_settings.MEDIA_ROOT)),
                device=outcome.device,
                trained_at=timezone.now(),
            )
            TrainingExample.objects.bulk_create(
                [_training_example(version, example) for example in (*request.train, *request.validation,
                                                                    *request.test)],
                batch_size=1000,
            )
    except BaseException:
        if path is not None:
            path.unlink(missing_ok=True)
            path.with_suffix(".partial").unlink(missing_ok=True)
        raise
    return version


def _training_example(version: ModelVersion, example: Example) -> TrainingExample:
    return TrainingExample(
        model_version=version,
        item_id=example.ref.item_id,
        label_id=example.label_id,
        pseudo_label_id=example.pseudo_label_id,
        ica_reference_id=example.ica_reference_id,
        split=example.split,
    )


def _json_safe(value: Any) -> Any:
    """Replace nan/inf (not valid JSON) with None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def promotion_decision(metrics: dict[str, Any], primary: str, has_champion: bool) -> tuple[bool, str]:
    """Return whether a candidate replaces the champion, and the rule applied, in words a lead can read.

    Both are evaluated in the same job on the same held-out test items; the candidate must be strictly better.
    """
    if not has_champion:
        return True, "no champion yet: the first model becomes champion"
    test, champion = metrics.get("test") or {}, metrics.get("champion_test") or {}
    mine, theirs = test.get(primary), champion.get(primary)
    if mine is None or theirs is None:
        return False, f"kept the champion: the held-out test set has no labelled items to compare {primary} on"
    if mine > theirs:
        return True, f"test {primary} {mine:.3f} beats the champion's {theirs:.3f} on the same {test.get('n')} items"
    return False, f"kept the champion: test {primary} {mine:.3f} does not beat its {theirs:.3f}"


def model_version_promote_if_better(*, version: ModelVersion, primary: str) -> tuple[bool, str]:
    """Promote the candidate to champion when `promotion_decision` says so; retire the old champion."""
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=version.project_id).first()
        champion = ModelVersion.objects.filter(project_id=version.project_id, status=ModelStatus.CHAMPION).first()
        promote, reason = promotion_decision(version.metrics, primary, champion is not None)
        version.metrics = {**version.metrics, "promotion": {"promoted": promote, "rule": reason}}
        if promote:
            if champion is not None:
                ModelVersion.objects.filter(pk=champion.pk).update(status=ModelStatus.RETIRED)
            version.status = ModelStatus.CHAMPION
            version.promoted_at = timezone.now()
        version.save(update_fields=["metrics", "status", "promoted_at"])
        project_event_send(version.project_id, {
            "event": "model", "model_version": version.number, "status": version.status, "rule": reason,
        })
    return promote, reason


def scoring_run(
    *, job: Job, executor: ExecutorLike, poll_seconds: float = 1.0, on_progress: Callable | None = None
) -> int | None:
    """Run a claimed scoring job: score unlabelled items, store predictions and pseudo-labels in one go.

    Returns the number of items scored, or None when the job failed (nothing is written then).
    """
    version = ModelVersion.objects.select_related("project").get(pk=job.params["model_version"])
    project = version.project
    weights = _read_weights(version)
    if weights is None:
        job_fail(job=job, error=f"model v{version.number}: weights file {version.weights_path!r} is missing")
        return None
    items = {item.pk: item for item in unlabelled_items(project)}
    request = ScoreRequest(
        task=project.task_type,
        weights=weights,
        refs=tuple(item_ref(item) for item in items.values()),
        media_root=media_root(),
        batch_size=SCORE_BATCH,
        seed=job.pk,
    )
    scores, error = _wait(job, executor, request, poll_seconds, on_progress)
    if error is not None:
        job_fail(job=job, error=f"scoring failed: {error}")
        return None
    settings = parse_settings(project.task_type, project.settings)
    pseudo = predictions_store(version=version, scores=scores, items=items,
                               pseudo_threshold=settings.pseudo_label_threshold)
    job_finish(job=job, model_version=version, result={
        "model_version": version.number, "scored": len(scores), "pseudo_labels": pseudo,
    })
    return len(scores)


def predictions_store(
    *, version: ModelVersion, scores: list[ItemScore], items: dict, pseudo_threshold: float | None
) -> int:
    """Upsert one prediction per scored item and, when enabled, pseudo-labels for confident training items.

    One transaction: readers see the previous scores or all of the new ones. Returns the pseudo-label count.
    """
    spec = task_class(version.project.task_type)
    rows = [
        Prediction(
            item_id=s.item_id,
            model_version=version,
            output=_json_safe(s.output),
            uncertainty=s.uncertainty if math.isfinite(s.uncertainty) else None,
            uncertainty_detail=_json_safe(s.detail),
            confidence=s.confidence,
            embedding=list(s.embedding) if s.embedding is not None else None,
        )
        for s in scores
    ]
    pseudo_rows = []
    if pseudo_threshold is not None:
        trainable = (Split.TRAIN, Split.UNASSIGNED)
        task = spec(media_root())
        for s in scores:
            target = task.pseudo_target(s, pseudo_threshold)
            if target is not None and items[s.item_id].split in trainable:
                pseudo_rows.append(PseudoLabel(item_id=s.item_id, model_version=version,
                                               payload={"target": target}, confidence=s.confidence))
    with transaction.atomic():
        Prediction.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["item", "model_version"],
            update_fields=["output", "uncertainty", "uncertainty_detail", "confidence", "embedding"],
            batch_size=1000,
        )
        PseudoLabel.objects.filter(model_version=version).delete()
        PseudoLabel.objects.bulk_create(pseudo_rows, batch_size=1000)
        project_event_send(version.project_id, {
            "event": "scored", "model_version": version.number, "items": len(rows), "pseudo_labels": len(pseudo_rows),
        })
    return len(pseudo_rows)


def job_run(*, job: Job, executor: ExecutorLike, poll_seconds: float = 1.0) -> None:
    """Run one claimed job to the end by its kind; unexpected errors fail the job with their message."""
    runners = {JobKind.TRAIN: training_run, JobKind.SCORE: scoring_run}
    runner = runners.get(job.kind)
    if runner is None:
        job_fail(job=job, error=f"this worker does not run {job.kind} jobs")
        return
    started = time.monotonic()
    try:
        runner(job=job, executor=executor, poll_seconds=poll_seconds)
    except Exception as error:  # noqa: BLE001 — the job must end failed, with the reason, never stay running
        job_fail(job=job, error=f"{type(error).__name__}: {error}")
    finally:
        job.refresh_from_db(fields=["detail"])
        wall = round(time.monotonic() - started, 1)
        Job.objects.filter(pk=job.pk).update(detail={**job.detail, "wall_seconds": wall})
