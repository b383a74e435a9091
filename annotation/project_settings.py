"""Typed project settings: defaults per task type, validation with errors that name the field."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from annotation.tasks import label_task

KNOWN_MODALITIES = frozenset({"XA", "XRF", "IVOCT", "NM", "OT", "US", "MR", "CT", "PT", "SC"})


class SettingsError(ValueError):
    """A settings value is wrong; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class ProjectSettings:
    show_predictions_to_annotators: bool = False
    accepted_modalities: tuple[str, ...] = ()
    lease_minutes: int = 30
    overlap_rate: float = 0.10
    gold_rate: float = 0.0
    acquisition_strategy: str = "entropy"
    # Automatic retraining: after this many new human labels (0 = off), and/or when this many minutes have
    # passed since the last training and new labels have come in (0 = off). "Retrain now" always works.
    retrain_every_n_labels: int = 50
    retrain_every_minutes: int = 0
    # A batch strategy (k-center) picks this many items at the head of the queue; the rest follow by uncertainty.
    queue_batch_size: int = 200
    pseudo_label_threshold: float | None = None
    # A label whose champion prediction disagrees with at least this confidence goes to adjudication.
    suspect_confidence: float = 0.9
    # Lesion linkage: the champion's class counts as a run's vessel type only when its probability is at least
    # this (a human label always wins over the model).
    lesion_link_confidence: float = 0.9
    spect_reference: str = "expert"
    # Splits by patient: a patient's split is a keyed hash of its pseudonym, so it never changes between rounds.
    test_fraction: float = 0.2
    validation_fraction: float = 0.15
    split_seed: int = 0
    # Once a lead locks it, the held-out test patients are fixed for good: new patients train or validate.
    test_set_locked: bool = False
    # The share of hand-outs that go to held-out test items, in a random order no model influences.
    test_handout_rate: float = 0.2
    # A candidate is judged (against the baseline and the champion) only on at least this many test labels.
    promotion_min_test_items: int = 10
    # A refit of the champion's own model family on this much more human labels (0.05: 5 % more) replaces
    # it when the locked test set finds it not worse beyond noise; None: only a win beyond noise promotes.
    promotion_refresh_growth: float | None = 0.05
    # Training and scoring are seeded with this: the same labels give the same model, retrain after retrain.
    training_seed: int = 0
    # Data-parallel Ray Train workers for models trained in epochs (0: the server's LUMEN_TRAINING_WORKERS).
    training_workers: int = 0
    # Vessel type: start the video networks from the encoder of the project's newest frame-interpolation model
    # (trained on its unlabelled runs), instead of from random weights.
    pretrain_from_interpolation: bool = False
    # Look for text burned into the pixels of each imported run or pullback (Tesseract; first, middle, last frame).
    ocr_burned_in_text: bool = False
    # Per-task hyper-parameter overrides for training (names as in learning.tasks' parameter classes).
    training_hparams: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["accepted_modalities"] = list(self.accepted_modalities)
        return data


def default_settings(task_type: str) -> ProjectSettings:
    """Return the defaults for a task type: its modalities, and whether annotators see the model's prediction."""
    task = label_task(task_type)
    return ProjectSettings(
        show_predictions_to_annotators=task.shows_predictions, accepted_modalities=task.default_modalities
    )


def parse_settings(task_type: str, raw: dict[str, Any] | None) -> ProjectSettings:
    """Merge raw JSON over the task's defaults and validate every value."""
    base = default_settings(task_type).as_json()
    raw = dict(raw or {})
    known = {f.name for f in fields(ProjectSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SettingsError(unknown[0], "unknown setting")
    base.update(raw)
    _check_type("show_predictions_to_annotators", base, bool)
    _check_type("lease_minutes", base, int)
    _check_type("retrain_every_n_labels", base, int)
    _check_type("retrain_every_minutes", base, int)
    _check_type("queue_batch_size", base, int)
    _check_type("acquisition_strategy", base, str)
    _check_type("extra", base, dict)
    _check_type("split_seed", base, int)
    _check_type("training_seed", base, int)
    _check_type("training_workers", base, int)
    if not 0 <= base["training_workers"] <= 64:
        raise SettingsError("training_workers", "must be 0 (the server's default) or between 1 and 64")
    _check_type("pretrain_from_interpolation", base, bool)
    _check_type("test_set_locked", base, bool)
    _check_type("ocr_burned_in_text", base, bool)
    _check_type("training_hparams", base, dict)
    _check_type("promotion_min_test_items", base, int)
    if not 2 <= base["promotion_min_test_items"] <= 100000:
        raise SettingsError("promotion_min_test_items", "must be between 2 and 100000")
    if not 1 <= base["lease_minutes"] <= 24 * 60:
        raise SettingsError("lease_minutes", "must be between 1 and 1440")
    if base["retrain_every_n_labels"] < 0:
        raise SettingsError("retrain_every_n_labels", "must be 0 (off) or a positive number of labels")
    if not 0 <= base["retrain_every_minutes"] <= 7 * 24 * 60:
        raise SettingsError("retrain_every_minutes", "must be 0 (off) or at most 10080 (a week)")
    if not 1 <= base["queue_batch_size"] <= 10000:
        raise SettingsError("queue_batch_size", "must be between 1 and 10000")
    for name in (
        "overlap_rate",
        "gold_rate",
        "test_fraction",
        "validation_fraction",
        "suspect_confidence",
        "test_handout_rate",
    ):
        value = base[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise SettingsError(name, "must be a number between 0 and 1")
    link = base["lesion_link_confidence"]
    if isinstance(link, bool) or not isinstance(link, (int, float)) or not 0.5 <= link <= 1.0:
        raise SettingsError("lesion_link_confidence", "must be a number between 0.5 and 1")
    if base["test_fraction"] + base["validation_fraction"] > 0.8:
        raise SettingsError("validation_fraction", "test and validation fractions must leave at least 20% to train")
    _check_hparams(task_type, base["training_hparams"])
    _check_strategy(task_type, base["acquisition_strategy"], base["training_hparams"])
    threshold = base["pseudo_label_threshold"]
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.5 <= threshold <= 1.0
    ):
        raise SettingsError("pseudo_label_threshold", "must be null (off) or a number between 0.5 and 1")
    growth = base["promotion_refresh_growth"]
    if growth is not None and (
        isinstance(growth, bool) or not isinstance(growth, (int, float)) or not 0.05 <= growth <= 10.0
    ):
        raise SettingsError("promotion_refresh_growth", "must be null (off) or a number between 0.05 and 10")
    if base["spect_reference"] not in ("expert", "ica"):
        raise SettingsError("spect_reference", "must be 'expert' or 'ica'")
    modalities = base["accepted_modalities"]
    takes_dicom = bool(label_task(task_type).default_modalities)  # a task of other files may accept none
    if not isinstance(modalities, (list, tuple)) or (takes_dicom and not modalities):
        raise SettingsError("accepted_modalities", "must be a non-empty list of modality codes")
    for code in modalities:
        if code not in KNOWN_MODALITIES:
            raise SettingsError("accepted_modalities", f"unknown modality {code!r}")
    base["accepted_modalities"] = tuple(modalities)
    return ProjectSettings(**base)


def _check_hparams(task_type: str, hparams: dict[str, Any]) -> None:
    """Refuse hyper-parameters the task's trainer does not know or would reject (imported lazily: torch)."""
    if not hparams:
        return
    from learning.tasks import HyperparameterError

    try:
        label_task(task_type).learning().params_class.parse(hparams)
    except HyperparameterError as error:
        raise SettingsError(f"training_hparams.{error.field}", str(error).split(": ", 1)[-1]) from None


def _check_strategy(task_type: str, name: str, hparams: dict[str, Any]) -> None:
    """Refuse a strategy the task's scores cannot feed (the task classes import torch: only when needed)."""
    from learning.strategies import STRATEGIES

    known = STRATEGIES.get(name)
    if known is None:
        raise SettingsError("acquisition_strategy", f"unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}")
    if known.required_key in (None, "entropy"):  # every task scores entropy
        return

    spec = label_task(task_type).learning()
    problem = spec.strategy_problem(name, spec.params_class.parse(hparams))
    if problem:
        raise SettingsError("acquisition_strategy", problem)


def _check_type(name: str, data: dict[str, Any], kind: type) -> None:
    value = data[name]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise SettingsError(name, f"must be of type {kind.__name__}")
