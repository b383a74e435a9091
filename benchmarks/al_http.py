"""Vessel-type active learning as a user meets it: the real server, the HTTP API, a cohort nobody tuned on.

    python -m benchmarks.al_http [--save] [--seeds N] [--step 40] [--budget 160] [--quick]
        [--size 256] [--frames 30,90] [--patients 40] [--runs 5] [--fresh-runs 100] [--cohort-knobs JSON]

Per seed, in a throw-away folder: `manage.py migrate`, then the server exactly as `make demo` runs it (uvicorn on
127.0.0.1 and the orchestrator on a local Ray, SQLite and in-memory defaults; with DATABASE_URL set to a
PostgreSQL server, each seed gets a new database of its own there, dropped afterwards),
each in its own process. This process is the client, over HTTP only (token auth, `requests`):
1. a lead creates a vessel-type project with default settings (retraining only on "Retrain now": the rounds are
   this script's), adds an annotator, and uploads a generated LCA/RCA cohort (default 200 runs of 40 patients,
   256², 30–90 frames, its own seed);
2. the annotator takes items with `POST /api/projects/<slug>/next/`, opens each item's workspace, and answers
   from the generator's truth with `POST /api/labels/`; the locked test items come through the same hand-outs
   (their own random share, the first ones first), so they count as labels here;
3. after every `step` labels the lead presses "Retrain now" (`POST …/train/`) and the script waits for the jobs;
4. when the budget is spent, the lead uploads a second cohort of other patients (default 100 runs, another seed),
   as the issue's protocol did: it is never labelled, never handed out and never ordered by a model. Every model
   version a round names (its candidate, the champion, the version it was compared with) is asked to score it
   (`POST /api/model-versions/<id>/score/`, which never promotes).
Then, for each round, on the never-labelled cohort: accuracy of the champion, of the latest (unselected)
candidate, and of scikit-learn's L2 logistic regression on the two C-arm angles with quadratic terms trained by
the script on the same labels (the angles come from the workspace), once on all of them and once without the
locked test items, which count as labels but never train the platform's model; the champion's ECE, and whether
the keep/replace decision is contradicted on the never-labelled cohort beyond its 90 % paired-bootstrap interval
(the wider of resampling runs and resampling patients, as the platform decides). Also the champion's accuracy on
the first cohort's still-unlabelled runs, read at the round.
The runs are matched to their truth by their C-arm angles, which the workspace shows to annotators.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests

from benchmarks.common import SYNTHETIC_PSEUDONYM_KEY, angle_regression_probabilities, machine_line, save, table

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("LCA", "RCA", "neither")
PASSWORD = "benchmark-password-1"


# ---------------------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """uvicorn and the orchestrator, each in its own process, over one throw-away database and media folder."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webapp.settings.base",
            "DATABASE_URL": database_url,
            "LUMEN_MEDIA_ROOT": str(root / "media"),
            "LUMEN_LOG_LEVEL": "WARNING",
            "LUMEN_PSEUDONYM_KEY": SYNTHETIC_PSEUDONYM_KEY,  # the same splits on every machine
            "RAY_AUTH_MODE": "disabled",
        }
        self.env.pop("REDIS_URL", None)  # the embedded defaults, as `make demo`
        self.processes: list[subprocess.Popen] = []

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self) -> None:
        self.manage("migrate", "--noinput", "-v0")
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; from django.contrib.auth.models import Permission\n"
            "users = get_user_model()\n"
            f"lead = users.objects.create_user('lead', password='{PASSWORD}')\n"
            f"users.objects.create_user('annotator', password='{PASSWORD}')\n"
            "lead.user_permissions.add(Permission.objects.get(codename='add_project'))",
        )
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        uvicorn = [str(Path(sys.executable).with_name("uvicorn")), "--ws", "websockets-sansio", "--lifespan", "off"]
        uvicorn += ["--host", "127.0.0.1", "--port", str(self.port)]
        for name, command in (
            ("uvicorn", [*uvicorn, "webapp.asgi:application"]),
            ("orchestrator", [sys.executable, "manage.py", "orchestrator"]),
        ):
            out = (logs / f"{name}.log").open("w")
            self.processes.append(
                subprocess.Popen(command, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT)
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/api/", timeout=10)
                return
            except requests.RequestException:  # not listening yet, or still starting up
                time.sleep(0.3)
        raise RuntimeError("uvicorn did not answer within 60 s")

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of each server process's log (printed when a run fails)."""
        out = []
        for path in sorted((self.root / "logs").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


# ---------------------------------------------------------------------------------------------------- client
class Client:
    """One user's token-authenticated HTTP session; every call checks its status and names what failed."""

    def __init__(self, url: str, username: str) -> None:
        self.url = url
        self.session = requests.Session()
        token = self.session.post(f"{url}/api/auth/token/", data={"username": username, "password": PASSWORD})
        token.raise_for_status()
        self.session.headers["Authorization"] = f"Token {token.json()['token']}"

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 201, 202), **kwargs) -> dict:
        response = self.session.request(method, path if path.startswith("http") else self.url + path, **kwargs)
        if response.status_code not in expect:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else {}

    def every(self, path: str) -> list[dict]:
        """Return every row of a paginated list."""
        rows, page = [], self.call("GET", path + ("&" if "?" in path else "?") + "limit=500")
        while True:
            rows += page["results"]
            if not page.get("next"):
                return rows
            page = self.call("GET", page["next"])


# ---------------------------------------------------------------------------------------------------- cohorts
def angle_key(primary: float, secondary: float) -> tuple[float, float]:
    return round(float(primary), 1), round(float(secondary), 1)


@dataclass
class Cohort:
    folder: Path
    truth: dict[tuple[float, float], str]  # angle key -> vessel
    files: list[Path]
    patient: dict[tuple[float, float], str]  # angle key -> the generator's patient (runs of one move together)


def cohort_make(
    folder: Path, *, patients: int, runs: int, size: int, frames: tuple[int, int], seed: int, knobs: dict
) -> Cohort:
    from learning.cohorts import generate_xa_cohort

    truths = generate_xa_cohort(
        folder, n_patients=patients, runs_per_patient=runs, frames=frames, size=size, seed=seed, **knobs
    )
    truth, patient = {}, {}
    for t in truths:
        key = angle_key(t.primary_angle, t.secondary_angle)
        if key in truth:
            raise RuntimeError(f"two runs share the C-arm angles {key}: pick another seed")
        truth[key] = t.vessel
        patient[key] = t.patient_id
    return Cohort(folder, truth, [t.path for t in truths], patient)


def upload(lead: Client, slug: str, files: list[Path], batch: int = 20) -> None:
    for start in range(0, len(files), batch):
        chunk = files[start : start + batch]
        handles = [("files", (path.name, path.open("rb"), "application/dicom")) for path in chunk]
        try:
            job = lead.call("POST", f"/api/projects/{slug}/imports/", files=handles)
        finally:
            for _, (_, handle, _) in handles:
                handle.close()
        # The upload answers with a queued import job; the orchestrator's import worker stores the files.
        deadline = time.monotonic() + 600
        job_url = f"/api/projects/{slug}/imports/{job['id']}/"
        while (body := lead.call("GET", job_url))["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"import job {job['id']} did not finish within 10 minutes")
            time.sleep(0.2)
        body = body.get("result", {})
        missing = [f for f in body.get("files", []) if f.get("outcome") != "stored"]
        if missing or len(body.get("files", [])) != len(chunk):
            raise RuntimeError(f"{len(missing)} of {len(chunk)} files not stored: {json.dumps(missing)[:2000]}")


# ---------------------------------------------------------------------------------------------------- one seed
@dataclass
class Round:
    labels: int
    champion: str = "-"
    decision: str = ""
    champion_fresh: float | None = None
    candidate_fresh: float | None = None
    baseline_fresh: float | None = None
    baseline_train_fresh: float | None = None  # trained on the labels the platform trains on (test items left out)
    champion_unlabelled: float | None = None
    champion_ece: float | None = None
    contradicted: bool | None = None
    promoted: bool = False
    rule: str = ""


@dataclass
class Named:
    """What a round names, kept until the never-labelled cohort is scored after the labelling."""

    latest: dict
    champion: dict | None
    other: dict | None  # the version the latest was compared with, when it was judged against one
    labelled: dict[int, str]
    held_out: set[int]


@dataclass
class Run:
    seed: int
    rounds: list[Round] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def wait_for_jobs(lead: Client, slug: str, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = lead.every(f"/api/jobs/?project={slug}")
        active = [j for j in jobs if j["status"] in ("queued", "running")]
        failed = [j for j in jobs if j["status"] == "failed" and j["kind"] in ("train", "score")]
        if failed:
            raise RuntimeError(f"job {failed[0]['id']} failed: {failed[0].get('error')}")
        if not active:
            return
        time.sleep(1.0)
    raise RuntimeError("jobs did not finish in time")


def wait_for_ranking(lead: Client, slug: str, timeout: float = 300) -> None:
    """Wait until the orchestrator has ranked every imported item (a new project's cold start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = lead.call("GET", f"/api/projects/{slug}/queue/")
        if queue.get("ranked_at") and not queue.get("unranked_items"):
            return
        time.sleep(1.0)
    raise RuntimeError("the queue was not ranked in time")


def predictions_of(lead: Client, version_id: int) -> dict[int, dict]:
    return {row["item"]: row["output"] for row in lead.every(f"/api/predictions/?model_version={version_id}")}


def accuracy(outputs: dict[int, dict], truth: dict[int, str]) -> float | None:
    pairs = [(outputs[i]["vessel"], truth[i]) for i in truth if i in outputs]
    return float(np.mean([a == b for a, b in pairs])) if pairs else None


def expected_calibration_error(outputs: dict[int, dict], truth: dict[int, str]) -> float | None:
    from learning.metrics import expected_calibration_error as ece

    items = [i for i in truth if i in outputs]
    if not items:
        return None
    probs = np.array([[outputs[i]["probabilities"][c] for c in CLASSES] for i in items])
    return ece(np.array([CLASSES.index(truth[i]) for i in items]), probs)


def contradicted(
    candidate: dict[int, dict], other: dict[int, dict], truth: dict[int, str], promoted: bool, patient: dict[int, str]
) -> bool:
    """Whether the never-labelled runs say the opposite of the decision, beyond a 90 % paired interval (the
    wider of resampling runs and resampling patients, as the platform's own decision)."""
    from learning.metrics import paired_bootstrap

    items = [i for i in truth if i in candidate and i in other]
    truth_rows = np.array([truth[i] for i in items])
    mine = np.array([candidate[i]["vessel"] for i in items])
    theirs = np.array([other[i]["vessel"] for i in items])
    _, low, high = paired_bootstrap(
        lambda t, p: float(np.mean(t == p)),
        (truth_rows, mine),
        (truth_rows, theirs),
        alpha=0.1,
        groups=np.array([patient[i] for i in items]),
    )
    return bool(high < 0) if promoted else bool(low > 0)


def angle_baseline(train: list[tuple[tuple[float, float], str]], test: dict[int, tuple[float, float]]) -> dict:
    """Return the outside angle regression's class for each test run, trained on the labelled runs' angles."""
    ids = list(test)
    probs = angle_regression_probabilities(
        [angles for angles, _ in train], [CLASSES.index(v) for _, v in train], [test[i] for i in ids], len(CLASSES)
    )
    return {i: {"vessel": CLASSES[int(p.argmax())]} for i, p in zip(ids, probs, strict=True)}


def fresh_database(root: Path, seed: int) -> tuple[str, Callable[[], None]]:
    """Return a database URL of our own for this seed, and how to drop it: on the PostgreSQL server of
    DATABASE_URL when that is set (a new database beside it), else a SQLite file under root."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        return f"sqlite:///{root / 'lumen.sqlite3'}", lambda: None
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"lumen_al_http_{os.getpid()}_{seed}"
    admin = urlunsplit(urlsplit(base)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(urlsplit(base)._replace(path=f"/{name}")), drop


def run_seed(args: argparse.Namespace, seed: int, root: Path) -> Run:
    database_url, drop = fresh_database(root, seed)
    try:
        return run_seed_on(args, seed, root, database_url)
    finally:
        drop()


def run_seed_on(args: argparse.Namespace, seed: int, root: Path, database_url: str) -> Run:
    run = Run(seed)
    started = time.monotonic()
    frames = tuple(int(v) for v in args.frames.split(","))
    knobs = json.loads(args.cohort_knobs) if args.cohort_knobs else {}
    first = cohort_make(
        root / "cohort",
        patients=args.patients,
        runs=args.runs,
        size=args.size,
        frames=frames,
        seed=seed + 100,
        knobs=knobs,
    )
    fresh = cohort_make(
        root / "fresh",
        patients=max(args.fresh_runs // args.runs, 1),
        runs=args.runs,
        size=args.size,
        frames=frames,
        seed=seed + 200,
        knobs=knobs,
    )
    run.seconds["generate"] = time.monotonic() - started
    server = Server(root, database_url)
    try:
        server.start()  # inside: processes started before a failure are stopped too
        lead, annotator = Client(server.url, "lead"), Client(server.url, "annotator")
        slug = f"al-http-{seed}"
        lead.call(
            "POST",
            "/api/projects/",
            json={
                "slug": slug,
                "name": f"AL over HTTP, seed {seed}",
                "task_type": "vessel_type",
                "settings": {"retrain_every_n_labels": 0},
            },
        )
        lead.call("POST", f"/api/projects/{slug}/members/", json={"username": "annotator", "role": "annotator"})
        t0 = time.monotonic()
        upload(lead, slug, first.files)
        wait_for_ranking(lead, slug)
        run.seconds["upload + cold start"] = time.monotonic() - t0
        angles, truth, patient = match_truth(lead, slug, first)
        labelled: dict[int, str] = {}
        rounds: list[tuple[Round, Named]] = []
        t0 = time.monotonic()
        while len(labelled) < args.budget:
            target = min(len(labelled) + args.step, args.budget)
            exhausted = False
            while len(labelled) < target:
                handed = annotator.call("POST", f"/api/projects/{slug}/next/")
                item = handed.get("item")
                if item is None:
                    exhausted = True
                    break
                annotator.call("GET", handed["workspace_url"])
                annotator.call(
                    "POST",
                    "/api/labels/",
                    json={"item": item, "payload": {"vessel": truth[item]}, "base_version": None},
                )
                labelled[item] = truth[item]
            lead.call("POST", f"/api/projects/{slug}/train/", json={})
            wait_for_jobs(lead, slug)
            versions = lead.every(f"/api/model-versions/?project={slug}")
            latest = max(versions, key=lambda v: v["number"])
            champion = next((v for v in versions if v["status"] == "champion"), None)
            other = next((v for v in versions if v["number"] == latest["compared_with"]), None)
            result = Round(labels=len(labelled), rule=latest["decision_rule"])
            result.decision = f"v{latest['number']} {latest['family']} {latest['status']}"
            result.promoted = latest["status"] == "champion"
            if champion is not None:
                result.champion = f"v{champion['number']} {champion['family']}"
                unlabelled = {i: v for i, v in truth.items() if i not in labelled}
                result.champion_unlabelled = accuracy(predictions_of(lead, champion["id"]), unlabelled)
            # The locked test items count as labels here but never train the platform's model: the outside
            # regression is also fitted on the labels the platform could train on.
            held_out = {row["id"] for row in lead.every(f"/api/items/?project={slug}") if row["split"] == "test"}
            judged = other if latest["status"] in ("champion", "rejected") else None
            rounds.append((result, Named(latest, champion, judged, dict(labelled), held_out)))
            print(
                f"  seed {seed}: {result.labels:4d} labels  {result.decision:<34} champion {result.champion:<22} "
                f"unlabelled {_num(result.champion_unlabelled)}",
                flush=True,
            )
            if exhausted:
                break
        run.seconds["label + train"] = time.monotonic() - t0
        # The never-labelled cohort arrives after the labelling (as the protocol has it), so it is never
        # handed out, never in the test set's lead and never ranked by a model; every version named above then
        # scores it (scoring never promotes).
        t0 = time.monotonic()
        before = {row["id"] for row in lead.every(f"/api/items/?project={slug}")}
        upload(lead, slug, fresh.files)
        wait_for_jobs(lead, slug)
        fresh_angles, fresh_truth, fresh_patient = match_truth(lead, slug, fresh, skip=before)
        patient.update(fresh_patient)
        named = {v["id"] for _, refs in rounds for v in (refs.latest, refs.champion, refs.other) if v}
        for version_id in sorted(named):
            lead.call("POST", f"/api/model-versions/{version_id}/score/", json={})
        wait_for_jobs(lead, slug)
        outputs = {version_id: predictions_of(lead, version_id) for version_id in named}
        run.seconds["never-labelled cohort: upload + score"] = time.monotonic() - t0
        for result, refs in rounds:
            candidate_out = outputs[refs.latest["id"]]
            result.candidate_fresh = accuracy(candidate_out, fresh_truth)
            if refs.champion is not None:
                champion_out = outputs[refs.champion["id"]]
                result.champion_fresh = accuracy(champion_out, fresh_truth)
                result.champion_ece = expected_calibration_error(champion_out, fresh_truth)
            if refs.other is not None:
                result.contradicted = contradicted(
                    candidate_out,
                    outputs[refs.other["id"]],
                    fresh_truth,
                    promoted=result.promoted,
                    patient=patient,
                )
            labels = refs.labelled
            result.baseline_fresh = accuracy(
                angle_baseline([(angles[i], v) for i, v in labels.items()], fresh_angles), fresh_truth
            )
            result.baseline_train_fresh = accuracy(
                angle_baseline([(angles[i], v) for i, v in labels.items() if i not in refs.held_out], fresh_angles),
                fresh_truth,
            )
            run.rounds.append(result)
            print(
                f"  seed {seed}: {result.labels:4d} labels  fresh: champion {_num(result.champion_fresh)} "
                f"candidate {_num(result.candidate_fresh)} baseline {_num(result.baseline_fresh)}"
                f"{'  CONTRADICTED' if result.contradicted else ''}",
                flush=True,
            )
    except Exception:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.stop()
    return run


def match_truth(
    lead: Client, slug: str, cohort: Cohort, skip: Container[int] = ()
) -> tuple[dict[int, tuple[float, float]], dict[int, str], dict[int, str]]:
    """Match the project's items (but `skip`) to the cohort's truth through what the workspace shows: the C-arm
    angles. Returns each item's angles, vessel and patient."""
    angles: dict[int, tuple[float, float]] = {}
    truth: dict[int, str] = {}
    patient: dict[int, str] = {}
    for row in lead.every(f"/api/items/?project={slug}"):
        if row["id"] in skip:
            continue
        geometry = lead.call("GET", f"/api/items/{row['id']}/workspace/")["item"]["media"]["geometry"]
        key = angle_key(geometry["positioner_primary_angle"], geometry["positioner_secondary_angle"])
        angles[row["id"]], truth[row["id"]], patient[row["id"]] = key, cohort.truth[key], cohort.patient[key]
    if len(truth) != len(cohort.files):
        raise RuntimeError(f"{len(truth)} items matched, {len(cohort.files)} files uploaded")
    return angles, truth, patient


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mean(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def report(runs: list[Run], args: argparse.Namespace) -> str:
    labels = [r.labels for r in runs[0].rounds]
    rows = []
    for k, n in enumerate(labels):
        at = [run.rounds[k] for run in runs if len(run.rounds) > k]
        promoted = [r.contradicted for r in at if r.contradicted is not None and r.promoted]
        kept = [r.contradicted for r in at if r.contradicted is not None and not r.promoted]
        rows.append(
            [
                n,
                _num(_mean([r.champion_unlabelled for r in at])),
                _num(_mean([r.champion_fresh for r in at])),
                _num(_mean([r.candidate_fresh for r in at])),
                _num(_mean([r.baseline_fresh for r in at])),
                _num(_mean([r.baseline_train_fresh for r in at])),
                _num(_mean([r.champion_ece for r in at])),
                f"{sum(promoted)} of {len(promoted)} / {sum(kept)} of {len(kept)}",
                " ".join(r.champion.split()[-1] if r.champion != "-" else "-" for r in at),
            ]
        )
    head = [
        "labels",
        "champion, unlabelled runs",
        "champion, never-labelled",
        "latest candidate, never-labelled",
        "angle LR (all labels), never-labelled",
        "angle LR (training labels), never-labelled",
        "champion ECE",
        "contradicted: promotions / rejections",
        "champion family by seed",
    ]
    per_seed = "\n".join(
        f"seed {run.seed}: " + "; ".join(f"{r.labels}: {r.decision} — {r.rule}" for r in run.rounds) for run in runs
    )
    timing = "; ".join(
        f"seed {run.seed}: " + ", ".join(f"{k} {v:.0f} s" for k, v in run.seconds.items()) for run in runs
    )
    return (
        f"Vessel-type active learning through the HTTP API (uvicorn + orchestrator on a local Ray, "
        f"{'PostgreSQL' if os.environ.get('DATABASE_URL') else 'SQLite'}), default project settings\n"
        f"cohort per seed: {args.patients} patients x {args.runs} runs, {args.size}x{args.size}, {args.frames} "
        f"frames, knobs {args.cohort_knobs or '{}'}; never-labelled cohort: {args.fresh_runs} runs of other "
        f"patients (another seed), imported after the labelling and scored by every version a round names; "
        f"seeds {', '.join(str(r.seed) for r in runs)}\n"
        f"each round: {args.step} labels through next (test hand-outs included), Retrain now, wait for the jobs\n"
        f"{machine_line()}\n\n"
        f"Accuracy (mean over seeds)\n"
        + table(head, rows)
        + f"\n\nDecisions and the rule applied\n{per_seed}\n\nwall time: {timing}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--step", type=int, default=40)
    parser.add_argument("--budget", type=int, default=160)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5, help="runs per patient")
    parser.add_argument("--fresh-runs", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", default="30,90", help="run length range, e.g. 30,90")
    parser.add_argument("--cohort-knobs", help="extra generate_xa_cohort arguments as JSON, e.g. '{\"noise\": 2}'")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one seed, small cohorts, two rounds")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temporary folder)")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/<--name>.txt")
    parser.add_argument("--name", default="al_http", help="the results file's name (default al_http)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.patients, args.runs, args.fresh_runs = 1, 12, 4, 24
        args.size, args.frames, args.step, args.budget = 64, "12,20", 12, 24
    runs = []
    for seed in range(args.seeds):
        root = args.keep / f"seed-{seed}" if args.keep else Path(tempfile.mkdtemp(prefix="lumen-al-http-"))
        root.mkdir(parents=True, exist_ok=True)
        try:
            runs.append(run_seed(args, seed, root))
        finally:
            if args.keep is None:
                shutil.rmtree(root, ignore_errors=True)
    text = report(runs, args)
    print(text)
    if args.save and not args.quick:
        print(f"\nsaved to {save(args.name + '.txt', text)}")


if __name__ == "__main__":
    main()
