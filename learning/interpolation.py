"""Cine frame interpolation (seed 001): train on a project's runs without labels, evaluate as the paper does.

Every three consecutive frames of a run are a (previous, middle, next) triplet: the network
(`learning.models.interpolation.FrameInterpolator`) learns the middle frame from the other two, with the paper's
Charbonnier loss (ε = 1e-4) plus a structure term. Frames are resized to `size`² for training.

Evaluation (`interpolation_evaluate`) follows the paper on runs held out by patient (`split_by_patient`):

- **clips**: drop the odd frames and predict each from its even neighbours, then drop the even frames and predict
  them from the odd ones, so every interior frame of a run is predicted once from its two neighbours;
- **triplets**: a fixed random sample (seeded, up to 1000, like the paper's D1000) of those same triplets.

PSNR and SSIM are scikit-image's (`peak_signal_noise_ratio`, `structural_similarity` with data_range 1.0 and
Wang et al.'s Gaussian window, σ 1.5), for the model, linear blending and frame repetition on exactly the same
predicted frames. Frames are evaluated at the run's own resolution, area-downscaled so the longer side is at most
`EVAL_MAX_SIDE` (256) px: a CPU evaluates a 512² run in seconds, and the paper's frames (480 × 360) were of that
order. Pure numpy + torch + scikit-image: no Django, no Ray.
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn
from torch.utils.data import Dataset

from learning.models.interpolation import FrameInterpolator, StructureFeatures, interpolation_loss
from learning.tasks.base import Progress

# The longest side a run is evaluated at by default (area-downscaled beyond it).
EVAL_MAX_SIDE = 256
# Triplets drawn for the "triplets" protocol (the paper's D1000).
TRIPLET_SAMPLE = 1000
# An exactly reproduced frame has an infinite PSNR; averages count it as this many dB (and say how many there were).
PSNR_CAP_DB = 100.0
# SSIM as Wang et al. (2004): an 11 × 11 Gaussian window (σ 1.5) and population statistics; frames need ≥ 11 px.
SSIM_OPTIONS: dict[str, Any] = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
SSIM_MIN_SIDE = 11
METHODS = ("model", "linear_blend", "frame_repetition")
# The seed paper's retrained DAIN (Table II): the mean of its four clips VC1–VC4, and its 1000 random triplets.
PAPER_FIGURES: dict[str, dict[str, Any]] = {
    "clips": {"psnr": 34.251, "ssim": 0.906, "source": "DAIN retrained, mean of clips VC1–VC4 (Table II)"},
    "triplets": {"psnr": 40.523, "ssim": 0.962, "source": "DAIN retrained, D1000: 1000 random triplets (Table II)"},
}

Reporter = Callable[[Progress], None]


def _ignore(progress: Progress) -> None:
    return None


# ---------------------------------------------------------------------------------------------------- parameters
class InterpolationParamsError(ValueError):
    """A training parameter is unknown or out of range; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class InterpolationParams:
    """How an interpolation network is trained (frames resized to `size`², `steps` batches of `batch_size`)."""

    size: int = 128
    steps: int = 600
    batch_size: int = 8
    learning_rate: float = 5e-4
    feature_weight: float = 0.5
    width: int = 16
    max_flow: float = 8.0
    seed: int = 0
    augment: bool = True  # horizontal and vertical flips, time reversal
    max_triplets_per_run: int = 64  # 0: every triplet of every run

    def check(self) -> InterpolationParams:
        """Return self, or raise InterpolationParamsError naming the first bad field."""
        limits: dict[str, tuple[float, float]] = {
            "size": (32, 1024),
            "steps": (1, 1_000_000),
            "batch_size": (1, 256),
            "learning_rate": (1e-7, 1.0),
            "feature_weight": (0.0, 100.0),
            "width": (2, 128),
            "max_flow": (0.5, 256.0),
            "seed": (0, 2**31 - 1),
            "max_triplets_per_run": (0, 1_000_000),
        }
        integers = {"size", "steps", "batch_size", "width", "seed", "max_triplets_per_run"}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InterpolationParamsError(name, f"must be a number, got {value!r}")
            if name in integers and not isinstance(value, int):
                raise InterpolationParamsError(name, f"must be a whole number, got {value!r}")
            if not math.isfinite(value) or not low <= value <= high:
                raise InterpolationParamsError(name, f"must be between {low:g} and {high:g}, got {value!r}")
        if self.size % 16:
            raise InterpolationParamsError("size", f"must be a multiple of 16, got {self.size}")
        if not isinstance(self.augment, bool):
            raise InterpolationParamsError("augment", f"must be true or false, got {self.augment!r}")
        return self

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> InterpolationParams:
        """Return checked params from a JSON dict (missing fields take their defaults; unknown ones are refused)."""
        raw = dict(raw or {})
        known = {f.name for f in fields(cls)}
        for name in raw:
            if name not in known:
                raise InterpolationParamsError(name, f"unknown parameter; known: {', '.join(sorted(known))}")
        return cls(**raw).check()

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------- frames
def resize_run(frames: np.ndarray, shape: int | tuple[int, int]) -> np.ndarray:
    """Return a (T, H, W) run resized to `shape` (an int: square), area-averaged down, bilinear up; float32."""
    height, width = (shape, shape) if isinstance(shape, int) else shape
    array = np.ascontiguousarray(frames, dtype=np.float32)
    if array.shape[1:] == (height, width):
        return array
    tensor = torch.from_numpy(array)[:, None]
    shrinking = height <= array.shape[1] and width <= array.shape[2]
    mode = "area" if shrinking else "bilinear"
    kwargs = {} if shrinking else {"align_corners": False}
    return F.interpolate(tensor, size=(height, width), mode=mode, **kwargs)[:, 0].clamp(0, 1).numpy()


def eval_shape(height: int, width: int, max_side: int = EVAL_MAX_SIDE) -> tuple[int, int]:
    """Return the run's own (height, width), scaled down so its longer side is at most `max_side`."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def triplets(runs: Sequence[np.ndarray], *, max_per_run: int = 0, seed: int = 0) -> list[tuple[int, int]]:
    """Return every (run index, middle frame index) whose two neighbours exist (runs of ≥ 3 frames).

    With `max_per_run` > 0 a longer run gives that many, drawn evenly at random (seeded) without repeats.
    """
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int]] = []
    for index, run in enumerate(runs):
        middles = list(range(1, len(run) - 1))
        if max_per_run and len(middles) > max_per_run:
            middles = sorted(rng.choice(middles, size=max_per_run, replace=False).tolist())
        out.extend((index, middle) for middle in middles)
    return out


class TripletDataset(Dataset):
    """(previous, middle, next) stacks, (3, size, size) float32 tensors, from runs resized once to `size`²."""

    def __init__(self, runs: Sequence[np.ndarray], size: int, *, max_triplets_per_run: int = 0, seed: int = 0) -> None:
        self.runs = [torch.from_numpy(resize_run(run, size)) for run in runs]
        self.positions = triplets(self.runs, max_per_run=max_triplets_per_run, seed=seed)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> torch.Tensor:
        run, middle = self.positions[index]
        return self.runs[run][middle - 1 : middle + 2]


# ---------------------------------------------------------------------------------------------------- training
def _augment(batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Flip each triplet left-right and up-down, and reverse its time order, each with probability ½."""
    out = []
    for stack in batch:
        flips = rng.random(3) < 0.5
        if flips[0]:
            stack = stack.flip(-1)
        if flips[1]:
            stack = stack.flip(-2)
        if flips[2]:
            stack = stack.flip(0)
        out.append(stack)
    return torch.stack(out)


def interpolation_fit(
    runs: Sequence[np.ndarray],
    params: InterpolationParams,
    device: torch.device | str,
    report: Reporter | None = None,
) -> tuple[FrameInterpolator, dict[str, Any]]:
    """Train a FrameInterpolator on every triplet of `runs` ((T, H, W) floats in [0, 1]); return it (eval mode)
    and what the training did. Seeded: the same runs, params and device give the same weights on a CPU."""
    params.check()
    report = report or _ignore
    device = torch.device(device)
    started = time.monotonic()
    data = TripletDataset(runs, params.size, max_triplets_per_run=params.max_triplets_per_run, seed=params.seed)
    if len(data) == 0:
        raise ValueError("no training triplets: every run has fewer than 3 frames")
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    model = FrameInterpolator(width=params.width, max_flow=params.max_flow).to(device)
    features = StructureFeatures().to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    # Cosine decay to a tenth (the paper halves its rate every 20 of 100 epochs: the same ten-fold fall).
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, params.steps) / params.steps))
    )
    every = max(1, params.steps // 50)
    history: list[dict[str, float]] = []
    window: list[float] = []
    model.train()
    for step in range(1, params.steps + 1):
        picks = rng.integers(len(data), size=params.batch_size)
        batch = torch.stack([data[int(i)] for i in picks])
        if params.augment:
            batch = _augment(batch, rng)
        batch = batch.to(device)
        previous, middle, following = batch[:, 0:1], batch[:, 1:2], batch[:, 2:3]
        loss = interpolation_loss(model(previous, following), middle, features, params.feature_weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        window.append(float(loss.detach()))
        if step % every == 0 or step == params.steps:
            mean = float(np.mean(window))
            window.clear()
            history.append({"step": step, "loss": round(mean, 6)})
            report(Progress(phase="training", done=step, total=params.steps, epoch=step, loss=round(mean, 6)))
    model.eval()
    info = {
        "params": params.as_json(),
        "runs": len(runs),
        "triplets": len(data),
        "steps": params.steps,
        "final_loss": history[-1]["loss"],
        "history": history,
        "seconds": round(time.monotonic() - started, 2),
        "device": str(device),
    }
    return model, info


def weights_dump(model: FrameInterpolator) -> bytes:
    """Return the network as weights-file bytes: its constructor arguments and its state dict."""
    buffer = io.BytesIO()
    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    torch.save({"architecture": model.architecture(), "state_dict": state}, buffer)
    return buffer.getvalue()


def interpolation_weights_load(data: bytes, device: torch.device | str = "cpu") -> FrameInterpolator:
    """Return the network stored by `weights_dump`, on `device`, in eval mode."""
    stored = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    model = FrameInterpolator(**stored["architecture"])
    model.load_state_dict(stored["state_dict"])
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------------- evaluation
def psnr(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Return scikit-image's PSNR (data range 1.0) in dB; inf when the frames are identical."""
    with np.errstate(divide="ignore"):
        return float(
            peak_signal_noise_ratio(np.asarray(truth, np.float64), np.asarray(prediction, np.float64), data_range=1.0)
        )


def ssim(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Return scikit-image's SSIM (data range 1.0, Gaussian window σ 1.5) of two 2-D frames."""
    if min(truth.shape) < SSIM_MIN_SIDE:
        raise ValueError(f"SSIM needs frames of at least {SSIM_MIN_SIDE} px a side, got {truth.shape}")
    return float(
        structural_similarity(
            np.asarray(truth, np.float64), np.asarray(prediction, np.float64), data_range=1.0, **SSIM_OPTIONS
        )
    )


def clip_middles(frames: int) -> list[int]:
    """The clips protocol's predicted frames, in order: odd frames from even neighbours, then even from odd.

    Together: every interior frame (1 … frames − 2) once.
    """
    return [t for t in range(1, frames - 1) if t % 2 == 1] + [t for t in range(1, frames - 1) if t % 2 == 0]


@torch.no_grad()
def predict_middles(
    model: nn.Module, frames: np.ndarray, middles: Sequence[int], device: torch.device | str, batch_size: int = 8
) -> np.ndarray:
    """Return the model's prediction of each frame in `middles` from its two neighbours, (len, H, W) float32."""
    device = torch.device(device)
    run = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    out = []
    for start in range(0, len(middles), batch_size):
        chunk = list(middles[start : start + batch_size])
        previous = run[[t - 1 for t in chunk]][:, None].to(device)
        following = run[[t + 1 for t in chunk]][:, None].to(device)
        out.append(model(previous, following)[:, 0].clamp(0, 1).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, *frames.shape[1:]), np.float32)


def _summary(values: dict[str, list[float]], exact: dict[str, int]) -> dict[str, Any]:
    """Mean PSNR / SSIM per method over the given frames (an infinite PSNR counts as PSNR_CAP_DB)."""
    out: dict[str, Any] = {}
    for method in METHODS:
        psnrs = np.minimum(np.asarray(values[f"{method}.psnr"], dtype=np.float64), PSNR_CAP_DB)
        ssims = np.asarray(values[f"{method}.ssim"], dtype=np.float64)
        out[method] = {
            "psnr": round(float(psnrs.mean()), 4) if len(psnrs) else None,
            "ssim": round(float(ssims.mean()), 5) if len(ssims) else None,
            "exact_frames": exact.get(method, 0),
        }
    return out


def interpolation_evaluate(
    model: nn.Module,
    runs: Sequence[np.ndarray],
    device: torch.device | str,
    *,
    size: int | None = None,
    names: Sequence[str] | None = None,
    triplet_sample: int = TRIPLET_SAMPLE,
    seed: int = 0,
    report: Reporter | None = None,
) -> dict[str, Any]:
    """Return PSNR and SSIM of the model, linear blending and frame repetition, per run and overall, under the
    paper's clips and triplets protocols, on exactly the same predicted frames.

    `size`: evaluate every run at size²; None (default): at the run's own resolution, the longer side capped at
    EVAL_MAX_SIDE. Runs of fewer than 3 frames have nothing to predict and are listed with n 0.
    """
    report = report or _ignore
    model = model.to(torch.device(device)).eval()
    names = list(names) if names is not None else [f"run {i + 1}" for i in range(len(runs))]
    per_frame: list[tuple[int, dict[str, float]]] = []  # (run index, metrics) of every predicted frame
    per_run = []
    resolutions = set()
    for index, raw in enumerate(runs):
        shape = (size, size) if size else eval_shape(*raw.shape[1:])
        frames = resize_run(raw, shape)
        resolutions.add(f"{shape[0]}×{shape[1]}")
        middles = clip_middles(len(frames))
        predicted = predict_middles(model, frames, middles, device)
        values: dict[str, list[float]] = {f"{m}.{k}": [] for m in METHODS for k in ("psnr", "ssim")}
        exact: dict[str, int] = {}
        for position, t in enumerate(middles):
            truth = frames[t]
            guesses = {
                "model": predicted[position],
                "linear_blend": 0.5 * (frames[t - 1] + frames[t + 1]),
                "frame_repetition": frames[t - 1],
            }
            row = {}
            for method, guess in guesses.items():
                row[f"{method}.psnr"] = psnr(truth, guess)
                row[f"{method}.ssim"] = ssim(truth, guess)
                exact[method] = exact.get(method, 0) + int(math.isinf(row[f"{method}.psnr"]))
                values[f"{method}.psnr"].append(row[f"{method}.psnr"])
                values[f"{method}.ssim"].append(row[f"{method}.ssim"])
            per_frame.append((index, row))
        per_run.append(
            {"name": names[index], "frames": len(frames), "resolution": list(shape), "n": len(middles)}
            | _summary(values, exact)
        )
        report(Progress(phase="evaluating", done=index + 1, total=len(runs)))

    def overall(rows: list[tuple[int, dict[str, float]]]) -> dict[str, Any]:
        values = {f"{m}.{k}": [row[f"{m}.{k}"] for _, row in rows] for m in METHODS for k in ("psnr", "ssim")}
        exact = {m: sum(math.isinf(row[f"{m}.psnr"]) for _, row in rows) for m in METHODS}
        return {"n_frames": len(rows), "n_runs": len({index for index, _ in rows})} | _summary(values, exact)

    rng = np.random.default_rng(seed)
    sample = sorted(rng.choice(len(per_frame), size=min(triplet_sample, len(per_frame)), replace=False).tolist())
    return {
        "resolution": (
            f"{size}×{size} (every run resized)"
            if size
            else f"own resolution, longer side capped at {EVAL_MAX_SIDE} px: {', '.join(sorted(resolutions))}"
        ),
        "clips": overall(per_frame),
        "triplets": overall([per_frame[i] for i in sample]) | {"seed": seed, "sample": triplet_sample},
        "runs": per_run,
        "paper": PAPER_FIGURES,
        "metric": "scikit-image PSNR / SSIM, data range 1.0, SSIM Gaussian σ 1.5; "
        f"an exact frame's infinite PSNR counts as {PSNR_CAP_DB:g} dB in means",
    }


# ---------------------------------------------------------------------------------------------------- hold-out
def _hash_unit(key: str, patient: str) -> float:
    digest = hashlib.sha256(f"{key}:{patient}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_patient(
    patients: Sequence[str], *, held_out: Collection[str] = (), fraction: float = 0.25, key: str = "interpolation"
) -> tuple[list[int], list[int]]:
    """Return (train indices, held-out indices) of runs by their patients; a patient is never on both sides.

    The held-out patients are `held_out` (a project's test split) when any run belongs to one; otherwise a keyed
    hash of the patient puts `fraction` of them aside. With two or more patients both sides get at least one.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    keys = [str(p) for p in patients]
    chosen = {str(p) for p in held_out} & set(keys)
    if not chosen:
        units = {p: _hash_unit(key, p) for p in set(keys)}
        chosen = {p for p, u in units.items() if u < fraction}
        if len(units) >= 2 and not chosen:
            chosen = {min(units, key=lambda p: (units[p], p))}
        if len(units) >= 2 and chosen == set(units):
            chosen.discard(max(units, key=lambda p: (units[p], p)))
    train = [i for i, p in enumerate(keys) if p not in chosen]
    held = [i for i, p in enumerate(keys) if p in chosen]
    return train, held


# ---------------------------------------------------------------------------------------------------- worker side
@dataclass(frozen=True)
class RunRef:
    """A cine run for the worker: its item, its DICOM file (relative to the media root) and its patient key."""

    item_id: int
    path: str
    patient: str


@dataclass(frozen=True)
class InterpolationRequest:
    """Train on `train` runs, evaluate on `held_out` runs (other patients); references only, no database rows."""

    train: tuple[RunRef, ...]
    held_out: tuple[RunRef, ...]
    media_root: str
    params: InterpolationParams
    eval_size: int | None = None
    held_out_source: str = ""  # how the held-out patients were chosen, for the metrics


@dataclass(frozen=True)
class InterpolationOutcome:
    """A trained interpolation network: its weights bytes, constructor arguments and held-out evaluation."""

    weights: bytes
    architecture: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    device: str
    seconds: float


def _read_runs(
    refs: Sequence[RunRef],
    media_root: str,
    shape: Callable[[np.ndarray], int | tuple[int, int]],
    report: Reporter,
    *,
    done: int,
    total: int,
) -> list[np.ndarray]:
    """Read each run's frames and resize them at once (a long 512² run is not kept at full size)."""
    from learning.tasks.vessel import read_cine  # pydicom only where a worker reads files

    out = []
    for i, ref in enumerate(refs):
        frames = read_cine(str(Path(media_root) / ref.path))
        out.append(resize_run(frames, shape(frames)))
        report(Progress(phase="loading", done=done + i + 1, total=total))
    return out


def interpolation_train(
    request: InterpolationRequest, device: torch.device | str, report: Reporter | None = None
) -> InterpolationOutcome:
    """Read the runs, train on the training patients' runs, evaluate on the held-out patients' runs."""
    report = report or _ignore
    started = time.monotonic()
    params = request.params.check()
    train_patients = {r.patient for r in request.train}
    if train_patients & {r.patient for r in request.held_out}:
        raise ValueError("a patient has runs on both sides of the hold-out")
    if not request.train or not request.held_out:
        raise ValueError("frame interpolation needs runs to train on and held-out runs to evaluate on")
    size = request.eval_size
    total = len(request.train) + len(request.held_out)
    train_runs = _read_runs(request.train, request.media_root, lambda f: params.size, report, done=0, total=total)
    held_runs = _read_runs(
        request.held_out,
        request.media_root,
        lambda f: (size, size) if size else eval_shape(*f.shape[1:]),
        report,
        done=len(request.train),
        total=total,
    )
    model, info = interpolation_fit(train_runs, params, device, report)
    metrics = interpolation_evaluate(
        model, held_runs, device, size=size, names=[f"item {r.item_id}" for r in request.held_out], report=report
    )
    metrics["training"] = {k: v for k, v in info.items() if k != "history"}
    metrics["train"] = {
        "runs": len(request.train),
        "patients": len(train_patients),
        "item_ids": [r.item_id for r in request.train],
    }
    metrics["held_out"] = {
        "runs": len(request.held_out),
        "patients": len({r.patient for r in request.held_out}),
        "item_ids": [r.item_id for r in request.held_out],
        "source": request.held_out_source,
    }
    return InterpolationOutcome(
        weights=weights_dump(model),
        architecture=model.architecture(),
        metrics=metrics,
        history=info["history"],
        device=str(device),
        seconds=time.monotonic() - started,
    )


__all__ = [
    "EVAL_MAX_SIDE",
    "PAPER_FIGURES",
    "InterpolationOutcome",
    "InterpolationParams",
    "InterpolationParamsError",
    "InterpolationRequest",
    "RunRef",
    "TripletDataset",
    "clip_middles",
    "eval_shape",
    "interpolation_evaluate",
    "interpolation_fit",
    "interpolation_train",
    "interpolation_weights_load",
    "predict_middles",
    "psnr",
    "resize_run",
    "split_by_patient",
    "ssim",
    "triplets",
    "weights_dump",
]
