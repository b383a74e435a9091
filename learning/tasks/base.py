"""What every task shares: the data references workers receive, the results they return, one training loop.

A task (vessel type, OCT calcium, SPECT territories) is a `TaskSpec` subclass that knows how to load its
inputs from files, batch them, compute the loss, score items and evaluate. The loop here (`fit`) and the
scorer (`score`) are the same for all three, so a change to early stopping or progress reporting is made
once. Nothing here touches Django or Ray: the platform builds the requests, `gpu_workers` runs them.
"""

from __future__ import annotations

import copy
import io
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from learning.models import build_model


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


@dataclass(frozen=True)
class Example:
    """A reference with its training target: a class index, a mask (RLE dict) or three territory flags.

    `label_id`/`label_version` identify the human label used; `pseudo_label_id` a pseudo-label instead;
    `ica_reference_id` an angiography reference (SPECT trained on ICA).
    """

    ref: ItemRef
    target: Any
    split: str
    label_id: int | None = None
    label_version: int | None = None
    pseudo_label_id: int | None = None
    ica_reference_id: int | None = None

    @property
    def is_pseudo(self) -> bool:
        return self.pseudo_label_id is not None


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

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> Hyperparameters:
        """Return the parameters with raw values over the defaults, or raise HyperparameterError."""
        raw = dict(raw or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise HyperparameterError(unknown[0], f"unknown hyper-parameter for {cls.__name__}")
        values = {}
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
        for name in ("weight_decay", "max_seconds", "patience"):
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

    def usable(self, family: str, example: Example) -> bool:
        """Return whether the example can be fed to this family (e.g. the metadata model needs geometry)."""
        return True

    @abstractmethod
    def batch(
        self, family: str, examples: Sequence[Example], params: Hyperparameters, rng: np.random.Generator, train: bool
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Return model inputs and targets for a batch (augmented when `train`)."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Return the training loss."""

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

    @abstractmethod
    def baseline_scores(self, train: Sequence[Example], refs: Sequence[ItemRef]) -> list[ItemScore]:
        """Return the trivial baseline's scores for refs (majority class, empty mask, constant score)."""

    baseline_name: ClassVar[str] = "trivial baseline"

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
_LATER_BUFFERS = ("logit_offset", "temperature")


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


# ---------------------------------------------------------------------------------------------------- loops
def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def set_seed(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def train_epoch(
    spec: TaskSpec,
    model: nn.Module,
    family: str,
    optimiser: torch.optim.Optimizer,
    examples: Sequence[Example],
    params: Hyperparameters,
    rng: np.random.Generator,
    device: torch.device,
    *,
    shard: tuple[int, int] | None = None,
) -> float:
    """Run one pass over `examples` in a random order; return the mean loss.

    With `shard=(rank, world_size)` only every world_size-th example of the shuffled order is used, from `rank`
    on; every rank must pass an `rng` in the same state so that the shards partition one shared order.
    """
    model.train()
    order = rng.permutation(len(examples))
    if shard is not None:
        rank, world_size = shard
        # Pad by wrapping round (as DistributedSampler does): DDP all-reduces every step, so every rank must
        # take the same number of batches or the longer ones wait forever.
        order = np.resize(order, -(-len(order) // world_size) * world_size)[rank::world_size]
        # Ranks share the order, not the augmentation: each continues with its own stream.
        rng = np.random.default_rng([int(rng.integers(2**32)), rank])
    shuffled = [examples[i] for i in order]
    total, count = 0.0, 0
    for chunk in _chunks(shuffled, params.batch_size):
        inputs, targets = spec.batch(family, chunk, params, rng, train=True)
        logits = model(*(tensor.to(device) for tensor in inputs))
        loss = spec.loss(logits, targets.to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(chunk)
        count += len(chunk)
    return total / max(count, 1)


def score_refs(
    spec: TaskSpec,
    model: nn.Module,
    family: str,
    refs: Sequence[ItemRef],
    params: Hyperparameters,
    rng: np.random.Generator,
    batch_size: int,
    report: Reporter = _ignore,
    phase: str = "scoring",
) -> list[ItemScore]:
    """Score references in batches with the model in eval mode."""
    model.eval()
    scores: list[ItemScore] = []
    with torch.no_grad():
        for chunk in _chunks(list(refs), batch_size):
            scores.extend(spec.score_batch(model, family, chunk, params, rng))
            report(Progress(phase=phase, done=len(scores), total=len(refs)))
    return scores


def trainable_examples(spec: TaskSpec, family: str, examples: Sequence[Example], allow_pseudo: bool) -> list[Example]:
    """Return the examples that may be used: a target (excluded frames have none), usable by the family,
    and human-labelled unless pseudo-labels are allowed (they never validate or test)."""
    return [
        e for e in examples if e.target is not None and (allow_pseudo or not e.is_pseudo) and spec.usable(family, e)
    ]


def training_splits(
    spec: TaskSpec, request: TrainRequest
) -> tuple[Hyperparameters, list[Example], list[Example], list[Example]]:
    """Return the parameters this training uses (e.g. the classes its examples have) and the train,
    validation and test examples it may use: usable by the family and within what those parameters model."""
    params = spec.params_class.parse(request.hparams)
    train = trainable_examples(spec, request.family, request.train, allow_pseudo=True)
    params = spec.fitted_params(params, train)
    validation = trainable_examples(spec, request.family, request.validation, allow_pseudo=False)
    test = trainable_examples(spec, request.family, request.test, allow_pseudo=False)
    train, validation, test = ([e for e in split if spec.in_scope(params, e)] for split in (train, validation, test))
    return params, train, validation, test


def validation_value(
    spec: TaskSpec, model: nn.Module, family: str, examples: Sequence[Example], params: Hyperparameters, seed: int
) -> float:
    """Return the primary metric of `model` on the validation examples, or NaN when there are none."""
    if not examples:
        return math.nan
    scores = score_refs(
        spec,
        model,
        family,
        [e.ref for e in examples],
        params,
        np.random.default_rng(seed),
        params.batch_size,
        phase="evaluating",
    )
    return float(spec.evaluate(scores, examples)[spec.primary_metric])


@dataclass
class BestEpoch:
    """Keep the state of the epoch best on validation (the latest while validation cannot rank epochs)."""

    patience: int
    state: dict[str, torch.Tensor] | None = None
    value: float = -math.inf
    epoch: int = 0
    stale: int = 0

    def update(self, model: nn.Module, epoch: int, value: float) -> bool:
        """Record an epoch; return True when patience has run out."""
        if self.state is None or not math.isfinite(value) or value > self.value:
            self.state = copy.deepcopy(model.state_dict())
            self.value, self.epoch, self.stale = (value if math.isfinite(value) else -math.inf), epoch, 0
            return False
        self.stale += 1
        return bool(self.patience and self.stale >= self.patience)


# Paired comparisons on the test set: a two-sided 90 % interval, i.e. a one-sided test at 5 %.
COMPARISON_ALPHA = 0.10
COMPARISON_RESAMPLES = 1000


def paired_comparison(
    spec: TaskSpec,
    mine: Sequence[ItemScore],
    theirs: Sequence[ItemScore],
    examples: Sequence[Example],
    seed: int,
) -> dict[str, Any]:
    """Compare two sets of scores on the examples both scored: each metric, the difference and its interval."""
    from learning.metrics import paired_bootstrap

    scored_a, scored_b = {s.item_id for s in mine}, {s.item_id for s in theirs}
    common = [e for e in examples if e.ref.item_id in scored_a and e.ref.item_id in scored_b]
    if not common:
        return {"n": 0}
    rows_a, rows_b = spec.metric_rows(mine, common), spec.metric_rows(theirs, common)
    difference, low, high = paired_bootstrap(
        spec.metric_value, rows_a, rows_b, n_boot=COMPARISON_RESAMPLES, alpha=COMPARISON_ALPHA, seed=seed
    )
    return {
        "n": len(common),
        "metric": spec.primary_metric,
        "candidate": spec.metric_value(*rows_a),
        "other": spec.metric_value(*rows_b),
        "difference": difference,
        "interval": [low, high],
        "confidence": 1 - COMPARISON_ALPHA,
        "test": "paired bootstrap",
        "resamples": COMPARISON_RESAMPLES,
    }


def final_metrics(
    spec: TaskSpec,
    model: nn.Module,
    request: TrainRequest,
    params: Hyperparameters,
    splits: tuple[Sequence[Example], Sequence[Example], Sequence[Example]],
    device: torch.device,
    best_epoch: int,
    report: Reporter = _ignore,
) -> dict[str, Any]:
    """Evaluate the kept model on validation and test; compare it on the same test items with the champion
    and with the task's trivial baseline (paired bootstrap), which is what promotion decides on."""
    train, validation, test = splits
    metrics: dict[str, Any] = {
        "best_epoch": best_epoch,
        "train_examples": len(train),
        "pseudo_examples": sum(e.is_pseudo for e in train),
    }
    rng = np.random.default_rng(request.seed)
    test_scores: list[ItemScore] = []
    for split_name, examples in (("validation", validation), ("test", test)):
        if examples:
            scores = score_refs(
                spec,
                model,
                request.family,
                [e.ref for e in examples],
                params,
                rng,
                params.batch_size,
                report=report,
                phase="evaluating",
            )
            metrics[split_name] = spec.evaluate(scores, examples) | {"n": len(examples)}
            if split_name == "test":
                test_scores = scores
    if not test:
        return metrics
    comparison: dict[str, Any] = {}
    human_train = [e for e in train if not e.is_pseudo]
    baseline = spec.baseline_scores(human_train, [e.ref for e in test])
    metrics["baseline_test"] = spec.evaluate(baseline, test) | {"n": len(test), "name": spec.baseline_name}
    comparison["baseline"] = paired_comparison(spec, test_scores, baseline, test, request.seed)
    if request.champion_weights is not None:
        # Every test item, not only those this family can read: the champion may be another family.
        test_all = [e for e in request.test if e.target is not None and not e.is_pseudo]
        champion = ScoreRequest(
            task=spec.name,
            weights=request.champion_weights,
            refs=tuple(e.ref for e in test_all),
            media_root=request.media_root,
            batch_size=params.batch_size,
            seed=request.seed,
        )
        if champion_scores := score(spec, champion, device):
            scored = {s.item_id for s in champion_scores}
            judged = [e for e in test_all if e.ref.item_id in scored]
            metrics["champion_test"] = spec.evaluate(champion_scores, judged) | {"n": len(judged)}
            comparison["champion"] = paired_comparison(spec, test_scores, champion_scores, test, request.seed)
    metrics["comparison"] = comparison
    return metrics


def fit(
    spec: TaskSpec,
    request: TrainRequest,
    device: torch.device,
    report: Reporter = _ignore,
) -> TrainOutcome:
    """Train `request.family` on the training examples, keep the epoch best on validation, evaluate it.

    Pseudo-labelled examples train but never evaluate; excluded or unusable examples never reach here.
    """
    started = time.monotonic()
    rng = set_seed(request.seed)
    params, train, validation, test = training_splits(spec, request)
    if not train:
        raise TrainingError("no labelled training examples: label some items in the training split first")
    model = spec.build(request.family, params).to(device)
    # A family fitted directly (no epochs to pick) selects itself by cross-validation: it learns from the
    # validation labels too, and nothing is fitted on validation afterwards.
    direct = spec.fits_directly(request.family)
    spec.prepare(model, request.family, [*train, *validation] if direct else train, params)
    model.to(device)
    history: list[dict[str, float]] = []
    best = BestEpoch(patience=params.patience)
    epochs = 0 if direct else params.epochs
    if epochs:
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)
        report(Progress(phase="training", done=0, total=params.epochs, epoch=0))
    else:
        best.update(model, 0, math.nan)
    for epoch in range(1, epochs + 1):
        epoch_started = time.monotonic()
        loss = train_epoch(spec, model, request.family, optimiser, train, params, rng, device)
        if not math.isfinite(loss):
            raise TrainingError(f"training diverged at epoch {epoch} (loss {loss}); lower the learning rate")
        value = validation_value(spec, model, request.family, validation, params, request.seed)
        history.append({"epoch": epoch, "loss": loss, "validation": value, "seconds": time.monotonic() - epoch_started})
        report(
            Progress(
                phase="training",
                done=epoch,
                total=params.epochs,
                epoch=epoch,
                loss=loss,
                validation=None if math.isnan(value) else value,
            )
        )
        if best.update(model, epoch, value):
            break
        if params.max_seconds and time.monotonic() - started > params.max_seconds:
            break
    model.load_state_dict(best.state)
    calibration = (
        {"fitted": False, "reason": "fitted on train + validation, its strength chosen by cross-validation"}
        if direct
        else spec.calibrate(model, request.family, validation, params, request.seed)
    )
    metrics = final_metrics(spec, model, request, params, (train, validation, test), device, best.epoch, report)
    if calibration:
        metrics["calibration"] = calibration
    weights = weights_dump(task=spec.name, family=request.family, params=params, model=model)
    return TrainOutcome(
        weights=weights,
        family=request.family,
        hparams=params.as_json(),
        metrics=metrics,
        history=history,
        device=str(device),
        seconds=time.monotonic() - started,
    )


def score(
    spec: TaskSpec,
    request: ScoreRequest,
    device: torch.device,
    report: Reporter = _ignore,
) -> list[ItemScore]:
    """Load the weights in `request` and score every reference."""
    data = weights_load(request.weights)
    if data["task"] != spec.name:
        raise TrainingError(f"weights are for task {data['task']!r}, not {spec.name!r}")
    params = spec.params_class.parse(data["hparams"])
    model = spec.build(data["family"], params)
    model_load(model, data["state_dict"])
    model.to(device)
    refs = [ref for ref in request.refs if spec.usable(data["family"], Example(ref=ref, target=None, split=""))]
    return score_refs(
        spec,
        model,
        data["family"],
        refs,
        params,
        np.random.default_rng(request.seed),
        request.batch_size,
        report=report,
    )


def as_float_list(values: np.ndarray | Sequence[float]) -> list[float]:
    return [round(float(v), 6) for v in np.asarray(values).ravel()]


__all__ = [
    "BestEpoch",
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
    "final_metrics",
    "model_load",
    "paired_comparison",
    "fit",
    "score",
    "score_refs",
    "train_epoch",
    "training_splits",
    "validation_value",
    "weights_dump",
    "weights_load",
]
