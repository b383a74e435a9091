"""Active learning against random, through the platform's real loop, on synthetic cohorts with known truth.

    python -m benchmarks.al_simulation --task vessel_type|oct_calcium|spect_territory [--save] [--quick]
        [--seeds N] [--strategies a,b] [--step N] [--budget N] [--epochs N]

Per seed, a throw-away SQLite database and media folder are set up (`benchmarks.al_loop`), a synthetic cohort
is generated and imported with the platform's import service, the split is fixed by patient and the test set
locked, and a lead labels every held-out test and validation item from the truth. Then, for every acquisition
strategy the task supports (random included), that starting state is restored and the loop runs: a simulated
annotator leases `step` items with `item_next` and answers each from the generator's truth with `label_submit`
(vessel: the true class; OCT: the true mask, or "excluded" for guide-catheter and blood frames; SPECT: the true
stress and rest segment scores), a training is queued with `training_request`, and the jobs are claimed and run
inline: the training, then, if the candidate beats the champion on the held-out test set, the scoring that
promotes it and re-ranks the queue by the strategy over the new champion's scores. Until the label budget is
spent. Every strategy starts from the same state with the same seed, so only the strategy differs.

Reported per strategy (mean over seeds): the champion's test metric after each round, the latest candidate's
(the champion's curve only rises: a candidate replaces it only when better on the same test items, so it is
the best of the candidates so far, chosen on the test set, and optimistic; the candidate's is not), the mean
over rounds (area under the learning curve, divided by the number of rounds) and how many labels the champion
needed to reach the task's target. With `--save`: benchmarks/results/al_simulation_<task>.txt and .png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.al_chart import Panel, line_chart
from benchmarks.al_loop import Cohort, Plan, Round, Start, django_setup, start_build, state_restore, state_save
from benchmarks.al_loop import strategy_run as run_loop
from benchmarks.common import RESULTS, machine_line, save, table

METRIC_NAMES = {"vessel_type": "macro-F1", "oct_calcium": "Dice", "spect_territory": "per-patient AUC"}


@dataclass(frozen=True)
class Setup:
    """A task's default simulation and how to read it."""

    plan: Plan
    seeds: int
    target: float
    target_note: str


SETUPS = {
    "vessel_type": Setup(
        plan=Plan(
            task="vessel_type",
            cohort=Cohort(n=120, size=64, frames=(16, 24), runs_per_patient=4, neither_rate=0.1),
            hparams={
                "size": 32,
                "clip_frames": 8,
                "frame_step": 2,
                "width": 16,
                "crops": 4,
                "epochs": 16,
                "batch_size": 4,
                "patience": 0,
                "learning_rate": 3e-3,
                # The pixel model from the first round (the platform's default starts with the C-arm metadata
                # MLP below 40 labels): the benchmark compares how strategies feed the video model.
                "pixel_model_min_labels": 0,
            },
            step=25,
            budget=200,
            test_fraction=0.2,
            validation_fraction=0.1,
        ),
        seeds=2,
        target=0.75,
        target_note="reachable within the budget with these small settings (32-pixel R(2+1)D, 16 epochs)",
    ),
    "oct_calcium": Setup(
        plan=Plan(
            task="oct_calcium",
            # Many short pullbacks: the split is by patient, and with few of them a seed can leave a single
            # pullback to validate on, too few to pick the best epoch.
            cohort=Cohort(n=48, size=48, frames=(12, 12)),
            hparams={
                "size": 48,
                "base": 8,
                "depth": 3,
                "epochs": 15,
                "batch_size": 4,
                "patience": 0,
                "learning_rate": 3e-3,
            },
            step=25,
            budget=150,
            test_fraction=0.2,
            validation_fraction=0.15,
        ),
        seeds=2,
        target=0.65,
        target_note=(
            "reachable within the budget with these small settings (48-pixel U-Net, 15 epochs); "
            "0.70 was reached by no strategy in the first default run"
        ),
    ),
    "spect_territory": Setup(
        plan=Plan(
            task="spect_territory",
            cohort=Cohort(n=500, size=64),
            hparams={"size": 64, "width": 16, "epochs": 20, "patience": 0, "learning_rate": 3e-3},
            # Expert-read territory flags are easy on this cohort (AUC > 0.85 from 5 labels): small rounds, so
            # that the strategies have room to differ before the curve saturates.
            step=10,
            budget=100,
            test_fraction=0.2,
            validation_fraction=0.1,
        ),
        seeds=3,
        target=0.95,
        target_note="reachable within the budget with these settings (64-pixel polar-map CNN, 20 epochs)",
    ),
}


def quick(setup: Setup) -> Setup:
    """Return a few-minute smoke version: half the cohort, two rounds, three epochs, one seed."""
    plan = setup.plan
    cohort = replace(plan.cohort, n=max(plan.cohort.n // 2, 10))
    hparams = {**plan.hparams, "epochs": 3}
    return replace(
        setup,
        plan=replace(plan, cohort=cohort, hparams=hparams, budget=2 * plan.step),
        seeds=1,
        target_note="the default run's target; a --quick smoke run is not expected to reach it",
    )


def task_strategies(task: str, hparams: dict) -> list[str]:
    """Return every acquisition strategy the task's scores can feed, random first."""
    from learning.strategies import STRATEGIES
    from learning.tasks import task_class

    spec = task_class(task)
    params = spec.params_class.parse(hparams)
    names = [name for name in STRATEGIES if spec.strategy_problem(name, params) is None]
    return sorted(names, key=lambda name: (name != "random", list(STRATEGIES).index(name)))


# ---------------------------------------------------------------------------------------------------- reading
def mean_curve(runs: list[list[Round]], field: str) -> list[float | None]:
    """Return the per-round mean of a field over seeds (None where a seed has no value)."""
    rounds = min(len(r) for r in runs)
    out = []
    for i in range(rounds):
        values = [getattr(r[i], field) for r in runs]
        out.append(None if any(v is None for v in values) else float(np.mean(values)))
    return out


def labels_to(curve: list[float | None], labels: list[int], target: float) -> int | None:
    """Return the first label count at which the curve reaches the target, or None."""
    return next((n for n, v in zip(labels, curve, strict=True) if v is not None and v >= target), None)


def area(curve: list[float | None]) -> float | None:
    """Return the mean of the curve over rounds (area under the learning curve per round)."""
    values = [v for v in curve if v is not None]
    return float(np.mean(values)) if values and len(values) == len(curve) else None


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def report_tables(
    results: dict[str, list[list[Round]]], labels: list[int], target: float, metric: str
) -> tuple[str, dict[str, list[float | None]], dict[str, list[float | None]]]:
    """Return the champion and candidate tables, and the mean curves they were built from."""
    rounds = len(labels)
    champion = {name: mean_curve(runs, "champion")[:rounds] for name, runs in results.items()}
    candidate = {name: mean_curve(runs, "candidate")[:rounds] for name, runs in results.items()}
    base_final = champion.get("random", [None])[-1]
    base_area = area(champion.get("random", []))
    headers = [
        "strategy",
        *[str(n) for n in labels],
        "final",
        "final by seed",
        "mean",
        "vs random",
        f"labels to {target:.2f}",
    ]
    rows = []
    for name, curve in champion.items():
        reached = labels_to(curve, labels, target)
        per_seed = [labels_to([r.champion for r in run[:rounds]], labels, target) for run in results[name]]
        seeds = f" (seeds: {', '.join(str(n) if n else '-' for n in per_seed)})" if len(per_seed) > 1 else ""
        delta = ""
        if name != "random" and base_final is not None and curve[-1] is not None and base_area is not None:
            delta = f"{curve[-1] - base_final:+.3f} / {area(curve) - base_area:+.3f}"
        rows.append(
            [
                name,
                *map(_num, curve),
                _num(curve[-1]),
                " ".join(_num(run[rounds - 1].champion) for run in results[name]),
                _num(area(curve)),
                delta,
                (str(reached) if reached else "not reached") + seeds,
            ]
        )
    promotions = {name: [sum(r.promoted for r in run) for run in runs] for name, runs in results.items()}
    cand_rows = [
        [name, *map(_num, curve), _num(curve[-1]), _num(area(curve)), ", ".join(map(str, promotions[name]))]
        for name, curve in candidate.items()
    ]
    text = (
        f"Champion's test {metric} after each round (labels used; mean over seeds). "
        f"'vs random': final / mean difference.\n"
        + table(headers, rows)
        + f"\n\nLatest candidate's test {metric} after each round (not selected on the test set).\n"
        + table(["strategy", *[str(n) for n in labels], "final", "mean", "promotions per seed"], cand_rows)
    )
    return text, champion, candidate


def merge_identical(champion: dict[str, list], candidate: dict[str, list]) -> tuple[dict, dict]:
    """Draw strategies whose curves are identical as one line named "a = b" (else one hides the other)."""
    groups: dict[tuple, list[str]] = {}
    for name in champion:
        groups.setdefault((tuple(champion[name]), tuple(candidate[name])), []).append(name)
    merged_champion, merged_candidate = {}, {}
    for names in groups.values():
        label = " = ".join(names)
        merged_champion[label], merged_candidate[label] = champion[names[0]], candidate[names[0]]
    return merged_champion, merged_candidate


# ---------------------------------------------------------------------------------------------------- main
def describe(setup: Setup, starts: list[Start], seeds: list[int], strategies: list[str]) -> str:
    """Return the lines that say what was simulated, on what, and how to read it."""
    plan, c = setup.plan, setup.plan.cohort
    if plan.task == "vessel_type":
        cohort = (
            f"{c.n} patients x {c.runs_per_patient} XA runs, {c.size}x{c.size}, {c.frames[0]}-{c.frames[1]} frames, "
            f"neither rate {c.neither_rate}"
        )
    elif plan.task == "oct_calcium":
        cohort = f"{c.n} pullbacks x {c.frames[0]} frames, {c.size}x{c.size}"
    else:
        cohort = f"{c.n} patients, rest + stress polar maps {c.size}x{c.size} (PNG + manifest)"
    splits = "; ".join(
        f"seed {seed}: train pool {s.splits['train']}, validation {s.splits['validation']}, test {s.splits['test']}"
        for seed, s in zip(seeds, starts, strict=True)
    )
    trivial = ", ".join(f"{s.trivial:.3f}" for s in starts)
    constant = {"vessel_type": "the most common class", "oct_calcium": "an empty mask", "spect_territory": "a constant"}
    notes = f"a model predicting {constant[plan.task]} everywhere scores test {METRIC_NAMES[plan.task]} {trivial}"
    if plan.task == "oct_calcium":
        notes += "; labels used include the frames the annotator excluded (guide catheter, blood): they train nothing"
    if "least_confidence" in strategies and plan.task != "vessel_type":
        notes += (
            f"; least_confidence ranks by the item's overall uncertainty (the entropy score) because "
            f"{plan.task} scores carry no least_confidence value, so it orders the queue as entropy does"
        )
    return (
        f"cohort: {cohort}; seeds {', '.join(map(str, seeds))}\n"
        f"items by patient split (test locked; test + validation labelled from the truth first): {splits}\n"
        f"each round: {plan.step} items leased with item_next and labelled from the truth, then training_request "
        f"+ job_claim/job_run on an InlineExecutor (score + promote + re-rank when the candidate wins); "
        f"budget {plan.budget} labels; queue_batch_size {plan.step}\n"
        f"training_hparams {plan.hparams}\n"
        f"strategies: {', '.join(strategies)}\n"
        f"target: {METRIC_NAMES[plan.task]} >= {setup.target:.2f}, {setup.target_note}\n"
        f"note: {notes}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(SETUPS), required=True)
    parser.add_argument("--quick", action="store_true", help="a few-minute smoke run (small cohort, two rounds)")
    parser.add_argument("--seeds", type=int, help="how many cohorts/seeds to average (default per task)")
    parser.add_argument("--strategies", help="comma-separated subset (default: every strategy the task supports)")
    parser.add_argument("--step", type=int, help="labels per round")
    parser.add_argument("--budget", type=int, help="labels in all")
    parser.add_argument("--epochs", type=int, help="training epochs per round")
    parser.add_argument("--keep", type=Path, help="work here and keep the databases (default: a temporary folder)")
    parser.add_argument("--save", action="store_true", help="write the table and chart under benchmarks/results/")
    args = parser.parse_args()

    setup = quick(SETUPS[args.task]) if args.quick else SETUPS[args.task]
    plan = setup.plan
    if args.step or args.budget or args.epochs:
        hparams = {**plan.hparams, **({"epochs": args.epochs} if args.epochs else {})}
        plan = replace(plan, step=args.step or plan.step, budget=args.budget or plan.budget, hparams=hparams)
        setup = replace(setup, plan=plan)
    seeds = list(range(args.seeds or setup.seeds))
    strategies = args.strategies.split(",") if args.strategies else task_strategies(plan.task, plan.hparams)
    metric = METRIC_NAMES[plan.task]
    torch.set_num_threads(2)
    load_before = os.getloadavg()
    started = time.monotonic()
    root = args.keep or Path(tempfile.mkdtemp(prefix="lumen-al-sim-"))
    results: dict[str, list[list[Round]]] = {name: [] for name in strategies}
    starts: list[Start] = []
    seconds: dict[str, float] = {}
    try:
        django_setup(root)
        empty = state_save(root, "empty")
        for seed in seeds:
            state_restore(root, empty)
            t0 = time.monotonic()
            start = start_build(plan, root, seed)
            starts.append(start)
            seconds["setup"] = seconds.get("setup", 0.0) + time.monotonic() - t0
            steps = ", ".join(f"{step} {value:.0f} s" for step, value in start.seconds.items())
            print(f"seed {seed}: items by split {start.splits} ({steps})", flush=True)
            for name in strategies:
                t0 = time.monotonic()

                def progress(r: Round, name: str = name, seed: int = seed) -> None:
                    print(
                        f"  seed {seed} {name:>17}: {r.labels:4d} labels  v{r.version:<3} {r.family:<12} "
                        f"candidate {_num(r.candidate)}  champion {_num(r.champion)}"
                        f"{'  promoted' if r.promoted else ''}  (train {r.train_seconds:.0f} s, "
                        f"score {r.score_seconds:.0f} s)",
                        flush=True,
                    )

                results[name].append(run_loop(plan, root, start, name, report=progress))
                seconds[name] = seconds.get(name, 0.0) + time.monotonic() - t0
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    total = time.monotonic() - started
    load_after = os.getloadavg()

    labels = [r.labels for r in results[strategies[0]][0]]
    labels = labels[: min(len(run) for runs in results.values() for run in runs)]
    body, champion, candidate = report_tables(results, labels, setup.target, metric)
    timing = ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items())
    text = (
        f"Active-learning simulation: {plan.task} through the platform's loop "
        f"({'--quick' if args.quick else 'default settings'})\n"
        f"{describe(setup, starts, seeds, strategies)}\n"
        f"{machine_line()} · torch {torch.__version__} on CPU, {torch.get_num_threads()} threads · "
        f"load average {load_before[0]:.1f} at start, {load_after[0]:.1f} at end\n\n"
        f"{body}\n\n"
        f"wall time: {timing}; total {total:.0f} s"
    )
    print(text)
    if args.save:
        name = f"al_simulation_{plan.task}"
        print(f"\nsaved to {save(name + '.txt', text)}")
        champion, candidate = merge_identical(champion, candidate)
        chart = line_chart(
            RESULTS / f"{name}.png",
            title=f"{plan.task}: test {metric} vs labels used ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}, mean)",
            panels=[
                Panel(
                    "champion (promoted only when better on the test set)",
                    {n: list(zip(labels, c, strict=True)) for n, c in champion.items()},
                ),
                Panel("latest candidate", {n: list(zip(labels, c, strict=True)) for n, c in candidate.items()}),
            ],
            x_label="labels used (training pool)",
            y_label=f"test {metric}",
            target=setup.target,
            target_label=f"target {setup.target:.2f}",
        )
        print(f"saved to {chart}")


if __name__ == "__main__":
    main()
