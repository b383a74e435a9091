"""Command line: write a synthetic cohort and its truth JSON.

python -m learning.cohorts --task vessel_type --out /data/demo/xa --n 10
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .ivoct import generate_oct_cohort
from .spect import READER_DISAGREEMENT, SPECT_DIFFICULTIES, SpectDifficulty, generate_spect_cohort
from .truth import write_truth_json
from .xa import generate_xa_cohort

TASKS = ("vessel_type", "oct_calcium", "spect_territory")
_DEFAULT_N = {"vessel_type": 10, "oct_calcium": 5, "spect_territory": 20}
_DEFAULT_SIZE = {"vessel_type": 256, "oct_calcium": 256, "spect_territory": 290}
_SPECT_KNOBS = tuple(f.name for f in dataclasses.fields(SpectDifficulty))
_SPECT_KNOB_HELP = {
    "defect_contrast": "count loss of a scored defect, relative to the easy setting",
    "contrast_spread": "each territory's defect contrast varies by up to +- this share",
    "faint_defect_rate": "share of territories whose defect is drawn at only 10-35%% contrast",
    "score_jitter": "SD in score units between a segment's read score and the drawn defect",
    "artefact_rate": "share of patients with a marked attenuation artefact (more with high BMI)",
    "noise": "scale of the count noise",
    "intensity_jitter": "SD of each map's gamma (log) and smooth regional gain",
    "misregistration_deg": "SD in degrees of each map's rotation against the segment grid",
}


def _parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    p = argparse.ArgumentParser(prog="python -m learning.cohorts", description=__doc__.split("\n")[0])
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--out", required=True, type=Path, help="folder for the files to import")
    p.add_argument("--n", type=int, help="patients (XA, SPECT) or pullbacks (OCT)")
    p.add_argument("--size", type=int, help="image rows = columns")
    p.add_argument("--frames", type=int, help="frames per run / pullback")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--neither-rate",
        type=float,
        default=0.0,
        help="vessel_type only: share of runs that show neither coronary (aortogram, ventriculogram, no fill)",
    )
    p.add_argument(
        "--format",
        dest="fmt",
        choices=("dicom", "png"),
        default="dicom",
        help="SPECT only: DICOM secondary captures or PNGs + manifest.csv",
    )
    spect = p.add_argument_group(
        "spect_territory difficulty",
        "--difficulty picks a preset; each knob below overrides one field of it",
    )
    spect.add_argument("--difficulty", choices=tuple(SPECT_DIFFICULTIES), help="polar maps' realism (default: hard)")
    for knob in _SPECT_KNOBS:
        hard = getattr(SPECT_DIFFICULTIES["hard"], knob)
        easy = getattr(SPECT_DIFFICULTIES["easy"], knob)
        spect.add_argument(
            f"--{knob.replace('_', '-')}",
            type=float,
            help=f"{_SPECT_KNOB_HELP[knob]} (hard {hard:g}, easy {easy:g})",
        )
    spect.add_argument(
        "--reader-disagreement",
        type=float,
        help="share of stress segments a second reader scores +-1 differently; 0 writes no second reader "
        f"(default {READER_DISAGREEMENT:g})",
    )
    p.add_argument("--truth", type=Path, help="truth JSON path (default: <out>/../truth-<task>.json, outside --out)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    n = args.n if args.n is not None else _DEFAULT_N[args.task]
    size = args.size or _DEFAULT_SIZE[args.task]
    out: Path = args.out
    truth_path = args.truth or out.resolve().parent / f"truth-{args.task}.json"
    if args.fmt == "png" and args.task != "spect_territory":
        print("--format png is only available for spect_territory", file=sys.stderr)
        return 2
    if args.neither_rate and args.task != "vessel_type":
        print("--neither-rate is only available for vessel_type", file=sys.stderr)
        return 2
    if not 0.0 <= args.neither_rate <= 1.0:
        print("--neither-rate must be between 0 and 1", file=sys.stderr)
        return 2
    spect_options = [
        name for name in ("difficulty", "reader_disagreement", *_SPECT_KNOBS) if getattr(args, name) is not None
    ]
    if spect_options and args.task != "spect_territory":
        flags = ", ".join("--" + name.replace("_", "-") for name in spect_options)
        print(f"{flags}: only available for spect_territory", file=sys.stderr)
        return 2
    if args.task == "vessel_type":
        frames = (args.frames, args.frames) if args.frames else (24, 48)
        truths = generate_xa_cohort(
            out, n_patients=n, frames=frames, size=size, seed=args.seed, neither_rate=args.neither_rate
        )
        counts = Counter(t.vessel for t in truths)
        detail = (
            f"{len(truths)} XA runs of {n} patients ({counts['LCA']} LCA, {counts['RCA']} RCA, "
            f"{counts['neither']} neither)"
        )
    elif args.task == "oct_calcium":
        truths = generate_oct_cohort(out, n_pullbacks=n, frames=args.frames or 60, size=size, seed=args.seed)
        calc = sum(int(t.masks.any(axis=(1, 2)).sum()) for t in truths)
        total = sum(t.frames for t in truths)
        detail = f"{n} IVOCT pullbacks, {total} frames ({calc} with calcium)"
    else:
        preset = args.difficulty or "hard"
        overrides = {knob: getattr(args, knob) for knob in _SPECT_KNOBS if getattr(args, knob) is not None}
        disagreement = READER_DISAGREEMENT if args.reader_disagreement is None else args.reader_disagreement
        try:
            difficulty = dataclasses.replace(SPECT_DIFFICULTIES[preset], **overrides)
            truths = generate_spect_cohort(
                out,
                n_patients=n,
                size=size,
                seed=args.seed,
                fmt=args.fmt,
                difficulty=difficulty,
                reader_disagreement=disagreement,
            )
        except ValueError as exc:
            print(f"spect_territory: {exc}", file=sys.stderr)
            return 2
        abnormal = sum(any(t.territory_abnormal.values()) for t in truths)
        ica = sum(t.ica_stenosis is not None for t in truths)
        artefacts = sum(bool(t.artefact) for t in truths)
        setting = preset + (" with " + ", ".join(f"{k}={v:g}" for k, v in overrides.items()) if overrides else "")
        detail = (
            f"{n} SPECT patients as {args.fmt}, {setting} ({abnormal} abnormal, {ica} with ICA, "
            f"{artefacts} with attenuation artefacts; second reader differs on {disagreement:.0%} of segments)"
        )
    write_truth_json(truths, truth_path)
    print(f"{args.task}: wrote {detail} to {out}; truth in {truth_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
