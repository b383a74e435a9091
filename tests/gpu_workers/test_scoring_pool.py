"""Scoring fanned out over Ray actors: the model is loaded once per actor, chunks go out as room frees, a killed
actor's chunks are scored by the others, and nothing is left behind on the cluster."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from gpu_workers.executors import IN_FLIGHT_PER_ACTOR, InlineExecutor, RayExecutor, ScoreChunk
from gpu_workers.workers import ScoringModel, TrainingWorker
from learning.cohorts import generate_xa_cohort
from learning.tasks import CineRef, Example, ScoreRequest, TrainRequest


@pytest.fixture(scope="module")
def scored_cohort(tmp_path_factory) -> tuple[Path, list[CineRef], bytes]:
    """A small XA cohort and the weights of a video model trained on part of it."""
    root = tmp_path_factory.mktemp("xa-pool")
    truths = generate_xa_cohort(root, n_patients=8, runs_per_patient=3, frames=(8, 12), size=32, seed=5)
    refs = [
        CineRef(
            item_id=i,
            path=str(t.path.relative_to(root)),
            geometry=(t.primary_angle, t.secondary_angle, t.source_to_detector_mm, t.source_to_patient_mm),
        )
        for i, t in enumerate(truths)
    ]
    examples = [
        Example(ref=ref, target=["LCA", "RCA", "neither"].index(t.vessel), split="train", label_id=i, label_version=1)
        for i, (ref, t) in enumerate(zip(refs, truths, strict=True))
    ]
    outcome = TrainingWorker(device="cpu").run(
        TrainRequest(
            task="vessel_type",
            family="r2plus1d",
            hparams={"epochs": 1, "size": 16, "clip_frames": 4, "width": 2, "crops": 2, "patience": 0},
            train=tuple(examples[:10]),
            validation=tuple(examples[10:12]),
            test=tuple(examples[12:14]),
            media_root=str(root),
        )
    )
    return root, refs, outcome.weights


def _chunks(refs: list[CineRef], size: int) -> list[ScoreChunk]:
    return [ScoreChunk(index=i, refs=tuple(refs[i : i + size]), seed=100 + i) for i in range(0, len(refs), size)]


def _template(root: Path, weights: bytes) -> ScoreRequest:
    return ScoreRequest(task="vessel_type", weights=weights, refs=(), media_root=str(root), batch_size=4)


def _finished(stream) -> dict[int, list]:
    out: dict[int, list] = {}
    for event in stream:
        assert event.error is None, event.error
        if event.chunk is not None:
            out[event.chunk.index] = event.scores
    return out


def _gone(actors: list, within: float = 15.0) -> bool:
    """Whether every one of these actors is dead within `within` seconds (`ray.kill` returns before it is)."""
    import time

    import ray

    deadline = time.monotonic() + within
    for actor in actors:
        while True:
            try:
                ray.get(actor.pid.remote(), timeout=30)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
    return True


def _watch(executor: RayExecutor) -> list:
    """Collect the actors of the executor's running stream."""
    seen: list = []
    original = type(executor).score_stream

    def watched(*args, **kwargs):
        for event in original(executor, *args, **kwargs):
            seen.extend(a for a in executor.scoring_actors_live if a not in seen)
            yield event

    executor.score_stream = watched  # type: ignore[method-assign]
    return seen


def test_actors_score_every_chunk_exactly_as_one_process_does(local_ray, scored_cohort):
    root, refs, weights = scored_cohort
    chunks = _chunks(refs, 4)
    executor = RayExecutor(scoring_workers=2)
    actors = _watch(executor)
    try:
        parallel = _finished(executor.score_stream(_template(root, weights), chunks, key="t1", count=len(chunks)))
    finally:
        executor.close()
    assert len(actors) == 2
    model = ScoringModel("vessel_type", weights, str(root), device="cpu")
    assert sorted(parallel) == [c.index for c in chunks]
    for chunk in chunks:
        expected = model.score(chunk.refs, chunk.seed, 4)
        got = parallel[chunk.index]
        assert [s.item_id for s in got] == [s.item_id for s in expected]
        for a, b in zip(got, expected, strict=True):
            assert a.output == b.output and a.uncertainty == pytest.approx(b.uncertainty)
    # The inline executor's sequential stream gives the same.
    inline = _finished(InlineExecutor().score_stream(_template(root, weights), chunks, key="t1b"))
    assert {i: [s.output for s in v] for i, v in inline.items()} == {
        i: [s.output for s in v] for i, v in parallel.items()
    }
    assert _gone(actors)


def test_chunks_are_drawn_only_as_room_frees(local_ray, scored_cohort):
    root, refs, weights = scored_cohort
    drawn: list[int] = []
    chunks = _chunks(refs, 2)

    def lazily():
        for chunk in chunks:
            drawn.append(chunk.index)
            yield chunk

    executor = RayExecutor(scoring_workers=2)
    finished = 0
    try:
        for event in executor.score_stream(_template(root, weights), lazily(), key="t2", count=len(chunks)):
            if event.chunk is not None:
                finished += 1
            # Never more out than the actors can hold (plus the one drawn to look ahead).
            assert len(drawn) - finished <= 2 * IN_FLIGHT_PER_ACTOR + 1
    finally:
        executor.close()
    assert finished == len(chunks) == len(drawn)


def test_a_scoring_actor_killed_mid_job_hands_its_chunks_to_the_others(local_ray, scored_cohort):
    root, refs, weights = scored_cohort
    chunks = _chunks(refs, 2)
    import ray

    executor = RayExecutor(scoring_workers=2)
    actors = _watch(executor)
    killed = []
    out: dict[int, list] = {}
    try:
        for event in executor.score_stream(_template(root, weights), chunks, key="t3", count=len(chunks)):
            assert event.error is None, event.error
            if event.chunk is not None:
                out[event.chunk.index] = event.scores
                if not killed:  # the first chunk is back: kill a worker process that holds a model, mid-job
                    pid = ray.get(actors[0].pid.remote())
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
    finally:
        executor.close()
    assert killed and sorted(out) == [c.index for c in chunks]
    model = ScoringModel("vessel_type", weights, str(root), device="cpu")
    for chunk in chunks:
        assert [s.output for s in out[chunk.index]] == [s.output for s in model.score(chunk.refs, chunk.seed, 4)]
    assert _gone(actors)


def test_broken_scoring_code_ends_the_stream_with_its_error_and_cleans_up(local_ray, scored_cohort):
    root, refs, weights = scored_cohort
    missing = [CineRef(item_id=999, path="no/such/run.dcm", geometry=None), *refs[:3]]
    executor = RayExecutor(scoring_workers=2)
    actors = _watch(executor)
    try:
        events = list(executor.score_stream(_template(root, weights), _chunks(missing, 2), key="t4", count=2))
    finally:
        executor.close()
    errors = [e.error for e in events if e.error]
    assert len(errors) == 1 and "input file is missing: no/such/run.dcm" in errors[0]
    assert _gone(actors)


def test_the_progress_board_goes_with_its_executor(local_ray):
    import ray

    executor = RayExecutor()
    board = executor.board
    assert ray.get(board.drain.remote("nothing")) == []
    executor.close()
    # ray.kill returns before the actor is dead: a call sent at once may still be answered (seen on a busy machine).
    deadline = time.monotonic() + 30
    with pytest.raises(ray.exceptions.RayActorError):
        while time.monotonic() < deadline:
            ray.get(board.drain.remote("nothing"), timeout=30)
            time.sleep(0.2)
