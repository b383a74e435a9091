"""The labelling tasks this server offers, loaded once from the dotted paths in settings.LUMEN_TASKS.

Like AUTHENTICATION_BACKENDS: a deployment (or a test) adds a task by listing its class; nothing else changes.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from annotation.tasks.base import LabelTask, StoredDicom


class UnknownTaskType(ValueError):
    """No task is registered under the requested name."""


@cache
def label_tasks() -> dict[str, LabelTask]:
    """Return every registered task by name, in the order LUMEN_TASKS lists them."""
    from learning.tasks import register_task  # imports torch: only once a task is asked for

    tasks: dict[str, LabelTask] = {}
    for path in settings.LUMEN_TASKS:
        task_class = import_string(path)
        if not (isinstance(task_class, type) and issubclass(task_class, LabelTask)):
            raise ImproperlyConfigured(f"LUMEN_TASKS: {path} is not a LabelTask subclass")
        task = task_class()
        if task.name in tasks:
            raise ImproperlyConfigured(f"LUMEN_TASKS: two tasks are named {task.name!r}")
        register_task(task.learning())  # workers in this process find its learning side by name
        tasks[task.name] = task
    return tasks


def label_task(name: str) -> LabelTask:
    """Return the task registered as `name`, or raise UnknownTaskType listing the known ones."""
    try:
        return label_tasks()[name]
    except KeyError:
        raise UnknownTaskType(f"unknown task type {name!r}; known: {', '.join(label_tasks())}") from None


def task_choices() -> list[tuple[str, str]]:
    """Return (name, title) of every registered task, for forms and the API schema."""
    return [(name, task.title) for name, task in label_tasks().items()]


def _settings_changed(*, setting: str, **kwargs) -> None:
    if setting == "LUMEN_TASKS":
        label_tasks.cache_clear()


setting_changed.connect(_settings_changed)

__all__ = ["LabelTask", "StoredDicom", "UnknownTaskType", "label_task", "label_tasks", "task_choices"]
