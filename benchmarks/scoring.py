"""Scoring and training throughput of the three learning tasks: end to end against the bare model forward.

    python -m benchmarks.scoring [--save] [--device cpu|cuda] [--quick] [--repeats 3] [--threads N]

For each task a small synthetic cohort is written to a temporary folder (`learning.cohorts`), split by
patient into training items and items to score, and a model is trained briefly with the task's default
hyper-parameters (`fit`, no validation split, so an epoch is the training pass alone). Then, per task:

- end to end: `score()` on a fresh task instance (empty decode cache) over the items to score, exactly as a
  worker runs a scoring job: read the weights, decode the DICOM / PNG files, resize, run the model (with the
  task's crops or test-time rotations), compute uncertainty and embeddings and build the JSON outputs;
- warm cache: `score()` again on the same task instance, so the files are already decoded and resized;
- bare forward: the same model, in eval mode under `torch.no_grad`, on the same batches already preprocessed
  and on the device, with as many forward passes per item as the scorer makes (vessel: one clip per crop;
  OCT: one image per quarter turn; SPECT: one pass), timed after a warm-up.

The overhead is bare-forward items/s divided by end-to-end items/s (1.0 = the scorer costs no more than its
model). Timings are the best of `--repeats`, measured with `time.perf_counter` in this one process (with
`torch.cuda.synchronize()` around each timed region on a GPU); training seconds come from the per-epoch
history `fit` records. With `--save` the table goes to `benchmarks/results/scoring.txt` on the CPU and to
`benchmarks/results/scoring-<gpu-name>.txt` on a GPU.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import machine_line, save, table

VESSEL_PIXELS = "decode + resize every frame, 10 random 16-frame crops per run, entropy/margin, embedding"
VESSEL_META = "geometry fields only (no file read), MLP, entropy/margin"
OCT_NOTE = "decode the pullback once for all its frames, 4 quarter-turn TTA, full-size bilinear + RLE mask"
SPECT_NOTE = "decode + resize rest and stress PNGs, one pass, plus one encoder pass for the embedding"


@dataclass(frozen=True)
class Scale:
    """How big each cohort is; `--quick` shrinks everything."""

    xa_patients: int  # half train, half scored; 4 runs each
    xa_frames: tuple[int, int]
    xa_size: int
    oct_pullbacks: int  # half train, half scored
    oct_frames: int
    oct_size: int
    spect_patients: int  # half train, half scored
    spect_size: int
    epochs: int


DEFAULT = Scale(
    xa_patients=6,
    xa_frames=(24, 40),
    xa_size=512,
    oct_pullbacks=2,
    oct_frames=16,
    oct_size=512,
    spect_patients=64,
    spect_size=290,
    epochs=3,
)
QUICK = Scale(
    xa_patients=2,
    xa_frames=(16, 24),
    xa_size=256,
    oct_pullbacks=2,
    oct_frames=8,
    oct_size=256,
    spect_patients=16,
    spect_size=128,
    epochs=2,
)


@dataclass(frozen=True)
class Case:
    """One task and model family: what to train on, what to score, and what the end-to-end figure includes."""

    task: str
    family: str
    media_root: Path
    train: tuple[Any, ...]  # Example
    refs: tuple[Any, ...]  # ItemRef
    hparams: dict[str, Any]
    includes: str


# ---------------------------------------------------------------------------------------------------- cohorts
def vessel_cases(folder: Path, scale: Scale) -> list[Case]:
    from learning.cohorts import generate_xa_cohort
    from learning.tasks import CineRef, Example
    from learning.tasks.vessel import CLASSES

    truths = generate_xa_cohort(
        folder, n_patients=scale.xa_patients, runs_per_patient=4, frames=scale.xa_frames, size=scale.xa_size, seed=3
    )
    train_patients = {t.patient_id for t in truths[: len(truths) // 2]}
    examples = [
        Example(
            ref=CineRef(
                item_id=index,
                path=str(t.path.relative_to(folder)),
                geometry=(t.primary_angle, t.secondary_angle, t.source_to_detector_mm, t.source_to_patient_mm),
            ),
            target=CLASSES.index(t.vessel),
            split="train",
            label_id=index,
            label_version=1,
        )
        for index, t in enumerate(truths)
    ]
    train = tuple(e for e, t in zip(examples, truths, strict=True) if t.patient_id in train_patients)
    refs = tuple(e.ref for e, t in zip(examples, truths, strict=True) if t.patient_id not in train_patients)
    return [
        Case("vessel_type", "r2plus1d", folder, train, refs, {}, VESSEL_PIXELS),
        Case("vessel_type", "metadata_mlp", folder, train, refs, {}, VESSEL_META),
    ]


def oct_cases(folder: Path, scale: Scale) -> list[Case]:
    from learning.cohorts import generate_oct_cohort
    from learning.masks import mask_encode
    from learning.tasks import Example, OctFrameRef

    truths = generate_oct_cohort(
        folder, n_pullbacks=scale.oct_pullbacks, frames=scale.oct_frames, size=scale.oct_size, seed=3
    )
    train, refs = [], []
    for number, truth in enumerate(truths):
        for frame in range(truth.frames):
            ref = OctFrameRef(
                item_id=len(train) + len(refs),
                path=str(truth.path.relative_to(folder)),
                frame_index=frame,
                rows=truth.size,
                columns=truth.size,
            )
            if number < len(truths) // 2:
                train.append(
                    Example(ref=ref, target=mask_encode(truth.masks[frame]), split="train", label_id=ref.item_id)
                )
            else:
                refs.append(ref)
    return [Case("oct_calcium", "unet", folder, tuple(train), tuple(refs), {}, OCT_NOTE)]


def spect_cases(folder: Path, scale: Scale) -> list[Case]:
    from learning.cohorts import generate_spect_cohort
    from learning.models.spect import TERRITORIES
    from learning.tasks import Example, SpectRef

    truths = generate_spect_cohort(folder, n_patients=scale.spect_patients, size=scale.spect_size, seed=3, fmt="png")
    examples = [
        Example(
            ref=SpectRef(
                item_id=index,
                rest_path=str(t.rest_path.relative_to(folder)),
                stress_path=str(t.stress_path.relative_to(folder)),
                age=float(t.age),
                sex=t.sex,
                weight_kg=t.weight_kg,
                height_cm=t.height_cm,
            ),
            target=[int(t.territory_abnormal[name]) for name in TERRITORIES],
            split="train",
            label_id=index,
        )
        for index, t in enumerate(truths)
    ]
    half = len(examples) // 2
    return [
        Case(
            "spect_territory",
            "polar_cnn",
            folder,
            tuple(examples[:half]),
            tuple(e.ref for e in examples[half:]),
            {},
            SPECT_NOTE,
        )
    ]


# ---------------------------------------------------------------------------------------------------- timing
def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(
    repeats: int,
    device: torch.device,
    work: Callable[..., object],
    setup: Callable[[], object] | None = None,
    min_seconds: float = 1.0,
    max_runs: int = 50,
):
    """Return (best seconds, last setup value) of work(setup value): at least `repeats` timed runs, more (up to
    `max_runs`) while they have taken less than `min_seconds` in all, so that millisecond timings settle too."""
    best, prepared, spent, runs = float("inf"), None, 0.0, 0
    while runs < repeats or (spent < min_seconds and runs < max_runs):
        prepared = setup() if setup else None
        synchronise(device)
        start = time.perf_counter()
        work(prepared) if setup else work()
        synchronise(device)
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best, prepared


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def bare_batches(spec, family: str, params, refs: Sequence[Any], batch_size: int, device: torch.device, seed: int):
    """Return the scorer's batches as lists of model-input tuples already on the device, and forwards per item.

    Built from the task's own (already warm) decode cache and crop / rotation logic, so the tensors have the
    shapes the scorer feeds the model.
    """
    from learning.tasks.oct import ROTATIONS

    rng = np.random.default_rng(seed)
    batches: list[list[tuple[torch.Tensor, ...]]] = []
    for chunk in chunks(list(refs), batch_size):
        if spec.name == "vessel_type" and family == "metadata_mlp":
            calls = [(torch.tensor([ref.geometry for ref in chunk], dtype=torch.float32),)]
        elif spec.name == "vessel_type":
            frames = [spec.frames(ref, params.size) for ref in chunk]
            calls = [(torch.stack([spec.window(f, params, rng) for f in frames for _ in range(params.crops)]),)]
        elif spec.name == "oct_calcium":
            images = torch.stack([spec.image(ref, params.size) for ref in chunk])
            calls = [(torch.rot90(images, turns, dims=(2, 3)).contiguous(),) for turns in ROTATIONS]
        else:
            calls = [spec.inputs(chunk, params.size)]
        batches.append([tuple(t.to(device) for t in call) for call in calls])
    per_item = {"vessel_type": params.crops if family == "r2plus1d" else 1, "oct_calcium": len(ROTATIONS)}
    return batches, per_item.get(spec.name, 1)


def run_case(case: Case, device: torch.device, epochs: int, repeats: int) -> dict[str, Any]:
    from learning.tasks import ScoreRequest, TrainRequest, fit, get_task, score, weights_load

    hparams = {"epochs": epochs, "patience": 0, **case.hparams}
    request = TrainRequest(
        task=case.task,
        family=case.family,
        hparams=hparams,
        train=case.train,
        validation=(),
        test=(),
        media_root=str(case.media_root),
    )
    outcome = fit(get_task(case.task, case.media_root), request, device)
    epoch_seconds = [row["seconds"] for row in outcome.history]

    score_request = ScoreRequest(
        task=case.task, weights=outcome.weights, refs=case.refs, media_root=str(case.media_root)
    )
    n = len(case.refs)
    cold, spec = best_of(
        repeats,
        device,
        lambda fresh: score(fresh, score_request, device),
        setup=lambda: get_task(case.task, case.media_root),
    )
    warm, _ = best_of(repeats, device, lambda: score(spec, score_request, device))

    data = weights_load(outcome.weights)
    params = spec.params_class.parse(data["hparams"])
    model = spec.build(data["family"], params)
    model.load_state_dict(data["state_dict"])
    model.to(device).eval()
    batches, per_item = bare_batches(
        spec, case.family, params, case.refs, score_request.batch_size, device, score_request.seed
    )

    def forward() -> None:
        for calls in batches:
            for inputs in calls:
                model(*inputs)

    with torch.no_grad():
        forward()  # warm-up: allocator, kernels, cuDNN choices
        bare, _ = best_of(repeats, device, forward)
    parity = cpu_parity(case, score_request, score(spec, score_request, device)) if device.type == "cuda" else None
    return {
        "parity": parity,
        "items": n,
        "cold": n / cold,
        "warm": n / warm,
        "bare": n / bare,
        "per_item": per_item,
        "first_epoch": epoch_seconds[0],
        "epoch": statistics.median(epoch_seconds[1:]) if len(epoch_seconds) > 1 else epoch_seconds[0],
        "train_items": len(case.train),
        "batch_size": outcome.hparams["batch_size"],
    }


def cpu_parity(case: Case, request: Any, on_device: Sequence[Any]) -> dict[str, float]:
    """Score the same weights on the CPU: how far the device's confidences and uncertainties are from the CPU's,
    and the share of items whose predicted label (class, mask, territory flags) is the same."""
    from learning.tasks import get_task, score

    on_cpu = {s.item_id: s for s in score(get_task(case.task, case.media_root), request, torch.device("cpu"))}
    pairs = [(s, on_cpu[s.item_id]) for s in on_device]
    if len(pairs) != len(on_cpu):
        raise RuntimeError(f"{case.task}: the device scored {len(pairs)} items, the CPU {len(on_cpu)}")
    return {
        "confidence": max(abs(a.confidence - b.confidence) for a, b in pairs),
        "uncertainty": max(abs(a.uncertainty - b.uncertainty) for a, b in pairs),
        "same": sum(a.pseudo_target == b.pseudo_target for a, b in pairs) / len(pairs),
        "dice": (
            min(mask_dice(a.pseudo_target, b.pseudo_target) for a, b in pairs) if case.task == "oct_calcium" else None
        ),
    }


def mask_dice(first: dict, second: dict) -> float:
    """Dice of two RLE masks (1.0 when both are empty)."""
    from learning.masks import mask_decode
    from learning.metrics import dice

    return float(dice(mask_decode(first), mask_decode(second)))


# ---------------------------------------------------------------------------------------------------- report
def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def result_name(device: torch.device) -> str:
    if device.type != "cuda":
        return "scoring.txt"
    return f"scoring-{re.sub(r'[^a-z0-9]+', '-', device_name(device).lower()).strip('-')}.txt"


def report(args, scale: Scale, device: torch.device, rows: list[tuple[Case, dict]], seconds: float, load: float) -> str:
    body = table(
        [
            "task",
            "model",
            "items",
            "end-to-end items/s",
            "warm-cache items/s",
            "bare forward items/s",
            "overhead x",
            "overhead x (warm)",
            "forwards/item",
            "s/epoch",
            "epoch 1 s",
            "train items",
            "device",
        ],
        [
            (
                case.task,
                case.family,
                r["items"],
                r["cold"],
                r["warm"],
                r["bare"],
                r["bare"] / r["cold"],
                r["bare"] / r["warm"],
                r["per_item"],
                r["epoch"],
                r["first_epoch"],
                r["train_items"],
                device.type,
            )
            for case, r in rows
        ],
    )
    if device.type == "cuda":
        parity = table(
            ["task", "model", "max |Δ confidence|", "max |Δ uncertainty|", "same predicted label", "lowest mask Dice"],
            [
                (
                    c.task,
                    c.family,
                    f"{r['parity']['confidence']:.1e}",
                    f"{r['parity']['uncertainty']:.1e}",
                    f"{r['parity']['same']:.1%}",
                    "-" if r["parity"]["dice"] is None else f"{r['parity']['dice']:.4f}",
                )
                for c, r in rows
            ],
        )
        body += (
            "\n\nThe weights trained on the device, scored again on the CPU (what a CPU worker loading them would "
            "give); a mask is the same only when every pixel is, so its Dice with the CPU's mask is shown too "
            f"(the GPU's convolutions may use TF32):\n{parity}"
        )
    includes = "\n".join(f"  {case.task} / {case.family}: {case.includes}" for case, _ in rows)
    today = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    cohorts = (
        f"XA {scale.xa_patients * 4} runs of {scale.xa_frames[0]}-{scale.xa_frames[1]} frames at {scale.xa_size}², "
        f"IVOCT {scale.oct_pullbacks} pullbacks of {scale.oct_frames} frames at {scale.oct_size}², "
        f"SPECT {scale.spect_patients} patients' PNG polar maps at {scale.spect_size}²; half the patients train, "
        "the other half are scored"
    )
    return (
        f"Scoring benchmark{' (--quick)' if args.quick else ''}: {cohorts}\n"
        f"{machine_line()} · torch {torch.__version__} · device {device} ({device_name(device)}) · "
        f"{torch.get_num_threads()} torch threads · load average {load:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end · {today}\n"
        f"Best of {args.repeats} or more timings (until 1 s is spent; time.perf_counter); training: "
        f"{scale.epochs} epochs with default hyper-parameters, no validation split; s/epoch is the median of "
        "epochs 2+ (decode cache warm), epoch 1 "
        f"also decodes every training file. Whole run {seconds:.0f} s.\n\n{body}\n\n"
        "end-to-end = score() on a fresh task instance (weights load, decode, resize, model, uncertainty, JSON "
        "outputs); warm-cache = score() again on the same instance (files already decoded); bare forward = the "
        "model alone under torch.no_grad on the same preprocessed batches (16 items each) already on the "
        "device, forwards/item passes per item as the scorer makes; overhead x = bare items/s / end-to-end "
        "items/s.\n"
        f"End to end includes:\n{includes}\n"
        "Other processes may share the machine while this runs: absolute items/s vary between runs, the ratios "
        "measured within one run are what to compare."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: CUDA when available")
    parser.add_argument("--quick", action="store_true", help="tiny cohorts, fewer timings (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repetitions (default 3; 1 with --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 2 on the CPU)")
    parser.add_argument("--save", action="store_true", help="write the table to benchmarks/results/")
    args = parser.parse_args()
    from learning.models import pick_device

    device = torch.device(args.device) if args.device else pick_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    threads = args.threads or (2 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    scale = QUICK if args.quick else DEFAULT
    args.repeats = args.repeats or (1 if args.quick else 3)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="lumen-bench-scoring-"))
    try:
        rows = []
        for name, build in (("xa", vessel_cases), ("oct", oct_cases), ("spect", spect_cases)):
            for case in build(folder / name, scale):
                case_started = time.perf_counter()
                rows.append((case, run_case(case, device, scale.epochs, args.repeats)))
                print(f"{case.task} / {case.family}: {time.perf_counter() - case_started:.1f} s", flush=True)
        text = report(args, scale, device, rows, time.perf_counter() - started, load)
        print()
        print(text)
        if args.save:
            print(f"\nsaved to {save(result_name(device), text)}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
