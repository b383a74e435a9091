"""The three labelling tasks as the learner sees them, found by task type name."""

from __future__ import annotations

from pathlib import Path

from learning.tasks.base import (
    CineRef,
    Example,
    HyperparameterError,
    Hyperparameters,
    ItemRef,
    ItemScore,
    OctFrameRef,
    Progress,
    Reporter,
    ScoreRequest,
    SpectRef,
    TaskSpec,
    TrainingError,
    TrainOutcome,
    TrainRequest,
    weights_load,
)
from learning.tasks.oct import OctTask
from learning.tasks.spect import SpectTask
from learning.tasks.training import fit, score
from learning.tasks.vessel import VesselTask

TASKS: dict[str, type[TaskSpec]] = {task.name: task for task in (VesselTask, OctTask, SpectTask)}


class UnknownTask(ValueError):
    """Raised when no task is registered under the requested name."""


def task_class(name: str) -> type[TaskSpec]:
    """Return the task registered as ``name`` or raise UnknownTask listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTask(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


def register_task(spec: type[TaskSpec]) -> None:
    """Make a task defined elsewhere known by its name (a plugin's learning side); registering it twice is a no-op,
    a different task under a taken name raises ValueError."""
    known = TASKS.setdefault(spec.name, spec)
    if known is not spec:
        raise ValueError(f"a different learning task is already registered as {spec.name!r}")


def get_task(name: str, media_root: str | Path) -> TaskSpec:
    """Return a fresh task instance reading its input files under ``media_root``."""
    return task_class(name)(media_root)


__all__ = [
    "TASKS",
    "register_task",
    "CineRef",
    "Example",
    "HyperparameterError",
    "Hyperparameters",
    "ItemRef",
    "ItemScore",
    "OctFrameRef",
    "OctTask",
    "Progress",
    "Reporter",
    "ScoreRequest",
    "SpectRef",
    "SpectTask",
    "TaskSpec",
    "TrainOutcome",
    "TrainRequest",
    "TrainingError",
    "UnknownTask",
    "VesselTask",
    "fit",
    "get_task",
    "score",
    "task_class",
    "weights_load",
]
