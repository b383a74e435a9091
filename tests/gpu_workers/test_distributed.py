"""Data-parallel training through Ray Train on two CPU workers: a tiny SPECT cohort end to end."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from learning.cohorts import generate_spect_cohort
from learning.domain import TERRITORIES
from learning.tasks import (
    Example,
    Progress,
    ScoreRequest,
    SpectRef,
    TrainingError,
    TrainRequest,
    fit,
    get_task,
    score,
    weights_load,
)
from learning.tasks.base import weights_dump

HPARAMS = {"epochs": 3, "batch_size": 4, "size": 32, "width": 4, "patience": 0}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, list[Example]]:
    """Return a media root and 16 SPECT examples split 10 / 3 / 3."""
    root = tmp_path_factory.mktemp("media")
    truths = generate_spect_cohort(root / "spect", n_patients=16, size=64, seed=7, fmt="png")
    examples = []
    for i, truth in enumerate(truths):
        ref = SpectRef(
            item_id=i + 1,
            rest_path=str(truth.rest_path.relative_to(root)),
            stress_path=str(truth.stress_path.relative_to(root)),
            age=float(truth.age),
            sex=truth.sex,
            weight_kg=truth.weight_kg,
            height_cm=truth.height_cm,
        )
        split = "train" if i < 10 else "validation" if i < 13 else "test"
        target = [int(truth.territory_abnormal[name]) for name in TERRITORIES]
        examples.append(Example(ref=ref, target=target, split=split))
    return root, examples


def _request(root: Path, examples: list[Example]) -> TrainRequest:
    return TrainRequest(
        task="spect_territory",
        family="polar_cnn",
        hparams=HPARAMS,
        train=tuple(e for e in examples if e.split == "train"),
        validation=tuple(e for e in examples if e.split == "validation"),
        test=tuple(e for e in examples if e.split == "test"),
        media_root=str(root),
        seed=3,
    )


def test_two_workers_train_a_model_that_scores(local_ray, cohort, tmp_path):
    from gpu_workers.distributed import fit_data_parallel

    root, examples = cohort
    spec = get_task("spect_territory", root)
    params = spec.params_class.parse(HPARAMS)
    champion = weights_dump(task=spec.name, family="polar_cnn", params=params, model=spec.build("polar_cnn", params))
    request = dataclasses.replace(_request(root, examples), champion_weights=champion)
    seen: list[Progress] = []
    outcome = fit_data_parallel(request, num_workers=2, use_gpu=False, storage_path=str(tmp_path), report=seen.append)

    assert outcome.device == "cpu x2 (ray train)"
    assert outcome.metrics["workers"] == 2
    assert outcome.family == "polar_cnn"
    assert [row["epoch"] for row in outcome.history] == [1, 2, 3]
    losses = [row["loss"] for row in outcome.history]
    assert all(math.isfinite(loss) and loss > 0 for loss in losses)
    assert [p.epoch for p in seen] == [0, 1, 2, 3] and all(p.phase == "training" for p in seen)
    assert seen[-1].loss == pytest.approx(losses[-1])
    for split in ("validation", "test", "champion_test"):  # the champion is scored on test, as `fit` does
        assert spec.primary_metric in outcome.metrics[split]
    assert outcome.metrics["test"]["n"] == 3 and outcome.metrics["train_examples"] == 10

    data = weights_load(outcome.weights)
    assert (data["task"], data["family"]) == ("spect_territory", "polar_cnn")
    assert not any(name.startswith("module.") for name in data["state_dict"])  # saved unwrapped, not as DDP
    refs = tuple(e.ref for e in examples)
    scores = score(
        spec,
        ScoreRequest(task="spect_territory", weights=outcome.weights, refs=refs, media_root=str(root)),
        device=torch.device("cpu"),
    )
    assert [s.item_id for s in scores] == [ref.item_id for ref in refs]
    for item in scores:
        probabilities = item.output["probabilities"]
        assert set(probabilities) == set(TERRITORIES)
        assert all(0.0 <= p <= 1.0 for p in probabilities.values())


def test_missing_input_file_fails_with_its_name(local_ray, cohort, tmp_path):
    from gpu_workers.distributed import fit_data_parallel

    root, examples = cohort
    broken = Example(
        ref=SpectRef(item_id=99, rest_path="spect/nowhere_rest.png", stress_path="spect/nowhere_stress.png"),
        target=[0, 1, 0],
        split="train",
    )
    request = _request(root, [broken, *examples])
    with pytest.raises(TrainingError, match="nowhere_"):
        fit_data_parallel(request, num_workers=2, use_gpu=False, storage_path=str(tmp_path))


def test_empty_training_split_is_refused_before_ray_starts(cohort):
    from gpu_workers.distributed import fit_data_parallel

    root, examples = cohort
    request = _request(root, [e for e in examples if e.split != "train"])
    with pytest.raises(TrainingError, match="no labelled training examples"):
        fit_data_parallel(request)


def test_a_model_fitted_in_one_step_is_refused_before_ray_starts(tmp_path):
    from gpu_workers.distributed import fit_data_parallel
    from learning.tasks import CineRef, TrainRequest

    example = Example(
        ref=CineRef(item_id=1, path="run.dcm", geometry=(0.0, 0.0, 1000.0, 750.0)), target=0, split="train"
    )
    request = TrainRequest(
        task="vessel_type",
        family="metadata_logreg",
        hparams={},
        train=(example,),
        validation=(),
        test=(),
        media_root=str(tmp_path),
    )
    with pytest.raises(TrainingError, match="fitted in one step"):
        fit_data_parallel(request)


def test_the_data_parallel_worker_trains_through_the_same_loop_as_fit(cohort, monkeypatch):
    """One rank in this process, Ray Train's calls stubbed: both paths must go through `train_epochs`."""
    import ray.train
    import ray.train.torch

    from gpu_workers import distributed
    from learning.tasks import training

    root, examples = cohort
    request = _request(root, examples)
    loops: list[tuple[object, list[dict[str, float]]]] = []
    shared_loop = training.train_epochs

    def spy(*args, **kwargs):
        best, history = shared_loop(*args, **kwargs)
        loops.append((kwargs.get("replicas"), history))
        return best, history

    reports: list[tuple[dict, dict | None]] = []

    def report(metrics, checkpoint=None):
        summary = None
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                final = Path(folder, distributed.SUMMARY_FILE)
                if final.exists():  # the last report; the others carry the epoch's state to resume from
                    summary = json.loads(final.read_text())
                else:
                    epochs.append(torch.load(Path(folder, distributed.RESUME_FILE), weights_only=False)["epoch"])
        reports.append((metrics, summary))

    epochs: list[int] = []

    monkeypatch.setattr(training, "train_epochs", spy)
    one_rank = SimpleNamespace(get_world_rank=lambda: 0, get_world_size=lambda: 1)
    monkeypatch.setattr(ray.train, "get_context", lambda: one_rank)
    monkeypatch.setattr(ray.train, "report", report)
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: None)  # a first start, not a restart
    monkeypatch.setattr(ray.train.torch, "prepare_model", lambda model, **_: model)
    monkeypatch.setattr(ray.train.torch, "get_device", lambda: torch.device("cpu"))

    distributed._train_worker({"request": request})
    outcome = fit(get_task(request.task, root), request, torch.device("cpu"))

    assert len(loops) == 2, "the worker and fit must each run the shared loop once"
    (ranks, worker_history), (alone, fit_history) = loops
    assert isinstance(ranks, distributed.RayTrainRanks) and ranks.shard == (0, 1)
    assert alone is None and fit_history == outcome.history
    assert [row for row, _ in reports[:-1]] == worker_history  # each epoch's row, as Ray Train heard it
    assert epochs == [row["epoch"] for row in worker_history]  # with the state to resume from after it
    final, summary = reports[-1]
    assert final == {"final": 1.0} and summary["metrics"]["workers"] == 1
    assert [(row["epoch"], row["loss"]) for row in summary["history"]] == [
        (row["epoch"], row["loss"]) for row in worker_history
    ]
