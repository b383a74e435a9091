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
from .truth import Truth, write_truth_json
from .xa import ANGLE_JITTER_RANGE, NOISE_RANGE, generate_xa_cohort
from .xa_views import VIEW_MIXES

TASKS = ("vessel_type", "oct_calcium", "spect_territory")
_DEFAULT_N = {"vessel_type": 10, "oct_calcium": 5, "spect_territory": 20}
_DEFAULT_SIZE = {"vessel_type": 256, "oct_calcium": 256, "spect_territory": 290}
_SPECT_KNOBS = tuple(f.name for f in dataclasses.fields(SpectDifficulty))
_XA_KNOBS = ("view_mix", "angle_jitter_deg", "table_panning")  # and --noise, shared with spect_territory
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
    p.add_argument(
        "--frames",
        type=int,
        nargs="+",
        metavar="F",
        help="frames per pullback (default 60) or per run; for vessel_type also MIN MAX, each run's length "
        "drawn between them (default 24 48)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--neither-rate",
        type=float,
        default=0.0,
        help="vessel_type only: share of runs that show neither coronary (aortogram, ventriculogram, no fill)",
    )
    p.add_argument(
        "--noise",
        type=float,
        help=f"scale of the image noise ({NOISE_RANGE[0]:g}-{NOISE_RANGE[1]:g}): vessel_type quantum noise "
        "(default 1); spect_territory count noise, overriding the preset's "
        f"(hard {SPECT_DIFFICULTIES['hard'].noise:g}, easy {SPECT_DIFFICULTIES['easy'].noise:g})",
    )
    xa = p.add_argument_group("vessel_type variation", "knobs for cohorts unlike the one a model was tuned on")
    xa.add_argument(
        "--view-mix",
        choices=VIEW_MIXES,
        help="C-arm view mixture: standard (default), atypical (unusual views, angle ranges of LCA and RCA "
        "overlap more), pooled (both vessels filmed alike)",
    )
    xa.add_argument(
        "--angle-jitter-deg",
        type=float,
        help=f"extra SD in degrees added to both C-arm angles ({ANGLE_JITTER_RANGE[0]:g}-{ANGLE_JITTER_RANGE[1]:g}, "
        "default 0)",
    )
    xa.add_argument(
        "--table-panning",
        type=float,
        help="pixels the table moves during each run, in a random direction (0 to half of --size, default 0)",
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
        "--difficulty picks a preset; each knob below (and --noise) overrides one field of it",
    )
    spect.add_argument("--difficulty", choices=tuple(SPECT_DIFFICULTIES), help="polar maps' realism (default: hard)")
    for knob in _SPECT_KNOBS:
        if knob == "noise":  # shared with vessel_type, added above
            continue
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
    for names, tasks in (
        (("difficulty", "reader_disagreement", *(k for k in _SPECT_KNOBS if k != "noise")), ("spect_territory",)),
        (_XA_KNOBS, ("vessel_type",)),
        (("noise",), ("vessel_type", "spect_territory")),
    ):
        given = [name for name in names if getattr(args, name) is not None]
        if given and args.task not in tasks:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            print(f"{flags}: only available for {' and '.join(tasks)}", file=sys.stderr)
            return 2
    if args.frames and (len(args.frames) > 2 or (len(args.frames) == 2 and args.task != "vessel_type")):
        print("--frames takes one number (MIN MAX only for vessel_type)", file=sys.stderr)
        return 2
    truths: Sequence[Truth]
    if args.task == "vessel_type":
        frames = (args.frames[0], args.frames[-1]) if args.frames else (24, 48)
        knobs = {name: getattr(args, name) for name in (*_XA_KNOBS, "noise") if getattr(args, name) is not None}
        try:
            runs = generate_xa_cohort(
                out, n_patients=n, frames=frames, size=size, seed=args.seed, neither_rate=args.neither_rate, **knobs
            )
        except ValueError as exc:
            print(f"vessel_type: {exc}", file=sys.stderr)
            return 2
        counts = Counter(t.vessel for t in runs)
        setting = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in knobs.items())
        detail = (
            f"{len(runs)} XA runs of {n} patients ({counts['LCA']} LCA, {counts['RCA']} RCA, "
            f"{counts['neither']} neither)" + (f" with {setting}" if setting else "")
        )
        truths = runs
    elif args.task == "oct_calcium":
        oct_frames = args.frames[0] if args.frames else 60
        pullbacks = generate_oct_cohort(out, n_pullbacks=n, frames=oct_frames, size=size, seed=args.seed)
        calc = sum(int(t.masks.any(axis=(1, 2)).sum()) for t in pullbacks)
        total = sum(t.frames for t in pullbacks)
        detail = f"{n} IVOCT pullbacks, {total} frames ({calc} with calcium)"
        truths = pullbacks
    else:
        preset = args.difficulty or "hard"
        overrides = {knob: getattr(args, knob) for knob in _SPECT_KNOBS if getattr(args, knob) is not None}
        disagreement = READER_DISAGREEMENT if args.reader_disagreement is None else args.reader_disagreement
        try:
            difficulty = dataclasses.replace(SPECT_DIFFICULTIES[preset], **overrides)
            patients = generate_spect_cohort(
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
        abnormal = sum(any(t.territory_abnormal.values()) for t in patients)
        ica = sum(t.ica_stenosis is not None for t in patients)
        artefacts = sum(bool(t.artefact) for t in patients)
        setting = preset + (" with " + ", ".join(f"{k}={v:g}" for k, v in overrides.items()) if overrides else "")
        detail = (
            f"{n} SPECT patients as {args.fmt}, {setting} ({abnormal} abnormal, {ica} with ICA, "
            f"{artefacts} with attenuation artefacts; second reader differs on {disagreement:.0%} of segments)"
        )
        truths = patients
    write_truth_json(truths, truth_path)
    print(f"{args.task}: wrote {detail} to {out}; truth in {truth_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
