"""Train / validation / test splits by patient: stable between rounds, the test set fixed once locked."""

from __future__ import annotations

import hashlib
from collections import defaultdict

from django.db import transaction

from annotation.models import Item, ModelVersion, Project, Split
from annotation.project_settings import ProjectSettings, SettingsError, parse_settings


class SplitLocked(Exception):
    """The held-out test set is locked; its patients cannot be reshuffled."""


# A project needs this many patients before one of them is set apart for testing.
MIN_PATIENTS_FOR_TEST = 3


def _hash_unit(pseudonym: str, settings: ProjectSettings) -> float:
    digest = hashlib.sha256(f"{settings.split_seed}:{pseudonym}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def patient_split(pseudonym: str, settings: ProjectSettings, *, allow_test: bool = True) -> str:
    """Return the split of a patient: a keyed hash of its pseudonym against the project's fractions.

    With `allow_test=False` (the test set is locked) a new patient goes to train or validation only,
    in the same proportion to each other.
    """
    u = _hash_unit(pseudonym, settings)
    test = settings.test_fraction if allow_test else 0.0
    validation = settings.validation_fraction
    if not allow_test:
        validation = validation / (1.0 - settings.test_fraction) if settings.test_fraction < 1 else 0.0
    if u < test:
        return Split.TEST
    if u < test + validation:
        return Split.VALIDATION
    return Split.TRAIN


def splits_fill(*, project: Project) -> int:
    """Give every item without a split its patient's split; return how many items were assigned.

    A patient who already has items in a split keeps it, so a patient never spans two splits and
    validation is never reshuffled. Takes the project row lock so two fills cannot race.
    """
    with transaction.atomic():
        project = Project.objects.lock(project.pk)
        settings = parse_settings(project.task_type, project.settings)
        pending = list(
            Item.objects.filter(project=project, split=Split.UNASSIGNED).values_list(
                "pk", "patient_id", "patient__pseudonym"
            )
        )
        if not pending:
            _ensure_test_patient(project, settings)
            return 0
        known = dict(
            Item.objects.filter(project=project, patient_id__in={p for _, p, _ in pending})
            .exclude(split=Split.UNASSIGNED)
            .values_list("patient_id", "split")
            .distinct()
        )
        by_split: dict[str, list[int]] = defaultdict(list)
        for item_id, patient_id, pseudonym in pending:
            split = known.get(patient_id) or patient_split(pseudonym, settings, allow_test=not settings.test_set_locked)
            known[patient_id] = split
            by_split[split].append(item_id)
        for split, ids in by_split.items():
            Item.objects.filter(pk__in=ids).update(split=split)
        _ensure_test_patient(project, settings)
        return len(pending)


def _ensure_test_patient(project: Project, settings: ProjectSettings) -> None:
    """Give a small project one test patient when the hash gave it none, before any model exists.

    With a handful of patients every one of them can hash into train; then nothing could ever be promoted.
    The patient whose hash lies closest to the test range moves, so the choice is as stable as the hash.
    """
    if settings.test_fraction <= 0 or settings.test_set_locked:
        return
    items = Item.objects.filter(project=project)
    if items.filter(split=Split.TEST).exists() or ModelVersion.objects.filter(project=project).exists():
        return
    patients = dict(items.values_list("patient_id", "patient__pseudonym").distinct())
    if len(patients) < MIN_PATIENTS_FOR_TEST:
        return
    chosen = min(patients, key=lambda pk: (_hash_unit(patients[pk], settings), pk))
    items.filter(patient_id=chosen).update(split=Split.TEST)


def splits_configure(
    *,
    project: Project,
    test_fraction: float | None = None,
    validation_fraction: float | None = None,
    split_seed: int | None = None,
    lock_test: bool = False,
) -> ProjectSettings:
    """Set the split fractions and seed, reassign every item by patient, and optionally lock the test set.

    Refused with SplitLocked once the test set is locked or a model version has been evaluated on it,
    because changing it then would make old and new metrics incomparable.
    """
    with transaction.atomic():
        project = Project.objects.lock(project.pk)
        current = parse_settings(project.task_type, project.settings)
        changes = {
            name: value
            for name, value in (
                ("test_fraction", test_fraction),
                ("validation_fraction", validation_fraction),
                ("split_seed", split_seed),
            )
            if value is not None and value != getattr(current, name)
        }
        if changes and (current.test_set_locked or ModelVersion.objects.filter(project=project).exists()):
            raise SplitLocked(
                "the held-out test set is locked (a lead locked it or a model was evaluated on it); "
                "splits can no longer be changed"
            )
        raw = {**project.settings, **changes}
        if lock_test:
            raw["test_set_locked"] = True
        settings = parse_settings(project.task_type, raw)
        project.settings = {**project.settings, **changes, **({"test_set_locked": True} if lock_test else {})}
        project.save(update_fields=["settings"])
        if changes:
            Item.objects.filter(project=project).update(split=Split.UNASSIGNED)
    splits_fill(project=project)
    return settings


__all__ = ["SettingsError", "SplitLocked", "patient_split", "splits_configure", "splits_fill"]
