"""The platform's facade over the workers: submit a request, poll its progress and result, cancel it.

`RayExecutor` runs a training job, or a frame-interpolation training, as a Ray task (a GPU requested when the
cluster has one; progress flows back through a small actor owned by this process) and fans a scoring job out
over a pool of scoring actors, each holding the model once, with a bounded number of chunks in flight
(`score_stream`). `InlineExecutor` runs the same worker classes on a thread in this process, for tests and
single-machine setups without Ray.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Any

from gpu_workers.workers import InterpolationWorker, ScoringModel, ScoringWorker, TrainingWorker
from learning.interpolation import InterpolationRequest
from learning.tasks import ItemRef, ItemScore, Progress, ScoreRequest, TrainRequest

log = logging.getLogger(__name__)
# Scoring chunks in flight per scoring actor: one running, one waiting, so an actor never idles between chunks
# while the orchestrator stores the last one, and no more than that is held in the object store.
IN_FLIGHT_PER_ACTOR = 2
# A chunk whose actor died (its node gone, restarts used up) is sent to another actor this many times.
CHUNK_ATTEMPTS = 3


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


@dataclass(frozen=True)
class ScoreChunk:
    """One piece of a scoring job: its place in the job, the references to score and its seed."""

    index: int
    refs: tuple[ItemRef, ...]
    seed: int


@dataclass
class ChunkEvent:
    """What `score_stream` yields: a finished chunk (its scores, or the error that ended the job), or, with
    `chunk` None, word that the stream is still waiting (so the caller can beat its heartbeat), with the progress
    reports made inside a running chunk where the executor has them."""

    chunk: ScoreChunk | None = None
    scores: list[ItemScore] = field(default_factory=list)
    error: str | None = None
    progress: list[dict[str, Any]] = field(default_factory=list)


class Executor(ABC):
    """Submit, poll and cancel training and scoring jobs."""

    name: str

    @abstractmethod
    def submit(self, request: TrainRequest | ScoreRequest | InterpolationRequest, key: str) -> Handle:
        """Start the job; return at once."""

    @abstractmethod
    def poll(self, handle: Handle, timeout: float = 1.0) -> PollResult:
        """Wait up to timeout seconds; return new progress reports and, once done, the result or error."""

    @abstractmethod
    def cancel(self, handle: Handle) -> None:
        """Stop the job if it can be stopped."""

    def close(self) -> None:
        return None

    def score_stream(
        self,
        template: ScoreRequest,
        chunks: Iterable[ScoreChunk],
        *,
        key: str,
        count: int | None = None,
        poll_seconds: float = 1.0,
    ) -> Iterator[ChunkEvent]:
        """Score the chunks with `template`'s weights; yield each finished chunk as it finishes.

        `chunks` may be a generator (drawn only as chunks are sent off); `count` says how many it holds.
        This default scores one chunk after another through `submit` / `poll` (a request per chunk);
        `RayExecutor` scores them in parallel. A chunk that fails ends the stream with its error.
        """
        for chunk in chunks:
            handle = self.submit(replace(template, refs=chunk.refs, seed=chunk.seed), key=key)
            while True:
                polled = self.poll(handle, timeout=poll_seconds)
                if polled.done:
                    yield ChunkEvent(
                        chunk=chunk, scores=polled.result or [], error=polled.error, progress=polled.progress
                    )
                    if polled.error is not None:
                        return
                    break
                yield ChunkEvent(progress=polled.progress)


JobRequest = TrainRequest | ScoreRequest | InterpolationRequest


def _kind(request: JobRequest) -> str:
    if isinstance(request, TrainRequest):
        return "train"
    if isinstance(request, ScoreRequest):
        return "score"
    if isinstance(request, InterpolationRequest):
        return "interpolate"
    raise TypeError(f"not a job request: {type(request).__name__}")


def _run(request: JobRequest, report) -> Any:
    if isinstance(request, TrainRequest):
        return TrainingWorker().run(request, report)
    if isinstance(request, InterpolationRequest):
        return InterpolationWorker().run(request, report)
    return ScoringWorker().run(request, report)


def _drained(reports: queue.SimpleQueue) -> list[dict[str, Any]]:
    out = []
    while not reports.empty():
        out.append(reports.get())
    return out


def _future_poll(future: Future, timeout: float, progress_now: Callable[[], list[dict[str, Any]]]) -> PollResult:
    """Wait up to `timeout` for a job running on a thread of this process; its progress, and its end if it ended."""
    try:
        future.result(timeout=timeout)
    except FutureTimeout:
        pass
    except Exception:  # noqa: BLE001, S110 — reported below from the future itself
        pass
    progress = progress_now()
    if not future.done():
        return PollResult(done=False, progress=progress)
    if future.cancelled():
        return PollResult(done=True, progress=progress, error="cancelled before it started")
    error = future.exception()
    if error is not None:
        return PollResult(done=True, progress=progress, error=f"{type(error).__name__}: {error}")
    return PollResult(done=True, progress=progress, result=future.result())


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
        return _future_poll(handle.reference, timeout, lambda: self._drain(handle.key))

    def _drain(self, key: str) -> list[dict[str, Any]]:
        reports = self._progress.get(key)
        return _drained(reports) if reports is not None else []

    def cancel(self, handle):
        handle.reference.cancel()  # a job already running on the thread finishes; its result is then ignored

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------------ Ray
class RayExecutor(Executor):
    """Run jobs on a local Ray (default) or the cluster at `address`: training as a task, scoring on actors.

    `scoring_workers`: scoring actors per job (0: as many as the cluster has CPUs, or GPU shares when it has GPUs).
    `gpu_share`: the part of a GPU each scoring actor asks for (small models share a GPU; 1.0 for big ones).
    """

    name = "ray"

    def __init__(
        self, *, address: str = "", num_cpus: int | None = None, scoring_workers: int = 0, gpu_share: float = 0.5
    ) -> None:
        from gpu_workers.cluster import cluster_has_gpu, ray_connect

        self.ray = ray_connect(address=address, num_cpus=num_cpus)
        self.gpu = cluster_has_gpu()
        self.scoring_workers = scoring_workers
        self.gpu_share = gpu_share
        self.board = _progress_board(self.ray)
        self._remote = self.ray.remote(max_retries=1, retry_exceptions=False)(_ray_job)
        self.scoring_actors_live: list[Any] = []  # the running scoring job's actors (for operators and tests)

    def submit(self, request, key):
        kind = _kind(request)
        if isinstance(request, TrainRequest) and request.workers > 1:
            return self._submit_data_parallel(request, key)
        # One put of the (possibly large) request; the task gets the reference, not a closure over the data.
        request_ref = self.ray.put(request)
        reference = self._remote.options(num_gpus=1 if self.gpu else 0, name=f"lumen-{kind}-{key}").remote(
            request_ref, self.board, key
        )
        return Handle(key=key, kind=kind, reference=reference)

    def _submit_data_parallel(self, request: TrainRequest, key: str) -> Handle:
        """Train on `request.workers` Ray Train workers: TorchTrainer.fit blocks, so it runs on a thread here.

        Checkpoints go under `request.checkpoint_dir` in a run named after the job, so a retry of the job resumes.
        """
        from gpu_workers.distributed import fit_data_parallel

        reports: queue.SimpleQueue = queue.SimpleQueue()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lumen-train-{key}")
        future = pool.submit(
            fit_data_parallel,
            request,
            num_workers=request.workers,
            use_gpu=self.gpu,
            storage_path=request.checkpoint_dir or None,
            name=f"lumen-job-{key}",
            report=lambda progress: reports.put(progress.as_json()),
        )
        pool.shutdown(wait=False)
        return Handle(key=key, kind="train", reference=_DataParallelRun(future, reports))

    def poll(self, handle, timeout=1.0):
        if isinstance(handle.reference, _DataParallelRun):
            return handle.reference.poll(timeout)
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
            return PollResult(done=True, progress=progress, error=_task_error(error))
        except ray.exceptions.RayError as error:  # the worker process died, the node went away …
            return PollResult(done=True, progress=progress, error=_ray_error(error))
        return PollResult(done=True, progress=progress, result=result)

    def cancel(self, handle):
        if isinstance(handle.reference, _DataParallelRun):
            handle.reference.future.cancel()  # a run already training finishes; its result is then ignored
            return
        self.ray.cancel(handle.reference, force=True)

    def close(self):
        # The progress board belongs to this process (not detached): kill it now rather than at the driver's exit.
        try:
            self.ray.kill(self.board)
        except Exception:  # noqa: BLE001, S110 — Ray already shut down: nothing left to clean
            pass

    # --- scoring fanned out over actors
    def scoring_actors(self, chunks: int) -> int:
        """How many scoring actors a job of `chunks` chunks gets: the setting, else what the cluster has free now
        (other jobs' actors hold theirs: an actor waiting for resources would hold its chunks back)."""
        if self.scoring_workers > 0:
            wanted = self.scoring_workers
        elif self.gpu:
            wanted = int(self.ray.available_resources().get("GPU", 0) / self.gpu_share)
        else:
            wanted = int(self.ray.available_resources().get("CPU", 1))
        return max(1, min(wanted, chunks))

    def score_stream(self, template, chunks, *, key, count=None, poll_seconds=1.0):
        """Score chunks on a pool of actors, each loading the model once; yield chunks as they finish.

        At most IN_FLIGHT_PER_ACTOR chunks per actor are out at once, and chunks are drawn from `chunks` only as
        room frees, so a big job never floods the object store and the caller's writes keep pace. When an actor's
        process or node dies, its chunks go to the actors still alive (each chunk CHUNK_ATTEMPTS times at most);
        the job fails only when none is left. The actors are killed when the stream ends, however it ends.
        """
        ray = self.ray
        pending_chunks = iter(chunks)
        first = next(pending_chunks, None)
        if first is None:
            return
        backlog: list[ScoreChunk] = [first]
        actors_wanted = self.scoring_actors(chunks=count if count is not None else 1 << 30)
        weights = ray.put(template.weights)
        # No restarts: a restarted actor may find no free resources (its node gone, the rest held by its peers) and
        # wait forever; the chunks of a lost actor go to the live ones instead.
        options: dict[str, Any] = {"num_cpus": 1, "max_restarts": 0}
        if self.gpu:
            options["num_gpus"] = self.gpu_share
        actor_class = ray.remote(_ScoringActor).options(**options)
        actors = [
            actor_class.remote(template.task, weights, template.media_root, options["num_cpus"])
            for _ in range(actors_wanted)
        ]
        self.scoring_actors_live = actors
        load: dict[int, int] = {index: 0 for index in range(len(actors))}
        in_flight: dict[Any, tuple[ScoreChunk, int, int]] = {}  # reference -> (chunk, actor index, attempt)
        retry: list[tuple[ScoreChunk, int]] = []
        exhausted = False
        try:
            while True:
                while load and (retry or backlog or not exhausted):
                    index = min(load, key=load.__getitem__)
                    if load[index] >= IN_FLIGHT_PER_ACTOR:
                        break
                    if retry:
                        chunk, attempt = retry.pop(0)
                    elif backlog:
                        chunk, attempt = backlog.pop(0), 1
                    else:
                        following = next(pending_chunks, None)
                        if following is None:
                            exhausted = True
                            break
                        chunk, attempt = following, 1
                    reference = actors[index].score.remote(chunk.refs, chunk.seed, template.batch_size)
                    in_flight[reference] = (chunk, index, attempt)
                    load[index] += 1
                if not in_flight:
                    if retry:  # chunks to retry but no live actor left
                        yield ChunkEvent(chunk=retry[0][0], error="every scoring worker died")
                    return
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=poll_seconds)
                if not ready:
                    yield ChunkEvent()
                    continue
                for reference in ready:
                    chunk, index, attempt = in_flight.pop(reference)
                    if index in load:
                        load[index] -= 1
                    try:
                        scores = ray.get(reference)
                    except ray.exceptions.RayActorError as error:
                        # Restarts used up or the node gone: this actor is lost; its chunk goes elsewhere.
                        log.warning("scoring actor %s of job %s lost: %s", index, key, type(error).__name__)
                        load.pop(index, None)
                        if attempt >= CHUNK_ATTEMPTS:
                            yield ChunkEvent(chunk=chunk, error=f"chunk {chunk.index}: {_ray_error(error)}")
                            return
                        retry.append((chunk, attempt + 1))
                        continue
                    except ray.exceptions.RayTaskError as error:  # the scoring code itself failed: not retried
                        yield ChunkEvent(chunk=chunk, error=_task_error(error))
                        return
                    yield ChunkEvent(chunk=chunk, scores=scores)
        finally:
            self.scoring_actors_live = []
            for actor in actors:
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001, S110 — already dead
                    pass


@dataclass
class _DataParallelRun:
    """A Ray Train run driven from a thread of this process: its future and the progress it reported."""

    future: Future
    reports: queue.SimpleQueue

    def poll(self, timeout: float) -> PollResult:
        return _future_poll(self.future, timeout, lambda: _drained(self.reports))


class _ScoringActor:
    """A Ray actor holding one job's model; it scores chunk after chunk with it."""

    def __init__(self, task: str, weights: bytes, media_root: str, cpus: float) -> None:
        import torch

        torch.set_num_threads(max(1, math.floor(cpus)))
        self.model = ScoringModel(task, weights, media_root)

    def score(self, refs: tuple[ItemRef, ...], seed: int, batch_size: int) -> list[ItemScore]:
        return self.model.score(refs, seed, batch_size)

    def pid(self) -> int:
        import os

        return os.getpid()


def _task_error(error: Any) -> str:
    cause = error.cause if getattr(error, "cause", None) is not None else error
    return f"{type(cause).__name__}: {cause}"


def _ray_error(error: Exception) -> str:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}"


def _ray_job(request: JobRequest, board: Any, key: str) -> Any:
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
    """A progress board owned by this driver: it goes when the driver goes (or at `close`), never left behind."""
    return ray.remote(num_cpus=0)(_ProgressBoard).remote()


def executor_from_settings(
    backend: str, *, address: str = "", num_cpus: int | None = None, scoring_workers: int = 0, gpu_share: float = 0.5
) -> Executor:
    """Return the executor named by LUMEN_LEARNING_BACKEND ("ray" or "inline")."""
    if backend == "ray":
        return RayExecutor(address=address, num_cpus=num_cpus, scoring_workers=scoring_workers, gpu_share=gpu_share)
    if backend == "inline":
        return InlineExecutor()
    raise ValueError(f"unknown learning backend {backend!r}; use 'ray' or 'inline'")
