"""Vessel type (LCA / RCA / neither): the C-arm metadata baseline, the contrast-image regression and R(2+1)D.

    python -m benchmarks.vessel_baseline [--patients 150] [--neither-rate 0.1] [--epochs 40] [--save]

A synthetic XA cohort (`learning.cohorts.generate_xa_cohort`, with "neither" runs: aortograms,
ventriculograms and catheter-only runs filmed in the same C-arm views as coronary runs) is split by
patient into train / validation / test (60 / 20 / 20 %). Both families of the vessel-type task are
trained with the platform's own loop (`learning.tasks.fit`, best epoch on validation macro-F1) and
evaluated on the test runs:

- `metadata_mlp`: the four C-arm geometry fields (PositionerPrimaryAngle, PositionerSecondaryAngle,
  DistanceSourceToDetector, DistanceSourceToPatient), no pixels — the seed paper's cold-start baseline;
- `r2plus1d`: the small R(2+1)D video network on frames resized to `--model-size`, averaged over
  random temporal windows;
- `contrast_logreg` (the platform's default): scikit-learn's logistic regression on the two angles with
  quadratic terms and the HOG descriptor of the run's contrast image, fitted on train + validation with its
  strength chosen by cross-validation (no epochs).

Macro-F1 is over the three classes, with the bootstrap 95 % interval `evaluate` returns; "F1 LCA/RCA"
is the mean of the two coronary classes' F1 (the seed paper excluded "neither", so that is the number
to hold against its ~0.88 metadata MLP vs ~0.99 video models). Geometry cannot tell a neither run from
a coronary one, so the metadata model's neither F1 is about 0.

CPU only (torch on two threads; the tiny MLP on one, where extra threads only add overhead).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import machine_line, save, table
from learning.cohorts import XaRunTruth, generate_xa_cohort
from learning.tasks import CineRef, Example, TrainOutcome, TrainRequest, fit, get_task
from learning.tasks.vessel import CLASSES

SPLITS = ("train", "validation", "test")


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with torch on n intra-op threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def split_by_patient(truths: list[XaRunTruth], seed: int) -> dict[str, str]:
    """Return patient id -> split, 60 / 20 / 20 % of the patients, shuffled by seed."""
    patients = sorted({t.patient_id for t in truths})
    order = np.random.default_rng(seed).permutation(len(patients))
    n = len(patients)
    out = {}
    for rank, k in enumerate(order):
        out[patients[k]] = "train" if rank < round(0.6 * n) else "validation" if rank < round(0.8 * n) else "test"
    return out


def examples(truths: list[XaRunTruth], media: Path, seed: int) -> dict[str, list[Example]]:
    """Return the labelled runs of each split as training examples (geometry from the DICOM fields)."""
    split = split_by_patient(truths, seed)
    out: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for i, t in enumerate(truths):
        ref = CineRef(
            item_id=i,
            path=t.path.relative_to(media).as_posix(),
            geometry=(t.primary_angle, t.secondary_angle, t.source_to_detector_mm, t.source_to_patient_mm),
        )
        name = split[t.patient_id]
        out[name].append(Example(ref=ref, target=CLASSES.index(t.vessel), split=name, label_id=i, label_version=1))
    return out


def train(media: Path, family: str, hparams: dict[str, Any], data: dict[str, list[Example]], seed: int) -> TrainOutcome:
    """Train one family with the platform's loop and return the outcome (test metrics included)."""
    request = TrainRequest(
        task="vessel_type",
        family=family,
        hparams=hparams,
        train=tuple(data["train"]),
        validation=tuple(data["validation"]),
        test=tuple(data["test"]),
        media_root=str(media),
        seed=seed,
    )
    started = time.monotonic()

    def report(progress: Any) -> None:
        if progress.phase == "training" and progress.epoch:
            print(
                f"  {family} epoch {progress.epoch}/{progress.total}: loss {progress.loss:.3f}, "
                f"validation macro-F1 {progress.validation:.3f} ({time.monotonic() - started:.0f} s)",
                flush=True,
            )

    return fit(get_task("vessel_type", media), request, torch.device("cpu"), report=report)


def row(label: str, outcome: TrainOutcome, seconds: float) -> tuple[object, ...]:
    """Return one table row of test metrics."""
    test = outcome.metrics["test"]
    low, high = test["macro_f1_ci"]
    coronary = float(np.mean([test["f1"]["LCA"], test["f1"]["RCA"]]))
    return (
        label,
        outcome.metrics["best_epoch"],
        f"{test['macro_f1']:.3f} [{low:.3f}, {high:.3f}]",
        coronary,
        test["f1"]["neither"],
        test["accuracy"],
        test["auc"],
        seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=150)
    parser.add_argument("--runs-per-patient", type=int, default=4)
    parser.add_argument("--size", type=int, default=128, help="rows = columns of the generated runs")
    parser.add_argument("--frames", type=int, nargs=2, default=(24, 40), metavar=("MIN", "MAX"))
    parser.add_argument("--neither-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-size", type=int, default=64, help="frames are resized to this for the network")
    parser.add_argument("--width", type=int, default=16, help="channels of the first R(2+1)D block")
    parser.add_argument("--epochs", type=int, default=40, help="R(2+1)D epochs (the best on validation is kept)")
    parser.add_argument("--keep", type=Path, help="write the cohort here and keep it (default: a temporary folder)")
    parser.add_argument("--save", action="store_true", help="write the table to benchmarks/results/vessel_baseline.txt")
    args = parser.parse_args()

    started = time.monotonic()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="lumen-vessel-bench-"))
    try:
        with torch_threads(2):
            t0 = time.monotonic()
            truths = generate_xa_cohort(
                folder,
                n_patients=args.patients,
                runs_per_patient=args.runs_per_patient,
                frames=tuple(args.frames),
                size=args.size,
                seed=args.seed,
                neither_rate=args.neither_rate,
            )
            generated = time.monotonic() - t0
            print(f"generated {len(truths)} runs in {generated:.0f} s", flush=True)
            data = examples(truths, folder, args.seed)
            counts = {name: Counter(CLASSES[e.target] for e in data[name]) for name in SPLITS}

            metadata_hp = {"epochs": 150, "batch_size": 16, "learning_rate": 3e-3, "patience": 0}
            t0 = time.monotonic()
            with torch_threads(1):
                metadata = train(folder, "metadata_mlp", metadata_hp, data, args.seed)
            metadata_s = time.monotonic() - t0

            pixel_hp = {
                "epochs": args.epochs,
                "patience": 0,
                "learning_rate": 3e-3,
                "size": args.model_size,
                "width": args.width,
                "clip_frames": 8,
                "frame_step": 3,
                "crops": 4,
            }
            t0 = time.monotonic()
            pixel = train(folder, "r2plus1d", pixel_hp, data, args.seed)
            pixel_s = time.monotonic() - t0
            t0 = time.monotonic()
            contrast = train(folder, "contrast_logreg", {}, data, args.seed)
            contrast_s = time.monotonic() - t0
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    total = time.monotonic() - started

    rows = [row("metadata_mlp (4 C-arm fields)", metadata, metadata_s), row("r2plus1d (pixels)", pixel, pixel_s)]
    m, p = metadata.metrics["test"], pixel.metrics["test"]
    rows.insert(2, row("contrast_logreg (angles + contrast HOG)", contrast, contrast_s))
    rows.append(
        (
            "gap (pixels - metadata)",
            "",
            f"{p['macro_f1'] - m['macro_f1']:+.3f}",
            f"{rows[1][3] - rows[0][3]:+.3f}",
            f"{p['f1']['neither'] - m['f1']['neither']:+.3f}",
            f"{p['accuracy'] - m['accuracy']:+.3f}",
            f"{p['auc'] - m['auc']:+.3f}",
            "",
        )
    )
    body = table(
        ["model", "best epoch", "test macro-F1 [95% CI]", "F1 LCA/RCA", "F1 neither", "accuracy", "AUC", "train s"],
        rows,
    )

    def split_line(name: str) -> str:
        c = counts[name]
        return f"{name} {sum(c.values())} ({c['LCA']} LCA, {c['RCA']} RCA, {c['neither']} neither)"

    kinds = Counter(t.neither_kind for t in truths if t.vessel == "neither")
    text = (
        f"Vessel type benchmark: {args.patients} patients x {args.runs_per_patient} XA runs, "
        f"{args.size}x{args.size}, {args.frames[0]}-{args.frames[1]} frames, neither rate {args.neither_rate} "
        f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), seed {args.seed}\n"
        f"runs by patient: {'; '.join(split_line(name) for name in SPLITS)}\n"
        f"metadata_mlp {metadata_hp}\nr2plus1d {pixel_hp}\n"
        f"{machine_line()} · torch {torch.__version__} on CPU\n\n{body}\n\n"
        f"generation {generated:.0f} s, total {total:.0f} s"
    )
    print(text)
    if args.save:
        print(f"\nsaved to {save('vessel_baseline.txt', text)}")


if __name__ == "__main__":
    main()
