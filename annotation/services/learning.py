"""Training jobs end to end: build the request, run it on an executor, register the candidate it returns.

The executor (`gpu_workers.executors`) is passed in: Ray in the worker process, inline in tests. Nothing is
written until the worker has finished: a failed or killed training leaves no model version and no weights
file behind, and the champion, its scores and the queue stay as they were. A candidate that beats the
champion on the held-out test set is only promoted once it has scored every unlabelled item
(`annotation.services.scoring`), in the same transaction that re-ranks the queue.
"""

from __future__ import annotations

import io
import math
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from annotation.models import Job, JobKind, ModelStatus, ModelVersion, Project, Split, TrainingExample
from annotation.project_settings import ProjectSettings, parse_settings
from annotation.services.jobs import job_enqueue, job_fail, job_finish, job_project, job_report
from annotation.services.lifecycle import model_version_move
from annotation.services.splits import splits_fill
from annotation.tasks import label_task
from annotation.training_data import media_root, training_set
from learning.tasks import Example, HyperparameterError, TrainOutcome, TrainRequest


class LearningInputError(ValueError):
    """A training request is wrong; `field` names the bad value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ExecutorLike(Protocol):
    def submit(self, request: Any, key: str) -> Any: ...
    def poll(self, handle: Any, timeout: float = 1.0) -> Any: ...
    def cancel(self, handle: Any) -> None: ...
    def score_stream(
        self, template: Any, chunks: Any, *, key: str, count: int | None = None, poll_seconds: float = 1.0
    ) -> Any: ...


# ---------------------------------------------------------------------------------------------------- requests
def training_request(
    *, project: Project, by, family: str | None = None, hparams: dict | None = None, reason: str = ""
) -> Job:
    """Queue a training job ("Retrain now", or a policy's `reason`); refuse bad parameters and a second round."""
    spec = label_task(project.task_type).learning()
    if family is not None and family not in spec.families:
        raise LearningInputError("family", f"must be one of {', '.join(spec.families)} for this task")
    settings = parse_settings(project.task_type, project.settings)
    merged = {**settings.training_hparams, **(hparams or {})}
    try:
        spec.params_class.parse(merged)
    except HyperparameterError as error:
        raise LearningInputError(f"hparams.{error.field}", str(error).split(": ", 1)[-1]) from None
    # One training round at a time: a trained candidate that is still scoring before promotion counts.
    return job_enqueue(
        project=project,
        kind=JobKind.TRAIN,
        params={"family": family, "hparams": merged, "reason": reason or ("retrain now" if by else "")},
        by=by,
        conflicts=Q(kind=JobKind.TRAIN) | Q(kind=JobKind.SCORE, model_version__status=ModelStatus.CANDIDATE),
    )


# ---------------------------------------------------------------------------------------------------- running
def run_on_executor(
    job: Job,
    executor: ExecutorLike,
    request: Any,
    poll_seconds: float,
    on_progress: Callable | None = None,
    adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
):
    """Submit the request and poll it to the end, recording progress; return (result, error).

    `adjust` rewrites each progress report first (a batch's done/total into the whole job's).
    """
    handle = executor.submit(request, key=str(job.pk))
    while True:
        polled = executor.poll(handle, timeout=poll_seconds)
        reports = [adjust(r) for r in polled.progress] if adjust else polled.progress
        job_report(job=job, reports=reports)
        if on_progress and reports:
            on_progress(reports)
        if polled.done:
            return polled.result, polled.error


def weights_file(project: Project, number: int) -> Path:
    return Path(django_settings.MEDIA_ROOT) / "models" / project.slug / f"v{number}-{secrets.token_hex(4)}.pt"


def training_run(
    *, job: Job, executor: ExecutorLike, poll_seconds: float = 1.0, on_progress: Callable | None = None
) -> ModelVersion | None:
    """Run a claimed training job: splits, data, train on the executor, register the candidate and judge it.

    Returns the new model version, or None when the job failed (the error is on the job).
    """
    project = job_project(job)
    spec = label_task(project.task_type).learning()
    splits_fill(project=project)
    data = training_set(project)
    params = spec.params_class.parse(job.params.get("hparams") or {})
    family = job.params.get("family") or spec.choose_family(data.human_train, params)
    if data.human_train == 0:
        job_fail(job=job, error="no labelled training items yet: label some items of the training split first")
        return None
    champion = ModelVersion.objects.filter(project=project, status=ModelStatus.CHAMPION).first()
    champion_weights = read_weights(champion) if champion else None
    settings = parse_settings(project.task_type, project.settings)
    # Data-parallel only for a family trained in epochs; one fitted in a single step has nothing to spread.
    workers = 1 if spec(media_root()).fits_directly(family) else training_workers(settings)
    checkpoints = Path(media_root()) / "checkpoints" / str(job.pk)
    request = TrainRequest(
        task=project.task_type,
        family=family,
        hparams=params.as_json(),
        train=data.train,
        validation=data.validation,
        test=data.test,
        media_root=media_root(),
        seed=settings.training_seed,
        champion_weights=champion_weights,
        workers=workers,
        checkpoint_dir=str(checkpoints) if workers > 1 else "",
        **pretrained_start(project, settings),
    )
    outcome, error = run_on_executor(job, executor, request, poll_seconds, on_progress)
    if workers > 1:  # the epoch checkpoints served the run; a retry of a failed job starts afresh
        shutil.rmtree(checkpoints, ignore_errors=True)
    if error is not None:
        job_fail(job=job, error=f"training failed: {error}")
        return None
    if not isinstance(outcome, TrainOutcome):
        job_fail(job=job, error=f"training returned {type(outcome).__name__}, not a trained model")
        return None
    version = model_version_register(job=job, request=request, outcome=outcome, parent=champion, disputed=data.disputed)
    wins, rule = candidate_judge(version=version, primary=spec.primary_metric, champion=champion)
    job_finish(
        job=job,
        model_version=version,
        result={
            "model_version": version.number,
            "family": version.family,
            "wins": wins,
            "promotion_rule": rule,
            "metrics": version.metrics,
        },
    )
    # A winner is promoted once it has scored every unlabelled item, together with the new queue order. Before the
    # first champion, a loser scores them too, to rank the queue and for nothing else (scoring.queue_ranker).
    if wins or champion is None:
        scoring_request(version=version)
    return version


def pretrained_start(project: Project, settings: ProjectSettings) -> dict[str, Any]:
    """The `TrainRequest` fields that start training from the project's newest frame-interpolation encoder.

    Empty when the project does not ask for it or has no interpolation model yet; the task loads the encoder
    into the networks it fits (the vessel video networks) and records the source in the model's metrics.
    """
    if not settings.pretrain_from_interpolation:
        return {}
    import torch  # only the worker process gets here: the web process never loads torch for it

    from annotation.services.interpolation import interpolation_model_latest, interpolation_model_load

    row = interpolation_model_latest(project=project)
    if row is None:
        return {}
    buffer = io.BytesIO()
    torch.save(interpolation_model_load(row).encoder_state(), buffer)
    return {"init_weights": buffer.getvalue(), "init_source": f"interpolation model {row.pk}"}


def training_workers(settings: ProjectSettings) -> int:
    """The data-parallel workers a project's training asks for: its own setting, else the server's."""
    return settings.training_workers or max(1, django_settings.LUMEN_TRAINING_WORKERS)


def read_weights(version: ModelVersion) -> bytes | None:
    path = Path(django_settings.MEDIA_ROOT) / version.weights_path
    return path.read_bytes() if version.weights_path and path.is_file() else None


def model_version_register(
    *, job: Job, request: TrainRequest, outcome: TrainOutcome, parent: ModelVersion | None, disputed: int = 0
) -> ModelVersion:
    """Write the weights file, then the version row and its exact training set, all or nothing.

    Locks the project row to number versions without gaps or duplicates. If the database write fails the
    weights file is removed again, so no file exists without its version and no version without its file.
    """
    project = job_project(job)
    path: Path | None = None
    try:
        with transaction.atomic():
            Project.objects.lock(project.pk)
            number = (ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
            path = weights_file(project, number)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".partial")
            temporary.write_bytes(outcome.weights)
            os.replace(temporary, path)
            metrics = {
                **outcome.metrics,
                "history": outcome.history,
                "seconds": round(outcome.seconds, 2),
                "disputed_items": disputed,
            }
            version = ModelVersion.objects.create(
                project=project,
                number=number,
                family=outcome.family,
                status=ModelStatus.TRAINED,
                parent=parent,
                hyperparameters=outcome.hparams,
                metrics=json_safe(metrics),
                weights_path=str(path.relative_to(django_settings.MEDIA_ROOT)),
                device=outcome.device,
                trained_at=timezone.now(),
            )
            TrainingExample.objects.bulk_create(
                [
                    _training_example(version, example)
                    for example in (*request.train, *request.validation, *request.test)
                ],
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


def json_safe(value: Any) -> Any:
    """Replace nan/inf (not valid JSON) with None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _interval_text(result: dict[str, Any]) -> str:
    low, high = result.get("interval") or (None, None)
    if low is None or high is None:
        return "interval undefined"
    confidence = round(100 * result.get("confidence", 0.9))
    patients = result.get("patients")
    over = f", resampling items and {patients} patients" if patients else ""
    if result.get("classes"):
        over += f", each resample holding all {result['classes']} classes"
    return f"difference {result['difference']:+.3f}, {confidence} % CI [{low:+.3f}, {high:+.3f}]{over}"


def _beyond_noise(result: dict[str, Any]) -> bool:
    low = (result.get("interval") or (None, None))[0]
    return low is not None and low > 0


def _not_worse(result: dict[str, Any]) -> bool:
    """Whether the interval of the difference reaches zero or above: the candidate is not shown worse."""
    high = (result.get("interval") or (None, None))[1]
    return high is not None and high >= 0


def promotion_decision(
    metrics: dict[str, Any],
    primary: str,
    has_champion: bool,
    min_test_items: int = 10,
    refresh: tuple[int, int] | None = None,
) -> tuple[bool, str]:
    """Return whether a candidate replaces the champion, and the rule applied, in words a lead can read.

    Decided on the locked test set only, by paired bootstrap on the same items (a one-sided test at 5 %; the
    interval is the wider of resampling items and resampling patients, whose runs or frames move together):
    the first model must beat the task's trivial baseline beyond noise; a later one, which the champion (itself
    past that gate) stands between, must not be worse than the baseline beyond noise and must beat the champion:
    by its primary metric, or, where it is not worse than the champion's on that metric beyond noise, by
    the task's proper scoring rule (log loss) on the same items. `refresh` (the champion's and the candidate's
    human training labels) is given when the candidate refits the champion's own model family on enough more
    labels: it then replaces the champion unless the test set finds it worse beyond noise, on the primary metric
    or the proper scoring rule. A test set of a few dozen items cannot show the last points a near-perfect model
    gains from more labels, and an older fit kept for want of that evidence is what fresh data contradicts. Fewer
    than `min_test_items` labelled test items is not enough evidence to decide either way.
    """
    comparison = metrics.get("comparison") or {}
    baseline = comparison.get("baseline") or {}
    name = (metrics.get("baseline_test") or {}).get("name") or "trivial baseline"
    n = baseline.get("n") or 0
    if n < min_test_items:
        return False, (
            f"not enough evidence: {n} labelled test item(s), {min_test_items} needed before a model is promoted "
            "(the test set is labelled through its own random hand-outs)"
        )
    if not has_champion and not _beyond_noise(baseline):
        return False, (
            f"not promoted: test {primary} {baseline.get('candidate') or 0:.3f} does not beat the {name} "
            f"({baseline.get('other') or 0:.3f}) beyond noise on {n} test items ({_interval_text(baseline)})"
        )
    if not _not_worse(baseline):
        return False, (
            f"not promoted: test {primary} {baseline.get('candidate') or 0:.3f} is worse than the {name} "
            f"({baseline.get('other') or 0:.3f}) beyond noise on {n} test items ({_interval_text(baseline)})"
        )
    if not has_champion:
        return True, (
            f"first model: test {primary} {baseline['candidate']:.3f} beats the {name} ({baseline['other']:.3f}) "
            f"on the same {n} test items ({_interval_text(baseline)}, paired bootstrap)"
        )
    champion = comparison.get("champion") or {}
    m = champion.get("n") or 0
    if m < min_test_items:
        return False, (
            f"kept the champion: not enough evidence ({m} test items both models scored, {min_test_items} needed)"
        )
    if _beyond_noise(champion):
        return True, (
            f"test {primary} {champion['candidate']:.3f} beats the champion's {champion['other']:.3f} on the same "
            f"{m} items beyond noise ({_interval_text(champion)}, paired bootstrap)"
        )
    mine, theirs = champion.get("candidate") or 0.0, champion.get("other") or 0.0
    proper = champion.get("proper") or {}
    if _not_worse(champion) and _beyond_noise(proper):
        # Level on the primary metric within noise (often: a few test items both get wrong, and a near-perfect
        # champion leaves no room to show more), but the candidate's probabilities are better on the same items
        # beyond noise, by a proper scoring rule.
        return True, (
            f"test {primary} {mine:.3f} vs the champion's {theirs:.3f} is not worse beyond noise "
            f"({_interval_text(champion)}), and test {proper['metric']} {proper['candidate']:.3f} beats its "
            f"{proper['other']:.3f} on the same {m} items beyond noise ({_interval_text(proper)}, paired bootstrap)"
        )
    if refresh is not None and _not_worse(champion) and (not proper or _not_worse(proper)):
        before, after = refresh
        worse_proper = f", test {proper['metric']} not worse either ({_interval_text(proper)})" if proper else ""
        return True, (
            f"refit of the champion's model on {after} human labels (it had {before}): test {primary} {mine:.3f} vs "
            f"its {theirs:.3f} on the same {m} items is not worse beyond noise ({_interval_text(champion)})"
            f"{worse_proper}"
        )
    if refresh is not None and _not_worse(champion):  # the refit fails on its probabilities alone: say so
        return False, (
            f"kept the champion: the refit on {refresh[1]} human labels (it had {refresh[0]}) is level on test "
            f"{primary} ({mine:.3f} vs {theirs:.3f}, {_interval_text(champion)}), but its test {proper['metric']} "
            f"{proper['candidate']:.3f} is worse than the champion's {proper['other']:.3f} on the same {m} items "
            f"beyond noise ({_interval_text(proper)})"
        )
    return False, (
        f"kept the champion: test {primary} {mine:.3f} vs its {theirs:.3f} "
        f"on the same {m} items is within noise ({_interval_text(champion)})"
    )


def human_training_labels(version: ModelVersion) -> int:
    """Return how many human labels a version trained or validated on (pseudo-labels and test items excluded)."""
    return version.training_examples.filter(label__isnull=False).exclude(split=Split.TEST).count()


def refit_growth(version: ModelVersion, champion: ModelVersion | None, growth: float | None) -> tuple[int, int] | None:
    """Return (champion's, candidate's) human training labels when the candidate refits the champion's family
    on at least `growth` more of them, else None."""
    if champion is None or growth is None or champion.family != version.family:
        return None
    before, after = human_training_labels(champion), human_training_labels(version)
    return (before, after) if after >= before * (1 + growth) and after > before else None


def candidate_judge(*, version: ModelVersion, primary: str, champion: ModelVersion | None) -> tuple[bool, str]:
    """Record whether the candidate beats the champion it was compared with; a loser is rejected at once."""
    settings = parse_settings(version.project.task_type, version.project.settings)
    wins, rule = promotion_decision(
        version.metrics,
        primary,
        champion is not None,
        min_test_items=settings.promotion_min_test_items,
        refresh=refit_growth(version, champion, settings.promotion_refresh_growth),
    )
    to = ModelStatus.CANDIDATE if wins else ModelStatus.REJECTED
    model_version_move(version=version, to=to, rule=rule, compared_with=champion)
    return wins, rule


def scoring_request(*, version: ModelVersion, by=None) -> Job:
    """Queue a scoring job of the project's unlabelled items with this model version.

    A candidate (a version that beat the champion) becomes champion when its scoring ends, if the champion it
    beat still reigns, and the queue is re-ranked on its scores in the same transaction. Before the first
    champion, the newest (rejected) version's scores rank the queue the same way.
    """
    if not version.weights_path:
        raise LearningInputError("model_version", "this model version has no weights file")
    job = job_enqueue(
        project=version.project,
        kind=JobKind.SCORE,
        params={"model_version": version.pk},
        by=by,
        exclusive=False,
    )
    Job.objects.filter(pk=job.pk).update(model_version=version)
    job.model_version = version
    return job
