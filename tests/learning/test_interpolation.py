"""Cine frame interpolation: metrics on known pairs, the paper's protocols, training, hold-out by patient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from learning.interpolation import (
    PAPER_FIGURES,
    InterpolationParams,
    InterpolationParamsError,
    clip_middles,
    interpolation_evaluate,
    interpolation_fit,
    interpolation_weights_load,
    psnr,
    split_by_patient,
    ssim,
    triplets,
    weights_dump,
)
from learning.models.interpolation import FrameInterpolator


def blob_run(rng: np.random.Generator, frames: int = 10, size: int = 48) -> np.ndarray:
    """A bright Gaussian blob moving in a straight line, 2–3 px a frame, on a dim textured background."""
    y, x = np.mgrid[:size, :size].astype(np.float32)
    start = rng.uniform(12, 16, 2)
    direction = rng.choice([-1.0, 1.0], 2)
    start = np.where(direction > 0, start, size - start)
    velocity = direction * rng.uniform(2.0, 3.0, 2)
    background = 0.15 + 0.05 * np.sin(x / 5.0 + rng.uniform(0, 6)) * np.cos(y / 7.0)
    out = []
    for t in range(frames):
        cy, cx = start + velocity * t
        out.append(background + 0.7 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 3.0**2)))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


# ---------------------------------------------------------------------------------------------------- metrics
def test_identical_frames_have_infinite_psnr_and_ssim_one():
    frame = np.random.default_rng(0).uniform(0, 1, (32, 32))
    assert psnr(frame, frame) == math.inf
    assert ssim(frame, frame) == pytest.approx(1.0)


@pytest.mark.parametrize(("offset", "expected_db"), [(0.1, 20.0), (0.05, 10 * math.log10(1 / 0.0025)), (0.01, 40.0)])
def test_a_constant_offset_gives_the_hand_computed_psnr(offset, expected_db):
    # MSE of a constant offset d is d², so PSNR = 10 log10(1 / d²) with data range 1.
    frame = np.random.default_rng(1).uniform(0.1, 0.8, (24, 40))
    assert psnr(frame, frame + offset) == pytest.approx(expected_db, abs=1e-6)


def test_ssim_falls_with_noise_and_is_symmetric():
    rng = np.random.default_rng(2)
    frame = np.clip(blob_run(rng, frames=1, size=64)[0], 0, 1).astype(np.float64)
    slightly = np.clip(frame + rng.normal(0, 0.02, frame.shape), 0, 1)
    very = np.clip(frame + rng.normal(0, 0.2, frame.shape), 0, 1)
    assert ssim(frame, slightly) < 1.0
    assert ssim(frame, slightly) == pytest.approx(ssim(slightly, frame), abs=1e-12)
    assert ssim(frame, very) < ssim(frame, slightly)


def test_ssim_refuses_frames_smaller_than_its_window():
    with pytest.raises(ValueError, match="at least 11 px"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))


# ---------------------------------------------------------------------------------------------------- protocols
class Recorder(nn.Module):
    """Predict the mean of the two frames, noting which frame numbers it was given (frame t is filled with t/20)."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[tuple[int, int]] = []

    def forward(self, previous: torch.Tensor, following: torch.Tensor) -> torch.Tensor:
        for a, b in zip(previous, following, strict=True):
            self.pairs.append((round(float(a.mean()) * 20), round(float(b.mean()) * 20)))
        return 0.5 * (previous + following)


def test_the_clips_protocol_predicts_every_interior_frame_once_from_its_two_neighbours():
    assert clip_middles(7) == [1, 3, 5, 2, 4]  # odd frames from even neighbours, then even from odd
    assert clip_middles(2) == [] and clip_middles(3) == [1]
    frames = np.stack([np.full((16, 16), t / 20, np.float32) for t in range(7)])
    recorder = Recorder()
    metrics = interpolation_evaluate(recorder, [frames, frames[:2]], "cpu")
    assert sorted(recorder.pairs) == [(t - 1, t + 1) for t in range(1, 6)]
    assert [run["n"] for run in metrics["runs"]] == [5, 0]
    assert metrics["clips"]["n_frames"] == 5 and metrics["clips"]["n_runs"] == 1
    # The recorder blends linearly: on exactly the same frames it must score exactly what linear blending does.
    assert metrics["clips"]["model"] == metrics["clips"]["linear_blend"]


def test_the_triplets_protocol_is_a_fixed_sample_of_the_same_frames():
    rng = np.random.default_rng(3)
    runs = [blob_run(rng, frames=12, size=32) for _ in range(3)]
    model = FrameInterpolator(width=4)
    first = interpolation_evaluate(model, runs, "cpu", triplet_sample=7, seed=5)
    again = interpolation_evaluate(model, runs, "cpu", triplet_sample=7, seed=5)
    assert first["triplets"]["n_frames"] == 7 and first["clips"]["n_frames"] == 30
    assert first["triplets"] == again["triplets"]
    everything = interpolation_evaluate(model, runs, "cpu", triplet_sample=1000)
    assert everything["triplets"]["n_frames"] == 30  # capped at the frames there are
    assert everything["triplets"]["model"] == everything["clips"]["model"]
    assert first["paper"] == PAPER_FIGURES and PAPER_FIGURES["triplets"]["psnr"] == pytest.approx(40.523)


def test_frame_repetition_of_a_static_run_is_exact_and_counted():
    frames = np.repeat(blob_run(np.random.default_rng(4), frames=1, size=32), 5, axis=0)
    metrics = interpolation_evaluate(FrameInterpolator(width=4), [frames], "cpu")
    repetition = metrics["clips"]["frame_repetition"]
    assert repetition["exact_frames"] == 3 and repetition["psnr"] == 100.0 and repetition["ssim"] == pytest.approx(1.0)


def test_evaluation_resolution_is_the_runs_own_capped_or_the_size_asked():
    run = np.random.default_rng(5).uniform(0, 1, (4, 300, 200)).astype(np.float32)
    metrics = interpolation_evaluate(FrameInterpolator(width=4), [run], "cpu")
    assert metrics["runs"][0]["resolution"] == [256, 171]
    assert "256×171" in metrics["resolution"]
    assert interpolation_evaluate(FrameInterpolator(width=4), [run], "cpu", size=64)["runs"][0]["resolution"] == [
        64,
        64,
    ]


def test_an_untrained_network_is_linear_blending():
    rng = np.random.default_rng(6)
    a, b = (torch.from_numpy(rng.uniform(0, 1, (2, 1, 40, 56)).astype(np.float32)) for _ in range(2))
    with torch.no_grad():
        middle = FrameInterpolator(width=8)(a, b)
    assert torch.allclose(middle, 0.5 * (a + b), atol=1e-5)  # grid_sample at zero flow: float rounding only


# ---------------------------------------------------------------------------------------------------- training
def test_triplets_come_from_every_run_of_three_frames_or_more():
    runs = [np.zeros((n, 4, 4)) for n in (2, 3, 5)]
    assert triplets(runs) == [(1, 1), (2, 1), (2, 2), (2, 3)]
    capped = triplets(runs, max_per_run=2, seed=1)
    assert [r for r, _ in capped] == [1, 2, 2] and capped == triplets(runs, max_per_run=2, seed=1)


def test_a_short_fit_beats_linear_blending_on_held_out_runs():
    train = [blob_run(np.random.default_rng(seed)) for seed in range(8)]
    held_out = [blob_run(np.random.default_rng(100 + seed)) for seed in range(3)]
    params = InterpolationParams(size=48, steps=250, batch_size=8, learning_rate=2e-3, width=8, max_triplets_per_run=0)
    reports = []
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model, info = interpolation_fit(train, params, "cpu", report=reports.append)
    metrics = interpolation_evaluate(model, held_out, "cpu")
    clips = metrics["clips"]
    assert clips["model"]["psnr"] > clips["linear_blend"]["psnr"] + 1.0, clips
    assert clips["model"]["ssim"] > clips["linear_blend"]["ssim"], clips
    assert info["triplets"] == 8 * 8 and info["history"][-1]["step"] == 250
    assert reports and reports[-1].phase == "training" and reports[-1].done == 250 and reports[-1].loss is not None
    # The stored weights give back the same network.
    restored = interpolation_weights_load(weights_dump(model))
    again = interpolation_evaluate(restored, held_out, "cpu")
    assert again["clips"]["model"] == clips["model"]


def test_a_seeded_fit_is_deterministic():
    runs = [blob_run(np.random.default_rng(seed), frames=6, size=32) for seed in range(3)]
    params = InterpolationParams(size=32, steps=4, batch_size=4, width=4)
    first, _ = interpolation_fit(runs, params, "cpu")
    second, _ = interpolation_fit(runs, params, "cpu")
    other, _ = interpolation_fit(runs, InterpolationParams(size=32, steps=4, batch_size=4, width=4, seed=1), "cpu")
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    pairs = zip(first.state_dict().values(), other.state_dict().values(), strict=True)
    assert any(not torch.equal(a, c) for a, c in pairs)


def test_a_fit_without_triplets_is_refused():
    with pytest.raises(ValueError, match="fewer than 3 frames"):
        interpolation_fit([np.zeros((2, 32, 32))], InterpolationParams(size=32, steps=1), "cpu")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"size": 100}, "size"),
        ({"size": 8}, "size"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"feature_weight": float("nan")}, "feature_weight"),
        ({"augment": "yes"}, "augment"),
        ({"max_triplets_per_run": -1}, "max_triplets_per_run"),
    ],
)
def test_bad_params_are_refused_naming_the_field(changes, field):
    with pytest.raises(InterpolationParamsError) as raised:
        InterpolationParams(**changes).check()
    assert raised.value.field == field and str(raised.value).startswith(f"{field}: ")


def test_parsing_params_refuses_unknown_names_and_keeps_defaults():
    assert InterpolationParams.parse({"steps": 10}) == InterpolationParams(steps=10)
    with pytest.raises(InterpolationParamsError) as raised:
        InterpolationParams.parse({"epochs": 3})
    assert raised.value.field == "epochs"


# ---------------------------------------------------------------------------------------------------- hold-out
def test_the_held_out_patients_are_the_ones_given():
    patients = ["a", "b", "a", "c", "d", "c"]
    train, held = split_by_patient(patients, held_out={"c", "zz"})
    assert held == [3, 5] and train == [0, 1, 2, 4]


def test_without_test_patients_a_keyed_hash_holds_some_out_deterministically():
    patients = [f"p{i // 2}" for i in range(40)]  # 20 patients, two runs each
    train, held = split_by_patient(patients, key="k1")
    assert (train, held) == split_by_patient(patients, key="k1")
    assert train and held and set(train).isdisjoint(held) and sorted(train + held) == list(range(40))
    assert {patients[i] for i in train}.isdisjoint({patients[i] for i in held})
    assert split_by_patient(patients, key="k2") != (train, held)
    # Two patients: one each side, whatever the hash says.
    for key in ("x", "y", "z"):
        small_train, small_held = split_by_patient(["a", "b", "a"], key=key, fraction=0.01)
        assert small_train and small_held
