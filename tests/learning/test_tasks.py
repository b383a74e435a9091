"""The task layer: targets from labels, hyper-parameters, the shared training loop and scoring per task."""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from learning.cohorts import generate_oct_cohort, generate_spect_cohort
from learning.masks import mask_decode, mask_encode
from learning.tasks import (
    TASKS,
    Example,
    HyperparameterError,
    OctFrameRef,
    OctTask,
    ScoreRequest,
    SpectRef,
    SpectTask,
    TrainingError,
    TrainRequest,
    UnknownTask,
    VesselTask,
    fit,
    get_task,
    score,
    weights_load,
)
from learning.tasks.oct import (
    CALIBRATION_MIN_AREAS,
    CALIBRATION_THRESHOLDS,
    OctParams,
    probabilities_to_mask,
    resolution_jittered,
)
from learning.tasks.spect import SpectParams
from learning.tasks.training import Replicas, train_epoch, train_epochs
from learning.tasks.vessel import VesselParams

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def oct_data(tmp_path_factory) -> tuple[Path, list[Example], list]:
    root = tmp_path_factory.mktemp("oct")
    truths = generate_oct_cohort(root, n_pullbacks=1, frames=10, size=40, seed=4)
    truth = truths[0]
    path = str(truth.path.relative_to(root))
    examples = []
    for i in range(truth.frames):
        ref = OctFrameRef(item_id=i, path=path, frame_index=i, rows=40, columns=40)
        target = None if truth.frame_quality[i] != "ok" else mask_encode(truth.masks[i])
        examples.append(Example(ref=ref, target=target, split="train", label_id=i, label_version=1))
    return root, examples, truths


@pytest.fixture(scope="module")
def spect_data(tmp_path_factory) -> tuple[Path, list[Example]]:
    root = tmp_path_factory.mktemp("spect")
    truths = generate_spect_cohort(root, n_patients=16, size=40, seed=6, fmt="png")
    examples = [
        Example(
            ref=SpectRef(
                item_id=i,
                rest_path=t.rest_path.name,
                stress_path=t.stress_path.name,
                age=t.age,
                sex=t.sex,
                weight_kg=t.weight_kg,
                height_cm=t.height_cm,
            ),
            target=[int(t.territory_abnormal[name]) for name in ("LAD", "RCA", "LCX")],
            split="train",
            label_id=i,
            label_version=1,
        )
        for i, t in enumerate(truths)
    ]
    return root, examples


def test_the_registry_names_every_task_and_refuses_unknown_ones(tmp_path):
    assert set(TASKS) == {"vessel_type", "oct_calcium", "spect_territory"}
    assert isinstance(get_task("oct_calcium", tmp_path), OctTask)
    with pytest.raises(UnknownTask, match="known tasks: oct_calcium, spect_territory, vessel_type"):
        get_task("ecg", tmp_path)


def test_targets_come_from_label_payloads():
    assert VesselTask.target_from_payload({"vessel": "RCA"}) == 1
    assert VesselTask.target_from_payload({"vessel": "unusable", "unusable_reason": "blur"}) is None
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:6] = True
    assert OctTask.target_from_payload({"excluded": True, "exclusion_reason": "artifact"}) is None
    assert OctTask.target_from_payload({"mask": mask_encode(mask)}) == mask_encode(mask)
    stress = [0] * 17
    for segment in (3, 4):  # RCA segments: SSS 4 → abnormal
        stress[segment - 1] = 2
    assert SpectTask.target_from_payload({"stress": stress, "rest": [0] * 17}) == [0, 1, 0]
    overridden = {"stress": stress, "rest": [0] * 17, "flag_overrides": {"RCA": {"abnormal": False, "reason": "x"}}}
    assert SpectTask.target_from_payload(overridden) == [0, 0, 0]
    ica = {"reference": "ica", "ica": {"LM": 10, "LAD": 75, "LCX": None, "RCA": 20}}
    assert SpectTask.target_from_payload({}, ica) == [1, 0, 0]
    assert SpectTask.target_from_payload({}, {"reference": "ica", "ica": None}) is None


def test_oct_masks_agree_when_their_dice_is_at_least_a_half():
    a = np.zeros((10, 10), bool)
    a[0:4, 0:4] = True
    b = a.copy()
    b[0:4, 4:6] = True  # Dice = 2·16 / (16 + 24) = 0.8
    c = np.zeros((10, 10), bool)
    c[6:10, 6:10] = True
    assert OctTask.targets_agree(mask_encode(a), mask_encode(b))
    assert not OctTask.targets_agree(mask_encode(a), mask_encode(c))
    assert OctTask.targets_agree(mask_encode(np.zeros((4, 4), bool)), mask_encode(np.zeros((4, 4), bool)))


def test_hyperparameters_name_the_bad_field():
    assert VesselParams.parse({"crops": 4}).crops == 4
    for raw, field in (
        ({"crop": 4}, "crop"),
        ({"epochs": 0}, "epochs"),
        ({"size": "big"}, "size"),
        ({"learning_rate": 2.0}, "learning_rate"),
        ({"mc_dropout_passes": 1}, "mc_dropout_passes"),
        ({"patience": -1}, "patience"),
    ):
        with pytest.raises(HyperparameterError) as error:
            VesselParams.parse(raw)
        assert error.value.field == field


def test_the_metadata_model_is_the_cold_start_until_enough_runs_are_labelled():
    params = VesselParams.parse({"pixel_model_min_labels": 30})
    assert VesselTask.choose_family(29, params) == "contrast_logreg"
    assert VesselTask.choose_family(30, params) == "fused_vessel"


def test_oct_training_skips_excluded_frames_and_scores_full_size_masks_with_tta(oct_data):
    root, examples, _ = oct_data
    usable = [e for e in examples if e.target is not None]
    assert len(usable) < len(examples)  # the first frames sit in the guide catheter
    request = TrainRequest(
        task="oct_calcium",
        family="unet",
        hparams={"epochs": 2, "size": 32, "base": 4, "depth": 2, "patience": 0},
        train=tuple(examples),
        validation=(),
        test=tuple(usable[-3:]),
        media_root=str(root),
    )
    outcome = fit(get_task("oct_calcium", root), request, CPU)
    assert outcome.metrics["train_examples"] == len(usable)
    assert [h["epoch"] for h in outcome.history] == [1, 2]
    assert 0.0 <= outcome.metrics["test"]["dice_mean"] <= 1.0 and outcome.metrics["test"]["n"] == 3
    scored = score(
        get_task("oct_calcium", root),
        ScoreRequest(
            task="oct_calcium", weights=outcome.weights, refs=tuple(e.ref for e in examples[:4]), media_root=str(root)
        ),
        CPU,
    )
    assert [s.item_id for s in scored] == [0, 1, 2, 3]
    for s in scored:
        assert mask_decode(s.output["mask"]).shape == (40, 40)
        assert 0.0 <= s.detail["tta_disagreement"] <= 1.0 and s.confidence == pytest.approx(
            1 - s.detail["tta_disagreement"]
        )
        assert s.uncertainty == s.detail["mean_pixel_entropy"] >= 0
        assert s.pseudo_target == s.output["mask"] and len(s.embedding) == 16  # bottleneck: 4 · 2 · 2


def test_small_regions_are_dropped_from_a_probability_map():
    probabilities = np.zeros((20, 20))
    probabilities[2:8, 2:8] = 0.9  # 36 pixels
    probabilities[15, 15] = 0.9  # one stray pixel
    probabilities[12, 2:6] = 0.45  # under a 0.5 threshold, over 0.4
    assert probabilities_to_mask(probabilities, 0.5, 0.0).sum() == 37
    kept = probabilities_to_mask(probabilities, 0.5, 0.01)  # regions of at least 4 pixels
    assert kept.sum() == 36 and not kept[15, 15]
    assert probabilities_to_mask(probabilities, 0.4, 0.01).sum() == 40
    assert not probabilities_to_mask(probabilities, 0.5, 0.1).any()  # 36 < 40 pixels: nothing left


def test_the_oct_loss_weights_calcium_pixels():
    logits = torch.tensor([[[[0.3, -1.2], [2.0, -0.4]]]])
    target = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    p = torch.sigmoid(logits)
    per_pixel = -(5.0 * target * torch.log(p) + (1 - target) * torch.log(1 - p))
    params = OctParams(pos_weight=5.0, dice_weight=0.0)
    assert OctTask("/nonexistent").loss(logits, target, params).item() == pytest.approx(per_pixel.mean().item())
    unweighted = OctTask("/nonexistent").loss(logits, target, OctParams(pos_weight=1.0))
    assert unweighted.item() < per_pixel.mean().item()


def test_resolution_jitter_resamples_a_frame_as_if_acquired_coarser():
    rng = np.random.default_rng(0)
    speckle = torch.from_numpy(rng.exponential(0.3, (3, 48, 48)).astype(np.float32))
    assert resolution_jittered(speckle, 1.0) is speckle  # factor 1: the frame as it is
    coarse = resolution_jittered(speckle, 2.0)
    assert coarse.shape == speckle.shape
    assert float(coarse.mean()) == pytest.approx(float(speckle.mean()), rel=0.02)  # same brightness
    assert float(coarse.std()) < 0.7 * float(speckle.std())  # pixel-scale speckle averaged away
    flat = torch.full((3, 48, 48), 0.25)
    assert torch.allclose(resolution_jittered(flat, 1.7), flat)
    assert OctParams().resolution_jitter == 1.0  # on by default: down to half the resolution
    with pytest.raises(HyperparameterError, match="resolution_jitter"):
        OctParams.parse({"resolution_jitter": 1.5})


class ConstantTerritories(torch.nn.Module):
    """A SPECT model with one learnable bias per territory, whatever the maps say."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(3))

    def forward(self, rest, stress, clinical):
        return self.bias.expand(rest.shape[0], 3)


def test_an_epoch_over_few_examples_passes_over_them_until_the_training_reaches_min_steps(spect_data):
    _, examples = spect_data
    spec = SpectTask("/nonexistent")
    steps = []

    class Counting(torch.optim.SGD):
        def step(self, closure=None):
            steps.append(1)
            return super().step(closure)

    spec.batch = lambda family, chunk, params, rng, train: (
        (torch.zeros(len(chunk), 1), torch.zeros(len(chunk), 1), torch.zeros(len(chunk), 1)),
        torch.tensor([e.target for e in chunk], dtype=torch.float32),
    )
    model = ConstantTerritories()
    # 10 examples in batches of 4: 3 steps a pass; 20 steps over 2 epochs: 4 passes of 10 examples an epoch
    for min_steps, expected in ((0, 3), (20, 10), (6, 3)):
        steps.clear()
        params = SpectParams(epochs=2, batch_size=4, min_steps=min_steps)
        optimiser = Counting(model.parameters(), lr=0.1)
        train_epoch(spec, model, "polar_cnn", optimiser, examples[:10], params, np.random.default_rng(0), CPU)
        assert len(steps) == expected, min_steps
    with pytest.raises(HyperparameterError) as error:
        SpectParams.parse({"min_steps": -1})
    assert error.value.field == "min_steps"


def test_the_loop_follows_rank_0_on_other_ranks_and_trains_on_their_shard_only(spect_data):
    _, examples = spect_data
    spec = SpectTask("/nonexistent")
    seen: list[int] = []

    def batch(family, chunk, params, rng, train):
        seen.extend(e.ref.item_id for e in chunk)
        zeros = torch.zeros(len(chunk), 1)
        return (zeros, zeros, zeros), torch.tensor([e.target for e in chunk], dtype=torch.float32)

    class SecondOfTwo(Replicas):
        rank, world_size = 1, 2

        def __init__(self):
            self.wrapped: list[torch.nn.Module] = []
            self.rows: list[dict[str, float]] = []

        @property
        def shard(self):
            return (1, 2)

        def wrap(self, model):
            self.wrapped.append(model)
            return model

        def mean(self, value):
            return value + 100.0  # stands for the all-reduce: the loop must use what comes back

        def agree(self, flag):
            return len(self.rows) == 2  # rank 0 says stop after the second epoch

        def epoch_done(self, row, checkpoint=None):
            assert checkpoint is None  # rank 0 alone checkpoints
            self.rows.append(row)

    spec.batch = batch
    model, replicas = ConstantTerritories(), SecondOfTwo()
    params = SpectParams(epochs=5, batch_size=4, patience=0)
    best, history = train_epochs(
        spec,
        model,
        "polar_cnn",
        examples[:10],
        examples[10:13],
        params,
        rng=np.random.default_rng(0),
        seed=0,
        device=CPU,
        started=0.0,
        replicas=replicas,
    )
    assert replicas.wrapped == [model]
    assert history == [] and best.state is None  # rank 0 alone keeps the history and the best epoch
    assert [row["epoch"] for row in replicas.rows] == [1, 2]  # patience 0 never stops; rank 0's word does
    assert all(row["loss"] > 100 and math.isnan(row["validation"]) for row in replicas.rows)
    assert len(seen) == 2 * 5  # half of 10 training examples an epoch, never a validation example
    assert set(seen) <= {e.ref.item_id for e in examples[:10]}


def _oct_fit(root, examples, validation, **hparams):
    usable = [e for e in examples if e.target is not None]
    request = TrainRequest(
        task="oct_calcium",
        family="unet",
        hparams={"epochs": 2, "size": 32, "base": 4, "depth": 2, "patience": 0, "min_steps": 0, **hparams},
        train=tuple(usable),
        validation=tuple(validation),
        test=tuple(usable[-3:]),
        media_root=str(root),
    )
    return fit(get_task("oct_calcium", root), request, CPU)


def test_the_oct_cut_off_is_fitted_on_validation_saved_with_the_weights_and_used_to_score(oct_data):
    root, examples, _ = oct_data
    usable = [e for e in examples if e.target is not None]
    outcome = _oct_fit(root, examples, usable[:4])
    fitted = outcome.metrics["calibration"]
    assert fitted["fitted"] is True and fitted["n"] == 4
    assert fitted["threshold"] in CALIBRATION_THRESHOLDS + (0.5,) and fitted["min_area"] in CALIBRATION_MIN_AREAS
    assert fitted["validation_dice"] >= fitted["validation_dice_before"]
    state = weights_load(outcome.weights)["state_dict"]
    assert float(state["threshold"]) == pytest.approx(fitted["threshold"])
    assert float(state["min_area"]) == pytest.approx(fitted["min_area"])

    def masks_scored_with(threshold: float) -> list[np.ndarray]:
        data = weights_load(outcome.weights)
        data["state_dict"]["threshold"].fill_(threshold)
        data["state_dict"]["min_area"].fill_(0.0)
        buffer = io.BytesIO()
        torch.save(data, buffer)
        request = ScoreRequest(
            task="oct_calcium", weights=buffer.getvalue(), refs=tuple(e.ref for e in usable), media_root=str(root)
        )
        return [mask_decode(s.output["mask"]) for s in score(get_task("oct_calcium", root), request, CPU)]

    assert all(m.all() for m in masks_scored_with(1e-6))  # every probability is above a tiny threshold
    assert not any(m.any() for m in masks_scored_with(1.0 - 1e-6))

    few = _oct_fit(root, examples, usable[-3:])  # three frames, none with calcium
    assert few.metrics["calibration"] == {
        "fitted": False,
        "reason": "3 validation frames, 0 with calcium (need 4, one with calcium)",
    }
    state = weights_load(few.weights)["state_dict"]
    assert float(state["threshold"]) == 0.5 and float(state["min_area"]) == 0.0
    # Nor can they rank epochs (the empty mask of the first epochs would win on them): the latest is kept.
    assert few.metrics["best_epoch"] == 2 and all(math.isnan(h["validation"]) for h in few.history)


def test_spect_training_evaluates_per_patient_and_keeps_pseudo_labels_out_of_evaluation(spect_data):
    root, examples = spect_data
    pseudo = Example(ref=examples[15].ref, target=[1, 1, 1], split="train", pseudo_label_id=7)
    request = TrainRequest(
        task="spect_territory",
        family="polar_cnn",
        hparams={"epochs": 3, "size": 16, "width": 4},
        train=(*examples[:10], pseudo),
        validation=(*examples[10:13], pseudo),
        test=(*examples[13:], pseudo),
        media_root=str(root),
    )
    outcome = fit(get_task("spect_territory", root), request, CPU)
    assert outcome.metrics["pseudo_examples"] == 1 and outcome.metrics["train_examples"] == 11
    assert outcome.metrics["validation"]["n"] == 3 and outcome.metrics["test"]["n"] == 3
    assert set(outcome.metrics["test"]["per_vessel"]) == {"LAD", "RCA", "LCX"}
    data = weights_load(outcome.weights)
    assert data["task"] == "spect_territory" and data["hparams"]["size"] == 16


def test_the_best_validation_epoch_is_kept_and_the_champion_is_evaluated_on_the_same_test(spect_data):
    root, examples = spect_data
    first = fit(
        get_task("spect_territory", root),
        TrainRequest(
            task="spect_territory",
            family="polar_cnn",
            hparams={"epochs": 2, "size": 16},
            train=tuple(examples[:10]),
            validation=tuple(examples[10:13]),
            test=tuple(examples[13:]),
            media_root=str(root),
        ),
        CPU,
    )
    second = fit(
        get_task("spect_territory", root),
        TrainRequest(
            task="spect_territory",
            family="polar_cnn",
            hparams={"epochs": 4, "size": 16},
            train=tuple(examples[:10]),
            validation=tuple(examples[10:13]),
            test=tuple(examples[13:]),
            media_root=str(root),
            champion_weights=first.weights,
        ),
        CPU,
    )
    history = [h["validation"] for h in second.history if h["validation"] == h["validation"]]
    if history:
        assert second.metrics["best_epoch"] == 1 + history.index(max(history))
    assert second.metrics["champion_test"]["n"] == second.metrics["test"]["n"] == 3
    assert second.metrics["champion_test"]["patient_auc"] == first.metrics["test"]["patient_auc"] or np.isnan(
        first.metrics["test"]["patient_auc"]
    )


def test_missing_files_and_foreign_weights_fail_with_clear_errors(spect_data, oct_data):
    root, examples = spect_data
    broken = Example(
        ref=SpectRef(item_id=1, rest_path="gone.png", stress_path="gone.png"), target=[0, 0, 0], split="train"
    )
    with pytest.raises(TrainingError, match="input file is missing: gone.png"):
        fit(
            get_task("spect_territory", root),
            TrainRequest(
                task="spect_territory",
                family="polar_cnn",
                hparams={"epochs": 1},
                train=(broken,),
                validation=(),
                test=(),
                media_root=str(root),
            ),
            CPU,
        )
    with pytest.raises(TrainingError, match="no labelled training examples"):
        fit(
            get_task("spect_territory", root),
            TrainRequest(
                task="spect_territory",
                family="polar_cnn",
                hparams={},
                train=(),
                validation=(),
                test=(),
                media_root=str(root),
            ),
            CPU,
        )
    with pytest.raises(TrainingError, match="not a Lumen weights file|cannot be read"):
        score(
            get_task("spect_territory", root),
            ScoreRequest(task="spect_territory", weights=b"junk", refs=(), media_root=str(root)),
            CPU,
        )
    with pytest.raises(HyperparameterError, match="not a spect_territory model"):
        fit(
            get_task("spect_territory", root),
            TrainRequest(
                task="spect_territory",
                family="unet",
                hparams={},
                train=tuple(examples[:2]),
                validation=(),
                test=(),
                media_root=str(root),
            ),
            CPU,
        )


def test_a_run_is_decoded_once_for_every_later_job_and_a_changed_file_is_decoded_again(tmp_path, monkeypatch):
    from learning.tasks import CineRef, get_task
    from learning.tasks import vessel as vessel_module
    from tests import dicom_samples as samples

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "a.dcm").write_bytes(samples.xa_bytes(seed=3))
    ref = CineRef(item_id=1, path="runs/a.dcm")
    decoded = []
    read = vessel_module.read_cine
    monkeypatch.setattr(vessel_module, "read_cine", lambda path: (decoded.append(path), read(path))[1])
    first = get_task("vessel_type", tmp_path).frames(ref, 32)
    assert len(decoded) == 1 and first.dtype == torch.uint8 and first.shape[1:] == (32, 32)
    # A later job (a new task instance, as on another worker) reads the stored array: nothing is decoded.
    later = get_task("vessel_type", tmp_path)
    assert torch.equal(later.frames(ref, 32), first) and len(decoded) == 1
    assert np.allclose(later.contrast(ref), get_task("vessel_type", tmp_path).contrast(ref)) and len(decoded) == 2
    # Another size is another array; a replaced file (another size on disk) is decoded again.
    get_task("vessel_type", tmp_path).frames(ref, 16)
    assert len(decoded) == 3
    (tmp_path / "runs" / "a.dcm").write_bytes(samples.xa_bytes(seed=4, frames=7))
    assert get_task("vessel_type", tmp_path).frames(ref, 32).shape[0] == 7 and len(decoded) == 4


def test_a_read_only_media_root_still_scores(tmp_path, monkeypatch):
    from learning.tasks import CineRef, get_task
    from tests import dicom_samples as samples

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "a.dcm").write_bytes(samples.xa_bytes(seed=3))
    (tmp_path / "derived").write_text("not a folder: nothing can be written under it")
    frames = get_task("vessel_type", tmp_path).frames(CineRef(item_id=1, path="runs/a.dcm"), 32)
    assert frames.shape[1:] == (32, 32)


def test_a_restarted_training_carries_on_from_the_last_checkpointed_epoch(spect_data):
    root, examples = spect_data
    spec = get_task("spect_territory", root)
    params = SpectParams(epochs=4, batch_size=4, size=32, width=4, patience=0)

    class Checkpointing(Replicas):
        """Keeps every epoch's checkpoint, and restarts from `start` (as Ray Train does after a failure)."""

        def __init__(self, start=None):
            self.saved, self.start = [], start

        def epoch_rng(self, rng, epoch):
            return np.random.default_rng([0, epoch])  # per epoch, as the Ray ranks do: resumable

        def epoch_done(self, row, checkpoint=None):
            self.saved.append(checkpoint())

        def resume(self):
            return self.start

    def run(replicas):
        torch.manual_seed(0)
        model = spec.build("polar_cnn", params)
        trained = []
        original = spec.batch

        def counting(family, chunk, p, rng, train):
            trained.append(train)
            return original(family, chunk, p, rng, train)

        spec.batch = counting
        try:
            best, history = train_epochs(
                spec,
                model,
                "polar_cnn",
                examples[:10],
                examples[10:13],
                params,
                rng=np.random.default_rng(0),
                seed=0,
                device=CPU,
                started=time.monotonic(),
                replicas=replicas,
            )
        finally:
            spec.batch = original
        return best, history, trained.count(True)

    whole = Checkpointing()
    best, history, _ = run(whole)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4] and len(whole.saved) == 4
    assert whole.saved[-1]["stopped"] and not whole.saved[1]["stopped"]
    after_two = whole.saved[1]
    restarted = Checkpointing(start=after_two)
    best_again, history_again, batches = run(restarted)
    # Epochs 1 and 2 come from the checkpoint; only 3 and 4 are trained again.
    assert history_again[:2] == history[:2] and [row["epoch"] for row in history_again] == [1, 2, 3, 4]
    full_batches = run(Checkpointing())[2]
    assert batches == full_batches // 2
    assert [c["epoch"] for c in restarted.saved] == [3, 4]
    # A run whose last epoch was checkpointed has nothing left to train.
    done = Checkpointing(start=whole.saved[-1])
    assert run(done)[2] == 0 and run(done)[1] == history
