"""What every task shares: the data references workers receive, the results they return, the task spec.

A task (vessel type, OCT calcium, SPECT territories) is a `TaskSpec` subclass that knows how to load its
inputs from files, batch them, compute the loss, score items and evaluate. The one training loop (`fit`) and
scorer (`score`) that all three share are in `learning.tasks.training`, so a change to early stopping or
progress reporting is made once. Nothing here touches Django or Ray: the platform builds the requests,
`gpu_workers` runs them.
"""

from __future__ import annotations

import io
import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from learning.models import build_model

# Model-sized arrays computed from stored files, under the media root (TaskSpec.derived).
DERIVED_DIR = "derived"


class TrainingError(RuntimeError):
    """Training or scoring cannot go on; the message says why in terms a lead understands."""


class HyperparameterError(ValueError):
    """A hyper-parameter is unknown or out of range; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


# ---------------------------------------------------------------------------------------------------- references
@dataclass(frozen=True)
class CineRef:
    """A cine run: its DICOM file (relative to the media root) and the four C-arm geometry fields, if recorded."""

    item_id: int
    path: str
    geometry: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class OctFrameRef:
    """One frame of a pullback DICOM; rows and columns give the size predicted masks are returned at."""

    item_id: int
    path: str
    frame_index: int
    rows: int
    columns: int


@dataclass(frozen=True)
class SpectRef:
    """A patient's rest and stress polar maps (PNG, relative to the media root) and clinical features."""

    item_id: int
    rest_path: str
    stress_path: str
    age: float | None = None
    sex: str = ""
    weight_kg: float | None = None
    height_cm: float | None = None


ItemRef = CineRef | OctFrameRef | SpectRef
RefT = TypeVar("RefT", CineRef, OctFrameRef, SpectRef)


def ref_as(ref: ItemRef, kind: type[RefT]) -> RefT:
    """Return `ref` as a `kind` reference: every example of a task refers to that task's one kind of item."""
    if not isinstance(ref, kind):
        raise TypeError(f"expected a {kind.__name__}, got a {type(ref).__name__}")
    return ref


@dataclass(frozen=True)
class Example:
    """A reference with its training target: a class index, a mask (RLE dict) or three territory flags.

    `label_id`/`label_version` identify the human label used; `pseudo_label_id` a pseudo-label instead;
    `ica_reference_id` an angiography reference (SPECT trained on ICA). `group` is an opaque key shared by the
    examples of one patient (the platform's patient row id, never an identifier): metric intervals resample
    patients as well as items, because one patient's runs or frames are not independent evidence.
    """

    ref: ItemRef
    target: Any
    split: str
    label_id: int | None = None
    label_version: int | None = None
    pseudo_label_id: int | None = None
    ica_reference_id: int | None = None
    group: int | str | None = None

    @property
    def is_pseudo(self) -> bool:
        return self.pseudo_label_id is not None


def example_groups(examples: Sequence[Example]) -> np.ndarray | None:
    """Return the examples' group keys for a cluster bootstrap, or None unless every example has one."""
    keys = [e.group for e in examples]
    return None if not keys or any(k is None for k in keys) else np.array(keys)


@dataclass(frozen=True)
class Progress:
    """One progress report from a running job."""

    phase: str  # "loading", "training", "evaluating", "scoring"
    done: int
    total: int
    epoch: int | None = None
    loss: float | None = None
    validation: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


Reporter = Callable[[Progress], None]


def _ignore(progress: Progress) -> None:
    return None


@dataclass(frozen=True)
class TrainRequest:
    """Everything a worker needs to train one model version; references only, no database rows."""

    task: str
    family: str
    hparams: dict[str, Any]
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]
    media_root: str
    seed: int = 0
    # The current champion's weights: evaluated on the same test examples so the two can be compared fairly.
    champion_weights: bytes | None = None
    # Data-parallel workers (Ray Train) for a family trained in epochs; 1 trains on one device.
    workers: int = 1
    # Where the job's epoch checkpoints go (reachable from every node), so a run that loses a worker, or is
    # started again after its orchestrator died, carries on from its last epoch; "" keeps none.
    checkpoint_dir: str = ""
    # Pretrained weights to start from (a state dict saved by torch.save), loaded by the task into the parts of
    # the family's network they fit (`TaskSpec.initialise`), and where they come from, for the model's record.
    init_weights: bytes | None = None
    init_source: str = ""


@dataclass(frozen=True)
class ScoreRequest:
    """Score unlabelled items with stored weights (the bytes of a weights file)."""

    task: str
    weights: bytes
    refs: tuple[ItemRef, ...]
    media_root: str
    batch_size: int = 16
    seed: int = 0


@dataclass(frozen=True)
class ItemScore:
    """A model's output for one item, its uncertainty, and what pseudo-labelling and diversity need."""

    item_id: int
    output: dict[str, Any]
    uncertainty: float
    detail: dict[str, float]
    confidence: float
    pseudo_target: Any = None
    embedding: tuple[float, ...] | None = None


@dataclass(frozen=True)
class TrainOutcome:
    """A trained model: weights file bytes, metrics on validation and test, the per-epoch history."""

    weights: bytes
    family: str
    hparams: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    device: str
    seconds: float


# ---------------------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Hyperparameters:
    """Fields shared by every task; subclasses add their own. Unknown names are refused."""

    epochs: int = 8
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 4
    max_seconds: float = 0.0  # 0 = no time limit; else stop after the epoch that crosses it
    # Optimiser steps a whole training should take at least: an epoch over a small training set then passes over
    # it several times (each pass in a new order), so that 20 labelled frames get as many steps as 200 do.
    min_steps: int = 0

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> Hyperparameters:
        """Return the parameters with raw values over the defaults, or raise HyperparameterError."""
        raw = dict(raw or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise HyperparameterError(unknown[0], f"unknown hyper-parameter for {cls.__name__}")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            default = getattr(cls, name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            else:
                ok = isinstance(value, type(default))
            if not ok:
                raise HyperparameterError(name, f"must be of type {type(default).__name__}")
            values[name] = type(default)(value) if isinstance(default, float) else value
        params = cls(**values)
        params.check()
        return params

    def check(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise HyperparameterError(name, "must be at least 1")
        if not 0 < self.learning_rate < 1:
            raise HyperparameterError("learning_rate", "must be between 0 and 1")
        for name in ("weight_decay", "max_seconds", "patience", "min_steps"):
            if getattr(self, name) < 0:
                raise HyperparameterError(name, "must not be negative")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------- the spec
class TaskSpec(ABC):
    """One labelling task as the learner sees it."""

    name: ClassVar[str]
    families: ClassVar[tuple[str, ...]]
    params_class: ClassVar[type[Hyperparameters]] = Hyperparameters
    # The validation/test metric used for early stopping and champion comparison (higher is better).
    primary_metric: ClassVar[str]
    # The uncertainty-detail keys the scorer writes for every item (what acquisition strategies may rank by).
    score_keys: ClassVar[frozenset[str]] = frozenset()
    # A classification task's classes, which a lead may narrow (`classes` hyper-parameter); empty otherwise.
    classes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, media_root: str | Path) -> None:
        self.media_root = Path(media_root)
        self._cache: dict[Any, Any] = {}

    # --- targets, from label payloads (the platform calls these; they are pure)
    @classmethod
    @abstractmethod
    def target_from_payload(cls, payload: dict[str, Any], context: dict[str, Any] | None = None) -> Any:
        """Return the training target a label payload stands for, or None if it cannot train (e.g. unusable)."""

    @classmethod
    @abstractmethod
    def target_from_output(cls, output: dict[str, Any]) -> Any:
        """Return the target a stored prediction's output stands for (to compare a model with a label)."""

    @classmethod
    def targets_agree(cls, first: Any, second: Any) -> bool:
        """Return whether two annotators' targets are close enough to train on without adjudication."""
        return first == second

    @classmethod
    def strategy_problem(cls, strategy: str, params: Hyperparameters) -> str | None:
        """Return why the acquisition strategy cannot rank this task's scores, or None when it can."""
        from learning.strategies import STRATEGIES

        known = STRATEGIES.get(strategy)
        if known is None:
            return f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}"
        if known.required_key and known.required_key not in cls.score_keys:
            return f"{strategy} needs {known.required_key!r} scores, which {cls.name} models do not produce"
        return None

    @classmethod
    def choose_family(cls, n_labelled: int, params: Hyperparameters) -> str:
        """Return the family to train given how many labelled training examples exist."""
        return cls.families[0]

    # --- model plumbing
    def build(self, family: str, params: Hyperparameters) -> nn.Module:
        if family not in self.families:
            raise HyperparameterError("family", f"{family!r} is not a {self.name} model; use one of {self.families}")
        return build_model(family, **self.model_kwargs(family, params))

    def model_kwargs(self, family: str, params: Hyperparameters) -> dict[str, Any]:
        return {}

    def prepare(self, model: nn.Module, family: str, train: Sequence[Example], params: Hyperparameters) -> None:
        """Fit anything computed from the training set before the first step (e.g. normalisation)."""
        return None

    def initialise(self, model: nn.Module, family: str, state: dict[str, torch.Tensor]) -> int:
        """Load pretrained tensors into the parts of `model` they fit; return how many were loaded (0: none fit).

        Tasks without a pretrained starting point load nothing.
        """
        return 0

    def usable(self, family: str, example: Example) -> bool:
        """Return whether the example can be fed to this family (e.g. the metadata model needs geometry)."""
        return True

    @abstractmethod
    def batch(
        self, family: str, examples: Sequence[Example], params: Hyperparameters, rng: np.random.Generator, train: bool
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Return model inputs and targets for a batch (augmented when `train`)."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor, params: Hyperparameters | None = None) -> torch.Tensor:
        """Return the training loss (with the training's parameters where the loss has any)."""

    @abstractmethod
    def score_batch(
        self, model: nn.Module, family: str, refs: Sequence[ItemRef], params: Hyperparameters, rng: np.random.Generator
    ) -> list[ItemScore]:
        """Return one score per reference (model already in eval mode on its device)."""

    @abstractmethod
    def evaluate(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> dict[str, Any]:
        """Return metrics of scores against the examples' targets; must contain `primary_metric`."""

    # --- the evaluation protocol (locked test set, paired comparisons, trivial baseline)
    @abstractmethod
    def metric_rows(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> tuple[np.ndarray, ...]:
        """Return per-example arrays (row i stands for examples[i], every example scored) for `metric_value`."""

    @abstractmethod
    def metric_value(self, *rows: np.ndarray) -> float:
        """Return the primary metric from `metric_rows` arrays (or a bootstrap resample of their rows)."""

    def metric_strata(self, examples: Sequence[Example]) -> np.ndarray | None:
        """Return each example's stratum for the paired bootstrap (a classification task: its true class), so
        that only resamples holding every class of the test set decide; None: resample freely."""
        return None

    @abstractmethod
    def baseline_scores(self, train: Sequence[Example], refs: Sequence[ItemRef]) -> list[ItemScore]:
        """Return the trivial baseline's scores for refs (majority class, empty mask, constant score)."""

    baseline_name: ClassVar[str] = "trivial baseline"
    # The proper scoring rule `item_losses` computes (None: the task's outputs carry no probabilities to score).
    proper_score: ClassVar[str | None] = None

    def item_losses(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> np.ndarray | None:
        """Return each example's loss under a proper scoring rule (lower is better), or None if the task has
        none. Promotion uses it where the primary metric is tied: it tells apart models that rank the same
        items right but one with better probabilities."""
        return None

    # --- hooks around the training loop (defaults: nothing to do)
    def fitted_params(self, params: Hyperparameters, train: Sequence[Example]) -> Hyperparameters:
        """Return the parameters this training actually uses, given its training examples (e.g. its classes)."""
        return params

    def in_scope(self, params: Hyperparameters, example: Example) -> bool:
        """Return whether the example belongs to what these parameters model (e.g. a class a lead dropped)."""
        return True

    def fits_directly(self, family: str) -> bool:
        """Return True for a family that `prepare` fits completely (no gradient epochs), on train + validation
        with its own cross-validation; `calibrate` is not called for it."""
        return False

    def validation_ranks(self, validation: Sequence[Example], params: Hyperparameters) -> bool:
        """Return whether these validation examples are enough to pick the best epoch (else the latest is kept)."""
        return bool(validation)

    def calibrate(
        self, model: nn.Module, family: str, validation: Sequence[Example], params: Hyperparameters, seed: int
    ) -> dict[str, Any]:
        """Fit post-hoc parameters (temperature, stacking) on validation only; return what was fitted."""
        return {}

    def pseudo_target(self, score: ItemScore, threshold: float) -> Any:
        """Return the pseudo-label target when the score's confidence reaches threshold, else None."""
        return score.pseudo_target if score.confidence >= threshold else None

    # --- file access shared by the tasks
    def resolve(self, relative: str) -> Path:
        path = (self.media_root / relative).resolve()
        if not path.is_file():
            raise TrainingError(f"input file is missing: {relative}")
        return path

    def cached(self, key: Any, load: Callable[[], Any]) -> Any:
        """Load each file once per job; later epochs reuse the decoded, preprocessed tensors."""
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def derived(self, relative: str, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """Return an array computed from the stored file `relative`, kept on disk for every later job.

        Decoding a DICOM costs more than a small model's forward pass, so the model-sized array (resized frames,
        a contrast descriptor) is written once under `derived/` beside the media and read back by every later
        training and scoring job on any worker that mounts the media, as `derived/<relative>/<name>.<size>.npy`.
        Stored files never change, and the name carries the file's size as a guard; `name` must change when its
        computation does (a version suffix). A worker that cannot write there (a read-only mount) computes and
        goes on. The write is atomic, so concurrent workers never read half an array. The media sweep removes the
        arrays of files no row refers to any more (annotation.ingest.store.orphaned_files).
        """
        source = self.resolve(relative)
        target = self.media_root / DERIVED_DIR / relative / f"{name}.{source.stat().st_size}.npy"
        try:
            return np.load(target, allow_pickle=False)
        except (OSError, ValueError):
            pass
        array = compute()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
            with partial.open("wb") as out:
                np.save(out, array, allow_pickle=False)
            os.replace(partial, target)
        except OSError:
            pass
        return array


# ---------------------------------------------------------------------------------------------------- weights
def weights_dump(*, task: str, family: str, params: Hyperparameters, model: nn.Module) -> bytes:
    """Return a self-describing weights file: task, family, hyper-parameters and the CPU state dict."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(
        {
            "format": "lumen-weights-v1",
            "task": task,
            "family": family,
            "hparams": params.as_json(),
            "state_dict": state,
        },
        buffer,
    )
    return buffer.getvalue()


# Buffers added after the first weights files were written; an older file without them loads with defaults.
_LATER_BUFFERS = ("logit_offset", "temperature", "threshold", "min_area")


def model_load(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a state dict; only buffers added later (class offsets, temperature) may be missing."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    wrong = [key for key in missing if not key.endswith(_LATER_BUFFERS)] + list(unexpected)
    if wrong:
        raise TrainingError(f"weights file does not fit the model: {', '.join(sorted(wrong)[:5])}")


def weights_load(blob: bytes) -> dict[str, Any]:
    """Read a weights file written by `weights_dump` (tensors only: no code is unpickled)."""
    try:
        data = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 — any decoding failure means the file is not ours
        raise TrainingError(f"weights file cannot be read: {error}") from None
    if not isinstance(data, dict) or data.get("format") != "lumen-weights-v1":
        raise TrainingError("weights file is not a Lumen weights file (format lumen-weights-v1)")
    return data


def as_float_list(values: np.ndarray | Sequence[float]) -> list[float]:
    return [round(float(v), 6) for v in np.asarray(values).ravel()]


__all__ = [
    "CineRef",
    "Example",
    "Hyperparameters",
    "HyperparameterError",
    "ItemRef",
    "ItemScore",
    "OctFrameRef",
    "Progress",
    "Reporter",
    "ScoreRequest",
    "SpectRef",
    "TaskSpec",
    "TrainOutcome",
    "TrainRequest",
    "TrainingError",
    "model_load",
    "ref_as",
    "weights_dump",
    "weights_load",
]
