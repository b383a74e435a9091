"""The one training loop and scorer every task shares, and the evaluation that promotion decides on.

`train_epochs` is the loop for single-device and data-parallel training alike: what differs between them (DDP
wrapping, shards, all-reduced losses, rank 0's decisions) is asked of a `Replicas` object. `fit` trains a family
on a request's training examples (keeping the epoch best on validation, then fitting post-hoc calibration on
validation only), evaluates the kept model, and compares it with the champion and the task's trivial baseline on
the same locked test examples (paired bootstrap). `score` loads stored weights and scores references. Nothing here
touches Django or Ray.
"""

from __future__ import annotations

import copy
import io
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from learning.tasks.base import (
    Example,
    Hyperparameters,
    ItemRef,
    ItemScore,
    Progress,
    Reporter,
    ScoreRequest,
    TaskSpec,
    TrainingError,
    TrainOutcome,
    TrainRequest,
    _ignore,
    example_groups,
    model_load,
    weights_dump,
    weights_load,
)


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
    """Run one epoch over `examples` in a random order; return the mean loss.

    An epoch is one pass, or as many passes (each in its own order) as it takes for the whole training to reach
    `params.min_steps` optimiser steps.

    With `shard=(rank, world_size)` only every world_size-th example of the shuffled order is used, from `rank`
    on; every rank must pass an `rng` in the same state so that the shards partition one shared order.
    """
    model.train()
    batches = -(-len(examples) // (params.batch_size * (shard[1] if shard else 1)))
    passes = max(1, -(-params.min_steps // max(params.epochs * batches, 1)))
    order = np.concatenate([rng.permutation(len(examples)) for _ in range(passes)])
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
        loss = spec.loss(logits, targets.to(device), params)
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
    """Return the primary metric of `model` on the validation examples, or NaN when they cannot rank epochs
    (none, or too few for the task: the latest epoch is then kept)."""
    if not examples or not spec.validation_ranks(examples, params):
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
    groups = example_groups(common)
    strata = spec.metric_strata(common)
    difference, low, high = paired_bootstrap(
        spec.metric_value,
        rows_a,
        rows_b,
        n_boot=COMPARISON_RESAMPLES,
        alpha=COMPARISON_ALPHA,
        seed=seed,
        groups=groups,
        strata=strata,
    )
    result = {
        "n": len(common),
        "metric": spec.primary_metric,
        "candidate": spec.metric_value(*rows_a),
        "other": spec.metric_value(*rows_b),
        "difference": difference,
        "interval": [low, high],
        "confidence": 1 - COMPARISON_ALPHA,
        "test": "paired bootstrap",
        "resamples": COMPARISON_RESAMPLES,
        # The interval is the wider of an item and a patient resample (None: items only, no patient keys).
        "patients": None if groups is None else len(set(groups.tolist())),
        # Only resamples holding every class of these items count (None: resampled freely).
        "classes": None if strata is None else len(set(strata.tolist())),
    }
    losses_a, losses_b = spec.item_losses(mine, common), spec.item_losses(theirs, common)
    if losses_a is not None and losses_b is not None:
        # The same resamples; the difference is the other's mean loss minus the candidate's (> 0: candidate better).
        improvement, low, high = paired_bootstrap(
            lambda losses: -float(np.mean(losses)),
            (losses_a,),
            (losses_b,),
            n_boot=COMPARISON_RESAMPLES,
            alpha=COMPARISON_ALPHA,
            seed=seed,
            groups=groups,
        )
        result["proper"] = {
            "metric": spec.proper_score,
            "candidate": float(np.mean(losses_a)),
            "other": float(np.mean(losses_b)),
            "difference": improvement,
            "interval": [low, high],
            "patients": result["patients"],
        }
    return result


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


class Replicas:
    """The processes that train one model together: this process alone unless a subclass says otherwise.

    `gpu_workers.distributed` subclasses it for Ray Train's DDP ranks. `train_epochs` asks it at each point where
    ranks must act alike, so single-device and data-parallel training run the same loop.
    """

    rank: int = 0
    world_size: int = 1

    @property
    def shard(self) -> tuple[int, int] | None:
        """Return (rank, world_size) when each process trains on its own share of an epoch, else None."""
        return None

    def wrap(self, model: nn.Module) -> nn.Module:
        """Return the module the optimiser steps (e.g. DDP around `model`); `model` itself is validated and kept."""
        return model

    def epoch_rng(self, rng: np.random.Generator, epoch: int) -> np.random.Generator:
        """Return the generator that orders and augments `epoch` (alone, `rng` carries on from epoch to epoch)."""
        return rng

    def mean(self, value: float) -> float:
        """Return the mean of `value` over all processes."""
        return value

    def agree(self, flag: bool) -> bool:
        """Return rank 0's `flag` on every process, so all stop after the same epoch."""
        return flag

    def epoch_done(self, row: dict[str, float], checkpoint: Callable[[], dict[str, Any]] | None = None) -> None:
        """Hear every epoch's history row, on every process (rank 0's alone holds the validation value).

        `checkpoint` (given on rank 0) returns what `resume` needs to carry on after this epoch, for replicas that
        keep checkpoints; it is called only by those that do.
        """
        return None

    def resume(self) -> dict[str, Any] | None:
        """Return the state of the last finished epoch when this training restarts after a failure, else None."""
        return None


def train_epochs(
    spec: TaskSpec,
    model: nn.Module,
    family: str,
    train: Sequence[Example],
    validation: Sequence[Example],
    params: Hyperparameters,
    *,
    rng: np.random.Generator,
    seed: int,
    device: torch.device,
    started: float,
    report: Reporter = _ignore,
    replicas: Replicas | None = None,
) -> tuple[BestEpoch, list[dict[str, float]]]:
    """Train `model` for up to `params.epochs` epochs; return the epoch best on validation and the history.

    Rank 0 validates, keeps the best epoch, reports progress and decides when to stop (patience, or
    `params.max_seconds` after `started`); other ranks follow its decision and return an empty history.
    """
    replicas = replicas or Replicas()
    resumed = replicas.resume()
    if resumed is not None:  # before wrapping: every rank starts from the same checkpointed weights
        model.load_state_dict(resumed["model"])
    trained = replicas.wrap(model)
    trainable = [p for p in trained.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=params.weight_decay)
    best = BestEpoch(patience=params.patience)
    history: list[dict[str, float]] = []
    first = 1
    if resumed is not None:
        optimiser.load_state_dict(resumed["optimiser"])
        best = BestEpoch(patience=params.patience, **resumed["best"])
        history, first = list(resumed["history"]), int(resumed["epoch"]) + 1
        if resumed["stopped"]:  # the checkpointed epoch was the last: nothing left to train
            first = params.epochs + 1
    report(Progress(phase="training", done=first - 1, total=params.epochs, epoch=first - 1))

    def checkpoint(epoch: int, stopped: bool) -> Callable[[], dict[str, Any]]:
        def state() -> dict[str, Any]:
            return {
                "epoch": epoch,
                "stopped": stopped or epoch == params.epochs,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimiser": optimiser.state_dict(),
                "best": {"state": best.state, "value": best.value, "epoch": best.epoch, "stale": best.stale},
                "history": list(history),
            }

        return state

    for epoch in range(first, params.epochs + 1):
        epoch_started = time.monotonic()
        epoch_rng = replicas.epoch_rng(rng, epoch)
        loss = train_epoch(spec, trained, family, optimiser, train, params, epoch_rng, device, shard=replicas.shard)
        loss = replicas.mean(loss)  # padded shards are equal-sized, so this is the mean over all examples
        if not math.isfinite(loss):
            raise TrainingError(f"training diverged at epoch {epoch} (loss {loss}); lower the learning rate")
        lead = replicas.rank == 0
        value = validation_value(spec, model, family, validation, params, seed) if lead else math.nan
        row = {"epoch": epoch, "loss": loss, "validation": value, "seconds": time.monotonic() - epoch_started}
        stop = False
        if lead:
            history.append(row)
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
            stop = best.update(model, epoch, value)
            stop = stop or bool(params.max_seconds and time.monotonic() - started > params.max_seconds)
        replicas.epoch_done(row, checkpoint(epoch, stop) if lead else None)
        if replicas.agree(stop):
            break
    return best, history


@dataclass
class Trained:
    """A finished training loop: its parameters, splits, model, best epoch and history."""

    params: Hyperparameters
    splits: tuple[list[Example], list[Example], list[Example]]
    model: nn.Module
    best: BestEpoch
    history: list[dict[str, float]]
    direct: bool
    initialised: int = 0  # pretrained tensors loaded before training (TrainRequest.init_weights)


def train_model(
    spec: TaskSpec,
    request: TrainRequest,
    device: torch.device,
    *,
    started: float,
    report: Reporter = _ignore,
    replicas: Replicas | None = None,
) -> Trained:
    """Seed, build and prepare `request.family` on `device`, then train it through `train_epochs`."""
    rng = set_seed(request.seed)
    params, train, validation, test = training_splits(spec, request)
    if not train:
        raise TrainingError("no labelled training examples: label some items in the training split first")
    model = spec.build(request.family, params)
    initialised = 0
    if request.init_weights:
        state = torch.load(io.BytesIO(request.init_weights), map_location="cpu", weights_only=True)
        initialised = spec.initialise(model, request.family, state)
    model.to(device)
    # A family fitted directly (no epochs to pick) selects itself by cross-validation: it learns from the
    # validation labels too, and nothing is fitted on validation afterwards.
    direct = spec.fits_directly(request.family)
    spec.prepare(model, request.family, [*train, *validation] if direct else train, params)
    model.to(device)
    history: list[dict[str, float]]
    if direct:
        best, history = BestEpoch(patience=params.patience), []
        best.update(model, 0, math.nan)
    else:
        best, history = train_epochs(
            spec,
            model,
            request.family,
            train,
            validation,
            params,
            rng=rng,
            seed=request.seed,
            device=device,
            started=started,
            report=report,
            replicas=replicas,
        )
    return Trained(params, (train, validation, test), model, best, history, direct, initialised)


def kept_outcome(
    spec: TaskSpec,
    request: TrainRequest,
    trained: Trained,
    device: torch.device,
    *,
    started: float,
    report: Reporter = _ignore,
) -> TrainOutcome:
    """Load the best epoch, calibrate it on validation, evaluate it and return the outcome (rank 0 only)."""
    model, params, validation = trained.model, trained.params, trained.splits[1]
    assert trained.best.state is not None  # rank 0 records every epoch, and a direct fit its one
    model.load_state_dict(trained.best.state)
    calibration = (
        {"fitted": False, "reason": "fitted on train + validation, its strength chosen by cross-validation"}
        if trained.direct
        else spec.calibrate(model, request.family, validation, params, request.seed)
    )
    metrics = final_metrics(spec, model, request, params, trained.splits, device, trained.best.epoch, report)
    if calibration:
        metrics["calibration"] = calibration
    if request.init_weights:
        metrics["initialised_from"] = {"source": request.init_source, "tensors": trained.initialised}
    weights = weights_dump(task=spec.name, family=request.family, params=params, model=model)
    return TrainOutcome(
        weights=weights,
        family=request.family,
        hparams=params.as_json(),
        metrics=metrics,
        history=trained.history,
        device=str(device),
        seconds=time.monotonic() - started,
    )


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
    trained = train_model(spec, request, device, started=started, report=report)
    return kept_outcome(spec, request, trained, device, started=started, report=report)


@dataclass
class LoadedScorer:
    """A model loaded from stored weights, ready to score any number of reference batches.

    A scoring worker loads it once (`scorer_load`) and scores chunk after chunk with it, so the weights are read
    and the model built once per worker, not once per chunk.
    """

    spec: TaskSpec
    model: nn.Module
    family: str
    params: Hyperparameters

    def score(
        self, refs: Sequence[ItemRef], *, seed: int, batch_size: int, report: Reporter = _ignore
    ) -> list[ItemScore]:
        """Score the references the model can use (the rest are skipped, as `spec.usable` says)."""
        usable = [ref for ref in refs if self.spec.usable(self.family, Example(ref=ref, target=None, split=""))]
        rng = np.random.default_rng(seed)
        return score_refs(self.spec, self.model, self.family, usable, self.params, rng, batch_size, report=report)


def scorer_load(spec: TaskSpec, weights: bytes, device: torch.device) -> LoadedScorer:
    """Load stored weights for `spec` onto `device`; refuse weights of another task."""
    data = weights_load(weights)
    if data["task"] != spec.name:
        raise TrainingError(f"weights are for task {data['task']!r}, not {spec.name!r}")
    params = spec.params_class.parse(data["hparams"])
    model = spec.build(data["family"], params)
    model_load(model, data["state_dict"])
    model.to(device)
    return LoadedScorer(spec=spec, model=model, family=data["family"], params=params)


def score(
    spec: TaskSpec,
    request: ScoreRequest,
    device: torch.device,
    report: Reporter = _ignore,
) -> list[ItemScore]:
    """Load the weights in `request` and score every reference."""
    scorer = scorer_load(spec, request.weights, device)
    return scorer.score(request.refs, seed=request.seed, batch_size=request.batch_size, report=report)


__all__ = [
    "BestEpoch",
    "COMPARISON_ALPHA",
    "LoadedScorer",
    "Replicas",
    "Trained",
    "final_metrics",
    "fit",
    "kept_outcome",
    "paired_comparison",
    "score",
    "score_refs",
    "scorer_load",
    "set_seed",
    "train_epoch",
    "train_epochs",
    "train_model",
    "trainable_examples",
    "training_splits",
    "validation_value",
]
