"""Data-parallel training of a task's model over several Ray Train workers (PyTorch DDP).

`fit_data_parallel` returns what `learning.tasks.fit` returns, so callers can swap one for the other. Each worker
runs the same loop as `fit` (`learning.tasks.training.train_epochs`), told by `RayTrainRanks` how to wrap the model,
which shard of every epoch's shuffled order is its own and how ranks agree; rank 0 alone validates, keeps the best
epoch, evaluates and writes the checkpoint the driver reads back. Nothing here touches Django or the database.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from learning.tasks import (
    HyperparameterError,
    Progress,
    Reporter,
    TrainingError,
    TrainOutcome,
    TrainRequest,
    get_task,
)
from learning.tasks.training import Replicas, kept_outcome, train_model, trainable_examples

WEIGHTS_FILE = "weights.pt"
SUMMARY_FILE = "summary.json"
RESUME_FILE = "resume.pt"  # an epoch's checkpoint: weights, optimiser, best epoch and history


class RayTrainRanks(Replicas):
    """This worker's place in a Ray Train group: DDP around the model, its shard, rank 0's decisions."""

    def __init__(self, rank: int, world_size: int, seed: int, device: torch.device) -> None:
        self.rank, self.world_size, self.seed, self.device = rank, world_size, seed, device

    @property
    def shard(self) -> tuple[int, int]:
        return (self.rank, self.world_size)

    def wrap(self, model: nn.Module) -> nn.Module:
        import ray.train.torch

        wrapped = ray.train.torch.prepare_model(model)  # a single worker is not wrapped in DDP
        torch.manual_seed(self.seed + self.rank)  # same initial weights above, different dropout masks from here on
        return wrapped

    def epoch_rng(self, rng: np.random.Generator, epoch: int) -> np.random.Generator:
        # Seeded per epoch and identical on every rank, so the shards split one shared order.
        return np.random.default_rng([self.seed, epoch])

    def mean(self, value: float) -> float:
        if not self._grouped():
            return value
        # On the training device: a GPU group's collectives (NCCL) take CUDA tensors only.
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / dist.get_world_size()

    def agree(self, flag: bool) -> bool:
        if not self._grouped():
            return flag
        tensor = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(tensor, src=0)
        return bool(tensor.item())

    def epoch_done(self, row: dict[str, float], checkpoint: Callable[[], dict[str, Any]] | None = None) -> None:
        """Report the epoch on every rank (Ray Train waits for all); rank 0 attaches the state to resume from."""
        import ray.train

        if checkpoint is None:
            ray.train.report(row)
            return
        with tempfile.TemporaryDirectory() as folder:
            torch.save(checkpoint(), Path(folder, RESUME_FILE))
            ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(folder))

    def resume(self) -> dict[str, Any] | None:
        """The last epoch's state when Ray Train restarted this worker group after a failure, else None."""
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            state = Path(folder, RESUME_FILE)
            if not state.exists():  # the final checkpoint (weights + summary): the run had finished
                return None
            resumed = torch.load(state, map_location="cpu", weights_only=False)
        self.resumed_after = int(resumed["epoch"])
        return resumed

    resumed_after: int | None = None  # the epoch this group carried on from after a failure

    @staticmethod
    def _grouped() -> bool:
        return dist.is_available() and dist.is_initialized()


def _train_worker(config: dict[str, Any]) -> None:
    """Train one rank through the shared loop; rank 0 also evaluates and writes the final checkpoint."""
    import ray.train
    import ray.train.torch

    request: TrainRequest = config["request"]
    started = time.monotonic()
    context = ray.train.get_context()
    device = ray.train.torch.get_device()
    ranks = RayTrainRanks(context.get_world_rank(), context.get_world_size(), request.seed, device)
    spec = get_task(request.task, request.media_root)
    # Every rank prepares on the whole training set, not its shard, so all normalise identically.
    trained = train_model(spec, request, device, started=started, replicas=ranks)
    if ranks.rank != 0:
        ray.train.report({"final": 1.0})  # every rank must report as often as rank 0
        return
    outcome = kept_outcome(spec, request, trained, device, started=started)
    metrics = outcome.metrics | {"workers": ranks.world_size}
    if ranks.resumed_after is not None:  # said on the model page: the run lost a worker and carried on
        metrics["resumed_after_epoch"] = ranks.resumed_after
    summary = {"metrics": metrics, "history": outcome.history, "hparams": outcome.hparams, "device": outcome.device}
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, WEIGHTS_FILE).write_bytes(outcome.weights)
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
    name: str | None = None,
    max_failures: int = 2,
    report: Reporter | None = None,
) -> TrainOutcome:
    """Train `request` on `num_workers` Ray Train workers with DDP and return the best epoch's outcome.

    `use_gpu=None` takes one GPU per worker when the cluster has any. `storage_path` must be reachable from every
    node of a multi-node cluster; without it a temporary local directory is used and removed afterwards.
    Rank 0 checkpoints every epoch there: when a worker (or its node) dies, Ray Train restarts the group from the
    last epoch's checkpoint, up to `max_failures` times; and a run started again under the same `name` and
    `storage_path` (the job retried after its orchestrator died) carries on from that checkpoint too.
    `report` hears epoch 0 before the workers start, then every epoch replayed from the final history: live
    reports would have to travel from the Ray Train controller actor, where a driver-side callable cannot run.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
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
                name=name or f"lumen-{request.task}-{uuid.uuid4().hex[:8]}",
                storage_path=storage_path or scratch,
                failure_config=FailureConfig(max_failures=max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=2),
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


__all__ = ["RayTrainRanks", "fit_data_parallel"]
