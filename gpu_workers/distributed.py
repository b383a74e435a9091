"""Data-parallel training of a task's model over several Ray Train workers (PyTorch DDP).

`fit_data_parallel` returns what `learning.tasks.fit` returns, so callers can swap one for the other. Each worker
trains on its shard of every epoch's shuffled order; rank 0 alone validates, keeps the best epoch, evaluates and
writes the checkpoint the driver reads back. Nothing here touches Django or the database.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from learning.tasks import (
    HyperparameterError,
    Progress,
    Reporter,
    TrainingError,
    TrainOutcome,
    TrainRequest,
    get_task,
)
from learning.tasks.base import weights_dump
from learning.tasks.training import (
    BestEpoch,
    final_metrics,
    set_seed,
    train_epoch,
    trainable_examples,
    training_splits,
    validation_value,
)

WEIGHTS_FILE = "weights.pt"
SUMMARY_FILE = "summary.json"


def _all_mean(value: float) -> float:
    """Return the mean of `value` over all ranks (the value itself when training alone)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


def _rank0_says(flag: bool) -> bool:
    """Return rank 0's `flag` on every rank, so all ranks stop after the same epoch."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    tensor = torch.tensor([int(flag)])
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def _train_worker(config: dict[str, Any]) -> None:
    """Train one rank; rank 0 also validates, evaluates and writes the final checkpoint."""
    import ray.train
    import ray.train.torch

    request: TrainRequest = config["request"]
    started = time.monotonic()
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    spec = get_task(request.task, request.media_root)
    set_seed(request.seed)
    params, train, validation, test = training_splits(spec, request)  # as in the single-process loop
    model = spec.build(request.family, params)
    # On the whole training set, not the shard: every rank must normalise identically.
    spec.prepare(model, request.family, train, params)
    model = ray.train.torch.prepare_model(model)
    torch.manual_seed(request.seed + rank)  # same initial weights above, different dropout masks from here on
    unwrapped = getattr(model, "module", model)  # a single worker is not wrapped in DDP
    device = next(unwrapped.parameters()).device
    optimiser = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)

    history: list[dict[str, float]] = []
    best = BestEpoch(patience=params.patience)
    for epoch in range(1, params.epochs + 1):
        epoch_started = time.monotonic()
        # Seeded per epoch and identical on every rank, so the shards split one shared order.
        order_rng = np.random.default_rng([request.seed, epoch])
        loss = train_epoch(
            spec, model, request.family, optimiser, train, params, order_rng, device, shard=(rank, world_size)
        )
        loss = _all_mean(loss)  # padded shards are equal-sized, so this is the mean over all examples
        if not math.isfinite(loss):
            raise TrainingError(f"training diverged at epoch {epoch} (loss {loss}); lower the learning rate")
        value = (
            validation_value(spec, unwrapped, request.family, validation, params, request.seed)
            if rank == 0
            else math.nan
        )
        row = {"epoch": epoch, "loss": loss, "validation": value, "seconds": time.monotonic() - epoch_started}
        stop = False
        if rank == 0:
            history.append(row)
            stop = best.update(unwrapped, epoch, value)
            stop = stop or bool(params.max_seconds and time.monotonic() - started > params.max_seconds)
        ray.train.report(row)
        if _rank0_says(stop):
            break

    if rank != 0:
        ray.train.report({"final": 1.0})  # every rank must report as often as rank 0
        return
    unwrapped.load_state_dict(best.state)
    calibration = spec.calibrate(unwrapped, request.family, validation, params, request.seed)
    splits = (train, validation, test)
    metrics = final_metrics(spec, unwrapped, request, params, splits, device, best.epoch) | {"workers": world_size}
    if calibration:
        metrics["calibration"] = calibration
    weights = weights_dump(task=spec.name, family=request.family, params=params, model=unwrapped)
    summary = {"metrics": metrics, "history": history, "hparams": params.as_json(), "device": str(device)}
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, WEIGHTS_FILE).write_bytes(weights)
        # NaN metrics travel as Python's bare NaN token; numpy scalars that are not floats become floats.
        Path(folder, SUMMARY_FILE).write_text(json.dumps(summary, default=float))
        ray.train.report({"final": 1.0}, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _worker_error(error: BaseException) -> TrainingError:
    """Return a TrainingError carrying the first worker's own message instead of Ray's wrapper."""
    failures = getattr(error, "worker_failures", None)  # Train V2's WorkerGroupError
    if failures:
        cause: BaseException = failures[min(failures)]
    else:
        cause = error
        while cause.__cause__ is not None:  # Train V1 chains the worker error
            cause = cause.__cause__
    # Ray's text of a worker exception ends with its traceback's last line, "module.Class: message".
    lines = str(cause).strip().splitlines() or [type(cause).__name__]
    message = re.sub(r"^[\w.]+(Error|Exception): ", "", lines[-1])
    return TrainingError(f"distributed training failed: {message}")


def fit_data_parallel(
    request: TrainRequest,
    *,
    num_workers: int = 2,
    use_gpu: bool | None = None,
    storage_path: str | None = None,
    report: Reporter | None = None,
) -> TrainOutcome:
    """Train `request` on `num_workers` Ray Train workers with DDP and return the best epoch's outcome.

    `use_gpu=None` takes one GPU per worker when the cluster has any. `storage_path` must be reachable from every
    node of a multi-node cluster; without it a temporary local directory is used and removed afterwards.
    `report` hears epoch 0 before the workers start, then every epoch replayed from the final history: live
    reports would have to travel from the Ray Train controller actor, where a driver-side callable cannot run.
    """
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from gpu_workers.cluster import cluster_has_gpu, ray_connect

    started = time.monotonic()
    if num_workers < 1:
        raise TrainingError("num_workers must be at least 1")
    # Refuse bad requests here, before paying for a worker group.
    spec = get_task(request.task, request.media_root)
    params = spec.params_class.parse(request.hparams)
    if request.family not in spec.families:
        raise HyperparameterError(
            "family", f"{request.family!r} is not a {spec.name} model; use one of {spec.families}"
        )
    if spec.fits_directly(request.family):
        raise TrainingError(f"{request.family} is fitted in one step, without epochs: there is nothing to distribute")
    if not trainable_examples(spec, request.family, request.train, allow_pseudo=True):
        raise TrainingError("no labelled training examples: label some items in the training split first")
    ray_connect()
    if use_gpu is None:
        use_gpu = cluster_has_gpu()
    try:  # Train V1 holds a CPU for its trainer actor (starving a small cluster); V2 refuses the argument
        scaling = ScalingConfig(num_workers=num_workers, use_gpu=use_gpu, trainer_resources={"CPU": 0})
    except DeprecationWarning:
        scaling = ScalingConfig(num_workers=num_workers, use_gpu=use_gpu)
    if report is not None:
        report(Progress(phase="training", done=0, total=params.epochs, epoch=0))
    with tempfile.TemporaryDirectory(prefix="lumen-ray-train-") as scratch:
        trainer = TorchTrainer(
            _train_worker,
            train_loop_config={"request": request},
            scaling_config=scaling,
            run_config=RunConfig(
                name=f"lumen-{request.task}-{uuid.uuid4().hex[:8]}", storage_path=storage_path or scratch
            ),
        )
        try:
            result = trainer.fit()
        except Exception as error:  # noqa: BLE001 — every Ray failure becomes one the platform can show
            raise _worker_error(error) from error
        if result.checkpoint is None:
            raise TrainingError("distributed training ended without a checkpoint from rank 0")
        with result.checkpoint.as_directory() as folder:
            weights = Path(folder, WEIGHTS_FILE).read_bytes()
            summary = json.loads(Path(folder, SUMMARY_FILE).read_text())
    history = summary["history"]
    if report is not None:
        for row in history:
            value = row["validation"]
            report(
                Progress(
                    phase="training",
                    done=int(row["epoch"]),
                    total=params.epochs,
                    epoch=int(row["epoch"]),
                    loss=row["loss"],
                    validation=None if value is None or math.isnan(value) else value,
                )
            )
    return TrainOutcome(
        weights=weights,
        family=request.family,
        hparams=summary["hparams"],
        metrics=summary["metrics"],
        history=history,
        device=f"{'cuda' if use_gpu else 'cpu'} x{num_workers} (ray train)",
        seconds=time.monotonic() - started,
    )


__all__ = ["fit_data_parallel"]
