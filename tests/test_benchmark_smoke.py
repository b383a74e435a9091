"""Small smoke runs of the benchmarks (the full runs stay out of `make test`)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("DATABASE_URL", "")

needs_postgres = pytest.mark.skipif(
    not DATABASE_URL.startswith("postgres"), reason="the HTTP load benchmark needs PostgreSQL (CI sets DATABASE_URL)"
)


def benchmark_run(module: str, *args: str, database: str | None = None, timeout: int = 600) -> str:
    """Run `python -m benchmarks.<module> args`; return its output, failing the test if it failed. A benchmark that
    uses the server's database gets one of its own on PostgreSQL, named from `database` (the tests' own test database
    is in use)."""
    env = dict(os.environ)
    if database is not None and DATABASE_URL.startswith("postgres"):
        name = f"/{database}_{secrets.token_hex(4)}"
        env["DATABASE_URL"] = urlunsplit(urlsplit(DATABASE_URL)._replace(path=name))
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@needs_postgres
def test_http_load_drives_lumen_and_label_studio_from_client_processes():
    """Both production servers, Lumen's and a real Label Studio installed from PyPI, driven phase by phase."""
    url = urlunsplit(urlsplit(DATABASE_URL)._replace(path="/lumen_bench_http_smoke"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.http_load",
            "--sizes",
            "300,600",
            "--clients",
            "3",
            "--seconds",
            "4",
            "--cycles",
            "6",
            "--label-studio",
        ],
        cwd=REPO,
        env={**os.environ, "LUMEN_BENCH_HTTP_URL": url},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"\((\d+) uvicorn worker processes\)", out) and "(0 uvicorn" not in out
    phases_table = out.split("Label Studio / Lumen in the same run", 1)[0]
    rows = [
        line
        for line in phases_table.splitlines()
        if re.match(r"^(300|600)\s{2,}.*client.*\s(Lumen|Label Studio)\s", line)
    ]
    systems = [re.split(r"\s{2,}", row.strip())[2] for row in rows]
    assert systems.count("Lumen") == 8 and systems.count("Label Studio") == 8, out  # four phases per size each
    assert sum("3 clients, 1 s pause, staggered" in row for row in rows) == 4, out
    for row in rows:
        cells = re.split(r"\s{2,}", row.strip())
        cycles, errors, double_leases = int(cells[6]), int(cells[8]), int(cells[9])
        assert cycles > 0 and errors == 0 and double_leases == 0, row
    # The many-client phases' first next of each client (sent at once, or staggered) apart from the rest.
    herd = out.split("Where next's tail comes from", 1)[1].split("\n\n", 2)[1]
    assert len([line for line in herd.splitlines() if re.match(r"^(300|600)\s{2,}", line)]) == 12, herd
    # One ratio row per size and phase, from the same run.
    ratios = out.split("in the same run (next latency", 1)[1].split("\n\n", 2)[1]
    assert len([line for line in ratios.splitlines() if re.match(r"^(300|600)\s{2,}", line)]) == 8, ratios
    # The smallest size again, beside the largest: one client alternating between them, round by round.
    alternation = out.split("The same ratio measured in the same minutes", 1)[1].split("\n\n", 2)[1]
    rounds = [line for line in alternation.splitlines() if re.match(r"^([1-5]|all)\s{2,}", line)]
    assert len(rounds) == 6 and all(float(re.split(r"\s{2,}", r.strip())[3]) > 0 for r in rounds), alternation
    # The plan of every statement on the path is shown; none scans the big tables sequentially.
    plans = out.split("with the scans of its plan (EXPLAIN):", 1)[1]
    assert "Index Scan using" in plans
    assert not re.search(r"Seq Scan on annotation_(item|queueentry|label|assignment|instance)\b", plans), plans
    baseline = out.split("(GET /api/me/, 200 calls)", 1)[1].split("Every statement", 1)[0]
    ratios = [line for line in baseline.splitlines() if re.match(r"^(300|600)\s{2,}", line)]
    assert len(ratios) == 2 and all(float(re.split(r"\s{2,}", r.strip())[4]) > 0 for r in ratios), baseline


def test_ingest_compares_the_import_with_its_floor_and_reports_peak_memory():
    out = benchmark_run("ingest", "--files", "2", "--frames", "20", "--size", "64", database="lumen_bench_ingest_smoke")
    lines = out.splitlines()
    assert "Lumen import, frame cache as jpeg q92 (default)" in out, out
    for fmt in ("webp", "jpeg", "png"):
        floor = next(line for line in lines if line.startswith(f"floor: decode + window + encode as {fmt}"))
        lumen = next(line for line in lines if line.startswith(f"Lumen import, frame cache as {fmt}"))
        cells = re.split(r"\s{2,}", lumen.strip())
        assert float(cells[1]) > 0 and float(re.split(r"\s{2,}", floor.strip())[1]) > 0
        vs_floor, psnr, peak_mb = float(cells[4]), cells[6], float(cells[7])
        assert 0 < vs_floor and peak_mb >= 0, lumen
        # The picture's fidelity: exact for PNG, a lossy codec's typical range otherwise.
        assert psnr == "lossless" if fmt == "png" else 25 < float(psnr) < 60, lumen


def test_interpolation_trains_and_compares_with_the_baselines_and_the_paper():
    out = benchmark_run("interpolation", "--quick", timeout=300)
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines() if re.match(r"^(XA 64²|emri_small)", line)]
    assert [row[1] for row in rows] == ["clips", "triplets", "clips", "triplets"], out
    for row in rows:
        assert int(row[2]) > 0 and all(0 < float(v) < 100 for v in row[4:7]), row
        assert all(0 < float(v) <= 1 for v in row[7:10]), row
    assert re.search(r"seed paper: .*clips\s+34\.251\s+0\.906", out) and "40.523" in out
    assert len(re.findall(r"linear blending on the clips \([+-]\d", out)) == 2, out


def test_cine_open_times_the_workspace_in_chromium():
    """A small run of the cine benchmark: the real workspace opened four ways in headless Chromium, each timed."""
    # On PostgreSQL the run is served by the production server (gunicorn), as the full benchmark is.
    args = ("--frames", "6", "--size", "64", "--repeats", "1")
    out = benchmark_run("cine_open", *args, database="lumen_bench_cine_smoke")
    openings = [
        re.split(r"\s{2,}", line.strip())
        for line in out.splitlines()
        if line.lstrip().startswith(("Lumen workspace, cine tool", "the same, "))
    ]
    assert len(openings) == 4, out
    for row in openings:
        first, every, requests = float(row[1]), float(row[2]), int(row[3])
        assert 0 < first <= every and requests >= 1, row
    assert out.count("Workspace timeline") == 4, out
    shown = re.search(r"Playback after loading, one lap at 1x: (\d+)-(\d+) of (\d+) frames shown", out)
    assert shown and shown.group(3) == "6" and int(shown.group(1)) > 0, out


def table_rows(out: str, title: str, first_cells: tuple[str, ...]) -> dict[str, list[str]]:
    """The rows of the table printed under the line starting with `title`, keyed by their first cell (only the
    rows whose first cell is one of `first_cells`)."""
    block = out.split(title, 1)[1].split("\n\n", 1)[0]
    rows = [re.split(r"\s{2,}", line.strip()) for line in block.splitlines()[1:]]
    return {cells[0]: cells for cells in rows if cells[0] in first_cells}


def fraction(cell: str) -> float | None:
    """A table cell holding a metric in [0, 1], or '-' (none yet)."""
    if cell == "-":
        return None
    value = float(cell)
    assert 0.0 <= value <= 1.0, cell
    return value


@pytest.mark.parametrize(
    "task, extra",
    [
        ("vessel_type", ()),
        # The U-Net's floor of optimiser steps is what makes the full run slow: a smoke run needs a few.
        ("oct_calcium", ("--hparams", '{"min_steps": 20}')),
        ("spect_territory", ()),
    ],
)
def test_al_simulation_runs_the_loop_and_judges_every_decision(task, extra):
    """Two strategies through the platform's loop: each round's champion and candidate on the test set and on the
    never-labelled cohort, the baseline on the same labels, and every keep/replace decision checked."""
    strategies = ("random", "entropy")
    # It works on SQLite files of its own (benchmarks.al_loop.django_setup), whatever DATABASE_URL says.
    out = benchmark_run("al_simulation", "--task", task, "--quick", "--strategies", ",".join(strategies), *extra)
    assert f"Active-learning simulation: {task} through the platform's loop (--quick)" in out, out
    candidates = table_rows(out, "Latest candidate's test", strategies)
    assert set(candidates) == set(strategies), out
    for cells in candidates.values():
        assert fraction(cells[1]) is not None and fraction(cells[2]) is not None, cells  # a candidate every round
    baseline = table_rows(out, "Baseline trained on the same human labels", strategies)
    assert all(fraction(cells[1]) is not None for cells in baseline.values()), baseline
    decisions = table_rows(out, "Keep/replace decisions the never-labelled cohort contradicts", strategies)
    assert set(decisions) == set(strategies), out
    for cells in decisions.values():
        promoted, rejected = (re.fullmatch(r"(\d+) of (\d+)", cell) for cell in cells[1:3])
        assert promoted and rejected, cells
        assert int(promoted.group(1)) <= int(promoted.group(2)) and int(rejected.group(1)) <= int(rejected.group(2))
        assert int(promoted.group(2)) + int(rejected.group(2)) == 2, cells  # one decision per round, two rounds
        assert re.match(r"\d+", cells[3]) and re.match(r"\d+", cells[4]), cells  # labels to the target, censored
    assert re.search(r"wall time: setup \d+ s, random \d+ s, entropy \d+ s; total \d+ s", out), out


@needs_postgres
def test_al_http_labels_through_the_api_and_scores_the_never_labelled_runs():
    """The served platform (uvicorn, the orchestrator on Ray, PostgreSQL) driven over HTTP for two rounds."""
    out = benchmark_run("al_http", "--quick", database="lumen_bench_al_http_smoke")
    accuracy = table_rows(out, "Accuracy (mean over seeds)", ("12", "24"))
    assert set(accuracy) == {"12", "24"}, out
    for cells in accuracy.values():
        assert fraction(cells[3]) is not None, cells  # the round's candidate scored the never-labelled runs
        assert fraction(cells[4]) is not None and fraction(cells[5]) is not None, cells  # the angle regressions
        assert re.fullmatch(r"\d+ of \d+ / \d+ of \d+", cells[7]), cells
    decisions = out.split("Decisions and the rule applied", 1)[1]
    assert re.search(r"seed 0: 12: v1 \w+ (champion|rejected) — .+; 24: v2 \w+ (champion|rejected) — ", decisions)
    assert re.search(r"wall time: seed 0: generate \d+ s, upload \+ cold start \d+ s", out), out


@needs_postgres
def test_queue_benchmark_leases_without_double_or_lost_items():
    out = benchmark_run("queue", "--quick", database="lumen_bench_queue_smoke")
    timings = table_rows(out, "items  clients  leases", ("10000",))
    assert timings, out
    cells = table_rows(out, "items  COPY s", ("10000",))["10000"]
    assigned, labelled = int(cells[5]), int(cells[6])
    double, lost, stale, errors = (int(v) for v in cells[8:12])
    assert assigned > 0 and 0 < labelled <= assigned and (double, lost, stale, errors) == (0, 0, 0, 0), cells
    rerank = table_rows(
        out, "method", ("queue_rerank end to end (read scores, entropy, write generation, switch, drop old)",)
    )
    assert rerank and float(next(iter(rerank.values()))[3]) > 0, out


def test_scoring_benchmark_times_every_task_model():
    out = benchmark_run("scoring", "--quick")
    rows = [
        re.split(r"\s{2,}", line.strip())
        for line in out.splitlines()
        if re.match(r"^(vessel_type|oct_calcium|spect_territory)\s{2,}\S+\s{2,}\d", line)
    ]
    assert [(cells[0], cells[1]) for cells in rows] == [
        ("vessel_type", "r2plus1d"),
        ("vessel_type", "metadata_mlp"),
        ("oct_calcium", "unet"),
        ("spect_territory", "polar_cnn"),
    ], out
    for cells in rows:
        assert int(cells[2]) > 0 and all(float(v) > 0 for v in cells[3:6]), cells  # items/s three ways


def test_ray_scaling_benchmark_scores_and_trains_on_a_multi_node_cluster():
    out = benchmark_run("ray_scaling", "--quick", "--repeats", "1")
    scoring = table_rows(out, "scoring  ", ("Ray, 1 worker", "Ray, 2 workers", "Ray, 4 workers"))
    assert set(scoring) == {"Ray, 1 worker", "Ray, 2 workers", "Ray, 4 workers"}, out
    assert all(float(cells[1]) > 0 and float(cells[2]) > 0 for cells in scoring.values()), scoring
    training = table_rows(
        out, "training (same request)", ("Ray task, 1 worker", "Ray Train, 2 workers (DDP, epoch checkpoints)")
    )
    assert len(training) == 2 and all(float(cells[1]) > 0 for cells in training.values()), out


def test_vessel_baseline_tests_the_three_models_on_the_same_runs():
    args = ("--patients", "12", "--runs-per-patient", "3", "--size", "64", "--frames", "8", "12")
    out = benchmark_run(
        "vessel_baseline",
        *args,
        "--epochs",
        "2",
        "--model-size",
        "32",
        "--width",
        "4",
        database="lumen_bench_vessel_smoke",
    )
    models = ("metadata_mlp (4 C-arm fields)", "r2plus1d (pixels)", "contrast_logreg (angles + contrast HOG)")
    rows = table_rows(out, "model  ", models)
    assert set(rows) == set(models), out
    for cells in rows.values():
        f1, low, high = (float(v) for v in re.fullmatch(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", cells[2]).groups())
        assert 0 <= low <= f1 <= high <= 1, cells
    assert re.search(r"runs by patient: train \d+ .*; validation \d+ .*; test \d+ ", out), out
