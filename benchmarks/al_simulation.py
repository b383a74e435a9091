"""Active learning against random, through the platform's real loop, on synthetic cohorts with known truth.

    python -m benchmarks.al_simulation --task vessel_type|oct_calcium|spect_territory [--save] [--quick]
        [--seeds N] [--strategies a,b] [--step N] [--budget N] [--epochs N]

Per seed, a throw-away SQLite database and media folder are set up (`benchmarks.al_loop`), a synthetic cohort
is generated and imported with the platform's import service, the split is fixed by patient and the test set
locked, and a lead labels the locked test items from the truth, outside the label budget (the platform hands
test items out at their own random share; here they are labelled up front). Then, for every acquisition
strategy the task supports (random included), that starting state is restored and the loop runs: a simulated
annotator leases `step` items with `item_next` and answers each from the generator's truth with `label_submit`
(vessel: the true class; OCT: the true mask, or "excluded" for guide-catheter and blood frames; SPECT: the true
stress and rest segment scores); validation items come through the queue like training items and count as
labels. A training is queued with `training_request`, and the jobs are claimed and run inline: the training,
then, if the candidate beats the trivial baseline and the champion on the locked test set beyond noise (paired
bootstrap), the scoring that promotes it and re-ranks the queue. Until the label budget is spent. Every
strategy starts from the same state with the same seed, so only the strategy differs.

A second cohort per seed (another generator seed, and knobs the settings were not tuned on) is generated and
never imported or labelled: every champion and candidate is scored on it, with a baseline trained on the same
human labels (vessel: scikit-learn's logistic regression on the two C-arm angles with quadratic terms; OCT and
SPECT: the empty mask and the constant score), and every keep/replace decision is checked against it.

Reported per strategy (mean over seeds): the champion's and the latest (unselected) candidate's test metric
after each round, the same on the never-labelled cohort with the baseline and the champion's ECE, the
decisions the never-labelled cohort contradicts beyond its 90 % interval, and the labels needed to reach the
task's target with a bootstrap interval over seeds. With `--save`: benchmarks/results/al_simulation_<task>.txt
and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.al_chart import Panel, line_chart
from benchmarks.al_loop import (
    Cohort,
    Plan,
    Round,
    Start,
    django_setup,
    start_build,
    state_restore,
    state_save,
)
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
            # Two classes (LCA / RCA): the goals are stated for them.
            cohort=Cohort(n=60, size=64, frames=(16, 24), runs_per_patient=4, neither_rate=0.0),
            # The platform's defaults: the contrast-image regression (the video networks join at 300 labels).
            # Rounds of 10 labels, so that labels-to-target resolves below 40.
            hparams={},
            step=10,
            budget=160,
            test_fraction=0.2,
            validation_fraction=0.15,
            # Never labelled, and generated with knobs the settings were not tuned on: another seed, larger
            # frames, other run lengths, three runs per patient.
            fresh=Cohort(n=35, size=96, frames=(20, 32), runs_per_patient=3, neither_rate=0.0),
        ),
        seeds=5,
        target=0.90,
        target_note="the issue's goal: labels to 0.90 at most half of random's; >= 0.95 accuracy by 160 labels",
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
            fresh=Cohort(n=12, size=64, frames=(12, 12)),
        ),
        seeds=5,
        target=0.65,
        target_note="the goal: Dice >= 0.65 with at most half of random's labels, always above the empty mask",
    ),
    "spect_territory": Setup(
        plan=Plan(
            task="spect_territory",
            cohort=Cohort(n=500, size=64),
            hparams={"size": 64, "width": 16, "epochs": 20, "patience": 0, "learning_rate": 3e-3},
            step=25,
            budget=150,
            test_fraction=0.2,
            validation_fraction=0.1,
            fresh=Cohort(n=150, size=80),
        ),
        seeds=5,
        target=0.75,
        target_note=(
            "the cohort is hard by default (weak and faint defects, attenuation artefacts, misregistration): "
            "the seed paper's best per-patient AUC was 0.77 against ICA, 0.83 against the expert read"
        ),
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


def labels_to_ci(runs: list[list[Round]], labels: list[int], target: float, field: str) -> str:
    """Return the mean labels-to-target over seeds with a 90 % bootstrap interval (seeds that never reach
    the target count as one round past the budget, and are said)."""
    step = labels[1] - labels[0] if len(labels) > 1 else labels[0]
    per_seed = [labels_to([getattr(r, field) for r in run[: len(labels)]], labels, target) for run in runs]
    missing = sum(v is None for v in per_seed)
    values = np.array([v if v is not None else labels[-1] + step for v in per_seed], dtype=float)
    if len(values) > 1:
        rng = np.random.default_rng(0)
        means = [rng.choice(values, len(values)).mean() for _ in range(2000)]
        low, high = np.quantile(means, [0.05, 0.95])
        interval = f" [{low:.0f}-{high:.0f}]"
    else:
        interval = ""
    note = f", {missing} of {len(values)} seeds not reached" if missing else ""
    return f"{values.mean():.0f}{interval}{note}"


def fresh_tables(results: dict[str, list[list[Round]]], labels: list[int], target: float, metric: str) -> str:
    """Return the never-labelled cohort's tables: champion, candidate, baseline, ECE, contradicted decisions."""
    rounds = len(labels)
    if all(
        r.champion_fresh is None and r.candidate_fresh is None for runs in results.values() for run in runs for r in run
    ):
        return ""
    sections = []
    for field, title in (
        ("champion_fresh", f"Champion's {metric} on the never-labelled cohort"),
        ("candidate_fresh", f"Latest candidate's {metric} on the never-labelled cohort (unselected)"),
        ("baseline_fresh", f"Baseline trained on the same human labels, {metric} on the never-labelled cohort"),
        ("baseline_test", f"The same baseline's test {metric}"),
        ("champion_ece", "Champion's expected calibration error (10 bins) on the never-labelled cohort"),
    ):
        curves = {name: mean_curve(runs, field)[:rounds] for name, runs in results.items()}
        if all(v is None for curve in curves.values() for v in curve):
            continue
        rows = [[name, *map(_num, curve)] for name, curve in curves.items()]
        sections.append(
            f"{title} (mean over seeds; '-' where a seed has none yet).\n"
            + table(["strategy", *[str(n) for n in labels]], rows)
        )
    rows = []
    for name, runs in results.items():
        decided = [(r.promoted, r.contradicted) for run in runs for r in run[:rounds] if r.contradicted is not None]
        promoted = [c for p, c in decided if p]
        kept = [c for p, c in decided if not p]
        rows.append(
            [
                name,
                f"{sum(promoted)} of {len(promoted)}",
                f"{sum(kept)} of {len(kept)}",
                labels_to_ci(runs, labels, target, "champion"),
                labels_to_ci(runs, labels, target, "champion_fresh"),
            ]
        )
    sections.append(
        "Keep/replace decisions the never-labelled cohort contradicts beyond its 90 % paired-bootstrap interval "
        "(the wider of resampling items and resampling patients, as the platform decides) "
        "(a promotion it finds worse than what it replaced; a rejection it finds better), "
        f"and labels to {metric} {target:.2f} (mean over seeds, 90 % bootstrap interval over seeds).\n"
        + table(
            [
                "strategy",
                "promotions contradicted",
                "rejections contradicted",
                "labels to target (test)",
                "labels to target (never-labelled)",
            ],
            rows,
        )
    )
    return "\n\n".join(sections)


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
        f"items by patient split (test locked and labelled from the truth outside the budget; validation "
        f"items come through the queue and count as labels): {splits}\n"
        f"{fresh_line(plan)}"
        f"each round: {plan.step} items leased with item_next and labelled from the truth, then training_request "
        f"+ job_claim/job_run on an InlineExecutor (score + promote + re-rank when the candidate wins); "
        f"budget {plan.budget} labels; queue_batch_size {plan.step}\n"
        f"training_hparams {plan.hparams}; family {plan.family or 'chosen by the task'}\n"
        f"{pretrain_line(plan, starts)}"
        f"strategies: {', '.join(strategies)}\n"
        f"target: {METRIC_NAMES[plan.task]} >= {setup.target:.2f}, {setup.target_note}\n"
        f"note: {notes}"
    )


def pretrain_line(plan: Plan, starts: list[Start]) -> str:
    if plan.pretrain is None:
        return "video networks start from random weights (no interpolation pretraining)\n"
    took = ", ".join(f"{s.seconds.get('pretrain interpolation', 0.0):.0f} s" for s in starts)
    return (
        f"interpolation pretraining: before any label, the project's frame-interpolation job trained on its "
        f"imported runs (test patients held out) with {plan.pretrain} ({took}), and every video network "
        f"started from its encoder\n"
    )


def fresh_line(plan: Plan) -> str:
    c = plan.fresh
    if c is None:
        return ""
    what = {
        "vessel_type": f"{c.n} patients x {c.runs_per_patient} runs, {c.size}x{c.size}, {c.frames[0]}-{c.frames[1]} "
        f"frames, neither rate {c.neither_rate}",
        "oct_calcium": f"{c.n} pullbacks x {c.frames[0]} frames, {c.size}x{c.size}",
        "spect_territory": f"{c.n} patients, polar maps {c.size}x{c.size}",
    }[plan.task]
    return f"never-labelled cohort (seed + 1000, never imported): {what}\n"


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
    parser.add_argument("--hparams", type=json.loads, help="training hyper-parameters (JSON) over the task's plan")
    parser.add_argument(
        "--pretrain-interpolation",
        type=json.loads,
        metavar="JSON",
        help="vessel type: train the project's frame-interpolation model on its imported runs first (these "
        "interpolation parameters, e.g. '{\"steps\": 300}') and start every video network from its encoder",
    )
    parser.add_argument("--family", help="train this model family every round (default: the task's choice)")
    parser.add_argument("--name", default="", help="a suffix for the saved result files")
    args = parser.parse_args()

    setup = quick(SETUPS[args.task]) if args.quick else SETUPS[args.task]
    plan = setup.plan
    if args.step or args.budget or args.epochs:
        hparams = {**plan.hparams, **({"epochs": args.epochs} if args.epochs else {})}
        plan = replace(plan, step=args.step or plan.step, budget=args.budget or plan.budget, hparams=hparams)
        setup = replace(setup, plan=plan)
    if args.hparams or args.pretrain_interpolation is not None or args.family:
        plan = replace(
            plan,
            hparams={**plan.hparams, **(args.hparams or {})},
            pretrain=args.pretrain_interpolation,
            family=args.family,
        )
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
                        f"candidate {_num(r.candidate)}  champion {_num(r.champion)}  "
                        f"fresh: champion {_num(r.champion_fresh)} candidate {_num(r.candidate_fresh)} "
                        f"baseline {_num(r.baseline_fresh)}{'  CONTRADICTED' if r.contradicted else ''}"
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
    fresh = fresh_tables(results, labels, setup.target, metric)
    if fresh:
        body += "\n\n" + fresh
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
        name = f"al_simulation_{plan.task}{args.name}"
        print(f"\nsaved to {save(name + '.txt', text)}")
        champion, candidate = merge_identical(champion, candidate)
        chart = line_chart(
            RESULTS / f"{name}.png",
            title=f"{plan.task}: test {metric} vs labels used ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}, mean)",
            panels=[
                Panel(
                    "champion (promoted only when better beyond noise on the locked test set)",
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
