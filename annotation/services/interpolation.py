"""Cine frame interpolation jobs (seed 001): queue one, train on the workers, keep the network and its evaluation.

Every usable cine run of the project is training data without labels. The held-out patients are the project's
test split (`splits_fill` first, as a training round does), so a network whose encoder later initialises the
vessel-type model has never seen a test patient's frames; a project without test patients holds out a keyed hash
of its patients instead. The worker gets file references (`learning.interpolation.InterpolationRequest`), trains on
the other patients' runs and evaluates on the held-out ones; nothing is written until it has finished, and then
the weights file (temp file + rename) and its `InterpolationModel` row come together.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet

from annotation.models import BurnedInReview, InterpolationModel, Item, ItemKind, Job, JobKind, Project, Role, Split
from annotation.project_settings import parse_settings
from annotation.selectors import project_role
from annotation.services.jobs import ACTIVE, job_enqueue, job_fail, job_finish, job_project
from annotation.services.learning import ExecutorLike, LearningInputError, json_safe, run_on_executor
from annotation.services.splits import splits_fill
from annotation.training_data import media_root
from learning.interpolation import (
    InterpolationOutcome,
    InterpolationParams,
    InterpolationParamsError,
    InterpolationRequest,
    RunRef,
    interpolation_weights_load,
    split_by_patient,
)
from learning.models.interpolation import FrameInterpolator

# One run to train on and one held out, of two different patients.
MIN_RUNS = 2
MIN_PATIENTS = 2


def interpolation_runs(project: Project) -> QuerySet[Item]:
    """Return the project's cine runs an interpolator may learn from: at least 3 frames, not excluded by a lead,
    and not waiting for (or excluded by) a burned-in text review."""
    return (
        Item.objects.filter(
            project=project, kind=ItemKind.CINE_RUN, excluded_at__isnull=True, instance__number_of_frames__gte=3
        )
        .exclude(instance__burned_in_review__in=(BurnedInReview.PENDING, BurnedInReview.EXCLUDED))
        .select_related("instance")
        .order_by("pk")
    )


def interpolation_run_counts(project: Project) -> dict[str, int]:
    """Return how many usable runs and patients the project has for frame interpolation."""
    rows = list(interpolation_runs(project).values_list("patient_id", flat=True))
    return {"runs": len(rows), "patients": len(set(rows)), "needed_runs": MIN_RUNS, "needed_patients": MIN_PATIENTS}


def _enough(counts: dict[str, int]) -> str | None:
    if counts["runs"] >= MIN_RUNS and counts["patients"] >= MIN_PATIENTS:
        return None
    return (
        f"frame interpolation needs at least {MIN_RUNS} usable cine runs (3 frames or more, not excluded, not held "
        f"for burned-in text) from at least {MIN_PATIENTS} patients, one side to train on and one held out; this "
        f"project has {counts['runs']} run(s) from {counts['patients']} patient(s)"
    )


def interpolation_train_request(*, project: Project, user, params: dict[str, Any] | None = None) -> Job:
    """Queue a frame-interpolation training job (leads only; one queued or running per project).

    Refuses (LearningInputError, naming the field) bad parameters and a project with too few runs to train on one
    patient and evaluate on another; JobConflict while one is queued or running.
    """
    if project_role(project, user) != Role.LEAD:
        raise PermissionDenied("Only the project's leads can train a frame interpolator.")
    try:
        checked = InterpolationParams.parse(params)
    except InterpolationParamsError as error:
        raise LearningInputError(error.field, str(error).split(": ", 1)[-1]) from None
    except TypeError as error:
        raise LearningInputError("params", str(error)) from None
    problem = _enough(interpolation_run_counts(project))
    if problem:
        raise LearningInputError("runs", problem)
    return job_enqueue(project=project, kind=JobKind.INTERPOLATE, params={"params": checked.as_json()}, by=user)


def interpolation_request_build(*, project: Project, params: InterpolationParams) -> InterpolationRequest:
    """Return the worker's request: the usable runs split by patient into training and held-out runs.

    Fills the project's splits first (by patient, as a training round does), then holds out the test patients.
    """
    splits_fill(project=project)
    runs = list(interpolation_runs(project))
    test_patients = {str(item.patient_id) for item in runs if item.split == Split.TEST}
    seed = parse_settings(project.task_type, project.settings).split_seed
    train, held = split_by_patient(
        [str(item.patient_id) for item in runs], held_out=test_patients, key=f"interpolation:{project.pk}:{seed}"
    )
    source = "the project's held-out test split" if test_patients else "a keyed hash of the patients (no test split)"

    def ref(item: Item) -> RunRef:
        return RunRef(item_id=item.pk, path=item.dicom.file_path, patient=str(item.patient_id))

    return InterpolationRequest(
        train=tuple(ref(runs[i]) for i in train),
        held_out=tuple(ref(runs[i]) for i in held),
        media_root=media_root(),
        params=params,
        held_out_source=source,
    )


def interpolation_run(*, job: Job, executor: ExecutorLike, poll_seconds: float = 1.0) -> InterpolationModel | None:
    """Run a claimed interpolation job: build the request, train on the executor, store the network.

    Returns the stored model, or None when the job failed (the error is on the job).
    """
    project = job_project(job)
    params = InterpolationParams.parse(job.params.get("params"))
    problem = _enough(interpolation_run_counts(project))
    if problem:  # runs excluded since the job was queued
        job_fail(job=job, error=problem)
        return None
    request = interpolation_request_build(project=project, params=params)
    if not request.train:
        job_fail(job=job, error="every usable run belongs to a held-out test patient: no run is left to train on")
        return None
    outcome, error = run_on_executor(job, executor, request, poll_seconds)
    if error is not None:
        job_fail(job=job, error=f"interpolation training failed: {error}")
        return None
    if not isinstance(outcome, InterpolationOutcome):
        job_fail(job=job, error=f"interpolation training returned {type(outcome).__name__}, not a trained network")
        return None
    return interpolation_model_store(job=job, outcome=outcome)


def interpolation_weights_file(project: Project, job: Job) -> Path:
    return Path(django_settings.MEDIA_ROOT) / "interpolation" / project.slug / f"{job.pk}.pt"


def interpolation_model_store(*, job: Job, outcome: InterpolationOutcome) -> InterpolationModel:
    """Write the weights (temp file, then rename), then the model row and the job's end, all or nothing.

    If the database write fails the weights file is removed again: no file without its row, no row without its file.
    """
    project = job_project(job)
    path = interpolation_weights_file(project, job)
    temporary = path.with_suffix(".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(outcome.weights)
        os.replace(temporary, path)
        metrics = json_safe({**outcome.metrics, "history": outcome.history, "seconds": round(outcome.seconds, 2)})
        with transaction.atomic():
            row = InterpolationModel.objects.create(
                project=project,
                job=job,
                weights_path=str(path.relative_to(django_settings.MEDIA_ROOT)),
                architecture=outcome.architecture,
                metrics=metrics | {"device": outcome.device},
            )
            job_finish(
                job=job,
                result={
                    "interpolation_model": row.pk,
                    "clips": metrics["clips"],
                    "triplets": metrics["triplets"],
                    "resolution": metrics["resolution"],
                },
            )
    except BaseException:
        path.unlink(missing_ok=True)
        temporary.unlink(missing_ok=True)
        raise
    return row


# ---------------------------------------------------------------------------------------------------- reads
def interpolation_model_latest(project: Project) -> InterpolationModel | None:
    """Return the project's newest interpolation network, or None."""
    return InterpolationModel.objects.filter(project=project).order_by("-created_at", "-pk").first()


def interpolation_job_active(project: Project) -> Job | None:
    """Return the project's queued or running interpolation job, or None."""
    return Job.objects.filter(project=project, kind=JobKind.INTERPOLATE, status__in=ACTIVE).order_by("-pk").first()


def interpolation_model_load(row: InterpolationModel, device: str | None = None) -> FrameInterpolator:
    """Return the stored network of `row`, on `device` (default CPU), in eval mode."""
    path = Path(django_settings.MEDIA_ROOT) / row.weights_path
    if not row.weights_path or not path.is_file():
        raise FileNotFoundError(f"interpolation model {row.pk}: its weights file {row.weights_path!r} is missing")
    return interpolation_weights_load(path.read_bytes(), device or "cpu")


__all__ = [
    "interpolation_job_active",
    "interpolation_model_latest",
    "interpolation_model_load",
    "interpolation_model_store",
    "interpolation_request_build",
    "interpolation_run",
    "interpolation_run_counts",
    "interpolation_runs",
    "interpolation_train_request",
]
