"""Plain worker classes: train, score, or train a frame interpolator, on this machine's device; no Ray, no database.

Ray wraps them in `gpu_workers.executors`; tests and the inline executor call them directly.
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from learning.interpolation import InterpolationOutcome, InterpolationRequest, interpolation_train
from learning.models import pick_device
from learning.tasks import (
    ItemRef,
    ItemScore,
    Reporter,
    ScoreRequest,
    TrainOutcome,
    TrainRequest,
    fit,
    get_task,
    score,
)
from learning.tasks.training import LoadedScorer, scorer_load

# Where a worker finds the media files when its mount differs from the platform's MEDIA_ROOT.
MEDIA_ROOT_ENV = "LUMEN_WORKER_MEDIA_ROOT"


def _media_root(requested: str) -> str:
    return os.environ.get(MEDIA_ROOT_ENV) or requested


def _ignore(progress) -> None:
    return None


class TrainingWorker:
    """Train one model version from a `TrainRequest`; return the weights bytes and metrics."""

    def __init__(self, device: str | None = None) -> None:
        self.device = torch.device(device) if device else pick_device()

    def run(self, request: TrainRequest, report: Reporter = _ignore) -> TrainOutcome:
        spec = get_task(request.task, _media_root(request.media_root))
        return fit(spec, request, self.device, report)


class ScoringWorker:
    """Score references with stored weights; return one `ItemScore` per usable reference."""

    def __init__(self, device: str | None = None) -> None:
        self.device = torch.device(device) if device else pick_device()

    def run(self, request: ScoreRequest, report: Reporter = _ignore) -> list[ItemScore]:
        spec = get_task(request.task, _media_root(request.media_root))
        return score(spec, request, self.device, report)


class InterpolationWorker:
    """Train a frame-interpolation network on a request's runs and evaluate it on the held-out ones."""

    def __init__(self, device: str | None = None) -> None:
        self.device = torch.device(device) if device else pick_device()

    def run(self, request: InterpolationRequest, report: Reporter = _ignore) -> InterpolationOutcome:
        media = _media_root(request.media_root)
        if media != request.media_root:
            request = replace(request, media_root=media)
        return interpolation_train(request, self.device, report)


class ScoringModel:
    """One model held by a scoring worker for a whole job: loaded once, then scores chunk after chunk.

    Ray's scoring actors hold one each (gpu_workers.executors); the inline executor holds one on its thread.
    """

    def __init__(self, task: str, weights: bytes, media_root: str, device: str | None = None) -> None:
        torch_device = torch.device(device) if device else pick_device()
        spec = get_task(task, _media_root(media_root))
        self.scorer: LoadedScorer = scorer_load(spec, weights, torch_device)

    def score(self, refs: tuple[ItemRef, ...], seed: int, batch_size: int) -> list[ItemScore]:
        return self.scorer.score(refs, seed=seed, batch_size=batch_size)
