"""The platform's facade over the workers: submit a request, poll its progress and result, cancel it.

`RayExecutor` runs each job as a Ray task (a GPU requested when the cluster has one; progress flows
back through a small actor). `InlineExecutor` runs the same worker classes on a thread in this process,
for tests and single-machine setups without Ray.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from gpu_workers.workers import ScoringWorker, TrainingWorker
from learning.tasks import Progress, ScoreRequest, TrainRequest

PROGRESS_ACTOR = "lumen-progress"
NAMESPACE = "lumen"


@dataclass
class Handle:
    """A submitted job: its key (the platform's job id) and the executor's own reference to it."""

    key: str
    kind: str
    reference: Any


@dataclass
class PollResult:
    done: bool
    progress: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None
    error: str | None = None


class Executor(ABC):
    """Submit, poll and cancel training and scoring jobs."""

    name: str

    @abstractmethod
    def submit(self, request: TrainRequest | ScoreRequest, key: str) -> Handle:
        """Start the job; return at once."""

    @abstractmethod
    def poll(self, handle: Handle, timeout: float = 1.0) -> PollResult:
        """Wait up to timeout seconds; return new progress reports and, once done, the result or error."""

    @abstractmethod
    def cancel(self, handle: Handle) -> None:
        """Stop the job if it can be stopped."""

    def close(self) -> None:
        return None


def _kind(request: TrainRequest | ScoreRequest) -> str:
    if isinstance(request, TrainRequest):
        return "train"
    if isinstance(request, ScoreRequest):
        return "score"
    raise TypeError(f"not a job request: {type(request).__name__}")


def _run(request: TrainRequest | ScoreRequest, report) -> Any:
    if isinstance(request, TrainRequest):
        return TrainingWorker().run(request, report)
    return ScoringWorker().run(request, report)


# ------------------------------------------------------------------------------------------------ in process
class InlineExecutor(Executor):
    """Run jobs one at a time on a background thread of this process."""

    name = "inline"

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lumen-job")
        self._progress: dict[str, queue.SimpleQueue] = {}
        self._lock = threading.Lock()

    def submit(self, request, key):
        kind = _kind(request)
        reports: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._progress[key] = reports
        future = self._pool.submit(_run, request, lambda progress: reports.put(progress.as_json()))
        return Handle(key=key, kind=kind, reference=future)

    def poll(self, handle, timeout=1.0):
        future: Future = handle.reference
        try:
            future.result(timeout=timeout)
        except FutureTimeout:
            pass
        except Exception:  # noqa: BLE001, S110 — reported below from the future itself
            pass
        progress = self._drain(handle.key)
        if not future.done():
            return PollResult(done=False, progress=progress)
        if future.cancelled():
            return PollResult(done=True, progress=progress, error="cancelled before it started")
        error = future.exception()
        if error is not None:
            return PollResult(done=True, progress=progress, error=f"{type(error).__name__}: {error}")
        return PollResult(done=True, progress=progress, result=future.result())

    def _drain(self, key: str) -> list[dict[str, Any]]:
        reports = self._progress.get(key)
        out = []
        while reports is not None and not reports.empty():
            out.append(reports.get())
        return out

    def cancel(self, handle):
        handle.reference.cancel()  # a job already running on the thread finishes; its result is then ignored

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------------ Ray
class RayExecutor(Executor):
    """Run each job as a Ray task on a local Ray (default) or the cluster at `address`."""

    name = "ray"

    def __init__(self, *, address: str = "", num_cpus: int | None = None) -> None:
        from gpu_workers.cluster import cluster_has_gpu, ray_connect

        self.ray = ray_connect(address=address, num_cpus=num_cpus)
        self.gpu = cluster_has_gpu()
        self.board = _progress_board(self.ray)
        self._remote = self.ray.remote(max_retries=1, retry_exceptions=False)(_ray_job)

    def submit(self, request, key):
        kind = _kind(request)
        # One put of the (possibly large) request; the task gets the reference, not a closure over the data.
        request_ref = self.ray.put(request)
        reference = self._remote.options(num_gpus=1 if self.gpu else 0, name=f"lumen-{kind}-{key}").remote(
            request_ref, self.board, key
        )
        return Handle(key=key, kind=kind, reference=reference)

    def poll(self, handle, timeout=1.0):
        ray = self.ray
        ready, _ = ray.wait([handle.reference], timeout=timeout)
        progress = ray.get(self.board.drain.remote(handle.key))
        if not ready:
            return PollResult(done=False, progress=progress)
        try:
            result = ray.get(handle.reference)
        except ray.exceptions.TaskCancelledError:
            return PollResult(done=True, progress=progress, error="cancelled")
        except ray.exceptions.RayTaskError as error:
            cause = error.cause if getattr(error, "cause", None) is not None else error
            return PollResult(done=True, progress=progress, error=f"{type(cause).__name__}: {cause}")
        except ray.exceptions.RayError as error:  # the worker process died, the node went away …
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return PollResult(done=True, progress=progress, error=f"{type(error).__name__}: {first_line}")
        return PollResult(done=True, progress=progress, result=result)

    def cancel(self, handle):
        self.ray.cancel(handle.reference, force=True)


def _ray_job(request: TrainRequest | ScoreRequest, board: Any, key: str) -> Any:
    """Run one job inside a Ray worker, sending each progress report to the board actor (fire and forget)."""

    def report(progress: Progress) -> None:
        board.report.remote(key, progress.as_json())

    return _run(request, report)


class _ProgressBoard:
    """Hold the progress reports of running jobs until the platform drains them."""

    def __init__(self) -> None:
        self.reports: dict[str, list[dict[str, Any]]] = {}

    def report(self, key: str, progress: dict[str, Any]) -> None:
        self.reports.setdefault(key, []).append(progress)

    def drain(self, key: str) -> list[dict[str, Any]]:
        return self.reports.pop(key, [])


def _progress_board(ray: Any) -> Any:
    actor = ray.remote(num_cpus=0)(_ProgressBoard)
    return actor.options(name=PROGRESS_ACTOR, namespace=NAMESPACE, get_if_exists=True, lifetime="detached").remote()


def executor_from_settings(backend: str, *, address: str = "", num_cpus: int | None = None) -> Executor:
    """Return the executor named by LUMEN_LEARNING_BACKEND ("ray" or "inline")."""
    if backend == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus)
    if backend == "inline":
        return InlineExecutor()
    raise ValueError(f"unknown learning backend {backend!r}; use 'ray' or 'inline'")
