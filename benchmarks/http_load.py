"""The annotator's hot path over HTTP, as annotators meet it: the production server, clients in their own processes.

    python -m benchmarks.http_load [--sizes 10000,100000,1000000] [--clients 32] [--seconds 30] [--save]

The server runs exactly as `deploy/README.md` says: gunicorn with `deploy/gunicorn.conf.py` (several uvicorn
ASGI worker processes), `webapp.settings.production` (a psycopg connection pool per worker), PostgreSQL
(`DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/lumen_bench_http; created and emptied between
sizes, so its name must contain "bench"), Redis when `REDIS_URL` is set, token authentication.

Per size: a vessel-type project of that many cine runs. One generated XA run is imported through the real
pipeline; its Instance row is then cloned in SQL for every other run (each item has its own instance, as an
import makes it; all share the one de-identified file and frame cache), one in ten items needs two labels, a
random queue order is written with `queue_set_order`, the progress counters are counted once
(`progress_recount`, as after any bulk load) and the tables analysed.

Each client is its own OS process (multiprocessing, spawn) with its own `requests` session and annotator
token, and loops `POST /api/projects/<slug>/next/` (which answers with the workspace) → `GET` the workspace
URL (a reload of the item; the browser no longer needs it, timed for the record) → `POST /api/labels/`,
until it has done `--cycles` cycles or `--seconds` have passed. Phases: 1 client; N clients with no pause
(throughput); N clients pausing 1 s between items (a fast human). The in-run baseline: before the phases, 200
calls of a cheap authenticated endpoint on the same server (`GET /api/me/`: the token, the user's memberships and
permissions), what a request costs here before the hot path's own work; the hot path's calls are shown as ratios
to it. Reported per phase: p50 / p99 / max of each
call (ms, measured in the client around the whole HTTP request), completed cycles per second, errors, and
double leases counted from the database afterwards (items leased beyond their slots; must be 0). At the
largest size, every SQL statement one `next` and one submit run is shown with its PostgreSQL plan
(`EXPLAIN`, the scans only), so a query that scans a table rather than an index is visible.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.al_http import free_port
from benchmarks.common import machine_line, save, table
from benchmarks.queue import database_check, database_empty, database_prepare, sql

REPO = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/lumen_bench_http"
# Random keys for this run (production settings refuse short, shared or documented keys).
SECRET_KEY = secrets.token_urlsafe(48)
PSEUDONYM_KEY = secrets.token_urlsafe(48)
OVERLAP_EVERY = 10
PHASES = (("1 client", 1, 0.0), ("{n} clients, no pause", None, 0.0), ("{n} clients, 1 s pause", None, 1.0))


# ---------------------------------------------------------------------------------------------------- setup
@dataclass
class Setup:
    project_id: int
    slug: str
    tokens: list[str]
    load_s: float


def project_load(size: int, clients: int, root: Path, seed: int) -> Setup:
    """Create the project: one imported run, its instance cloned per item, a random order, counted progress."""
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    from annotation.ingest.sources import ArchiveLimits, sources_from_path
    from annotation.models import Membership, Project, Role, TaskType
    from annotation.services import import_run
    from annotation.services.queue import queue_set_order
    from annotation.services.tallies import progress_recount
    from learning.cohorts import generate_xa_cohort

    started = time.perf_counter()
    project = Project.objects.create(
        slug=f"bench-http-{size}", name=f"HTTP load {size}", task_type=TaskType.VESSEL_TYPE,
        settings={"gold_rate": 0.0, "overlap_rate": 0.0},
    )
    folder = root / f"xa-{size}"
    generate_xa_cohort(folder, n_patients=1, runs_per_patient=1, frames=(24, 24), size=128, seed=seed)
    report = import_run(project=project, sources=sources_from_path(folder, limits=ArchiveLimits(members=10)))
    if report.summary()["rejected"]:
        raise RuntimeError(f"the template run was not imported: {report.as_json()}")
    (template,) = sql("SELECT id FROM annotation_instance WHERE project_id = %s", [project.pk])[0]
    columns = [
        name for (name,) in sql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'annotation_instance' "
            "AND column_name NOT IN ('id', 'sop_instance_uid') ORDER BY ordinal_position"
        )
    ]
    listed = ", ".join(columns)
    sql(
        f"INSERT INTO annotation_instance ({listed}, sop_instance_uid) "
        f"SELECT {listed}, sop_instance_uid || '.' || g FROM annotation_instance, generate_series(1, %s) g "
        "WHERE id = %s",
        [size - 1, template],
    )
    sql(
        "INSERT INTO annotation_item (project_id, kind, patient_id, instance_id, title, split, is_gold, "
        "required_labels, open_slots, labellers, created_at) "
        "SELECT i.project_id, 'cine_run', it.patient_id, i.id, 'Run ' || i.id, '', false, 1, 1, 0, now() "
        "FROM annotation_instance i, annotation_item it WHERE i.project_id = %s AND i.id <> %s AND it.instance_id = %s",
        [project.pk, template, template],
    )
    sql(
        "UPDATE annotation_item SET required_labels = 2, open_slots = 2 WHERE project_id = %s AND id %% %s = 0",
        [project.pk, OVERLAP_EVERY],
    )
    ids = [pk for (pk,) in sql("SELECT id FROM annotation_item WHERE project_id = %s ORDER BY id", [project.pk])]
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    queue_set_order(project=project, item_ids=order, strategy="random")
    progress_recount(project=project)
    users_model = get_user_model()
    users = users_model.objects.bulk_create(
        [users_model(username=f"http-annotator-{size}-{i}") for i in range(clients)]
    )
    Membership.objects.bulk_create([Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users])
    tokens = [AuthToken.objects.create(user=user)[1] for user in users]
    for name in ("annotation_item", "annotation_instance", "annotation_queueentry", "annotation_worktally"):
        sql(f"ANALYZE {name}")
    return Setup(project.pk, project.slug, tokens, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------------- server
class Server:
    """gunicorn with deploy/gunicorn.conf.py and the production settings, as deploy/README.md runs it."""

    def __init__(self, database_url: str, media: Path, logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = logs / "gunicorn.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webapp.settings.production",
            "DATABASE_URL": database_url,
            "LUMEN_SECRET_KEY": SECRET_KEY,
            "LUMEN_PSEUDONYM_KEY": PSEUDONYM_KEY,
            # Plain HTTP on loopback, no TLS proxy in front: no HTTPS redirect, no secure-only cookies.
            "LUMEN_SECURE_COOKIES": "false",
            "LUMEN_SSL_REDIRECT": "false",
            "LUMEN_MEDIA_ROOT": str(media),
            "LUMEN_STATIC_ROOT": str(media.parent / "static"),
            "LUMEN_BIND": f"127.0.0.1:{self.port}",
            "LUMEN_LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import requests

        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=REPO, env=self.env,
                       check=True)
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [gunicorn, "-c", "deploy/gunicorn.conf.py", "webapp.asgi:application"],
                cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/api/", timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer within 90 s:\n{self.log.read_text()[-3000:]}")

    def workers(self) -> int:
        """Count the arbiter's worker processes."""
        pid = self.process.pid if self.process else 0
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
        return len(out.split())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


# ---------------------------------------------------------------------------------------------------- clients
@dataclass
class ClientResult:
    next_ms: list[float] = field(default_factory=list)
    workspace_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    cycles: int = 0
    empty: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0


def client_main(url: str, token: str, slug: str, cycles: int, seconds: float, pause: float, ready, go, out) -> None:
    """One annotator in its own process: next → workspace → submit until done; puts a ClientResult on `out`."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    result = ClientResult()
    session.get(f"{url}/api/me/", timeout=30)  # the connection is open before the clock starts
    ready.put(1)
    go.wait()
    result.started = time.perf_counter()
    deadline = result.started + seconds
    try:
        while result.cycles < cycles and time.perf_counter() < deadline:
            start = time.perf_counter()
            response = session.post(f"{url}/api/projects/{slug}/next/", timeout=60)
            result.next_ms.append(1000 * (time.perf_counter() - start))
            response.raise_for_status()
            body = response.json()
            if body["item"] is None:
                result.empty += 1
                break
            start = time.perf_counter()
            workspace = session.get(url + body["workspace_url"], timeout=60)
            result.workspace_ms.append(1000 * (time.perf_counter() - start))
            workspace.raise_for_status()
            label = body["workspace"]["label"]
            start = time.perf_counter()
            submitted = session.post(
                f"{url}/api/labels/",
                json={"item": body["item"], "payload": {"vessel": "LCA"},
                      "base_version": label["version"] if label else None, "time_spent_ms": 1000},
                timeout=60,
            )
            result.submit_ms.append(1000 * (time.perf_counter() - start))
            submitted.raise_for_status()
            result.cycles += 1
            if pause:
                time.sleep(pause)
    except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
        result.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    result.ended = time.perf_counter()
    out.put(result)


@dataclass
class Phase:
    size: int
    name: str
    clients: int
    results: list[ClientResult]
    double_leases: int
    load: float

    def calls(self, name: str) -> list[float]:
        return [ms for r in self.results for ms in getattr(r, f"{name}_ms")]

    def cycles_per_s(self) -> float:
        wall = max(r.ended for r in self.results) - min(r.started for r in self.results)
        return sum(r.cycles for r in self.results) / wall if wall > 0 else 0.0


def phase_run(server: Server, setup: Setup, size: int, name: str, clients: int, pause: float,
              cycles: int, seconds: float) -> Phase:
    context = multiprocessing.get_context("spawn")
    ready, out, go = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(
            target=client_main,
            args=(server.url, setup.tokens[i], setup.slug, cycles, seconds, pause, ready, go, out),
        )
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    go.set()
    results = [out.get(timeout=seconds + 300) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    load = os.getloadavg()[0]
    checks = database_check(setup.project_id)
    return Phase(size, name, clients, results, checks.double_leases, load)


def floor_measure(server: Server, token: str, n: int = 200) -> list[float]:
    """Time a cheap authenticated API call on the same server (`GET /api/me/`: the token, the user's memberships
    and permissions, four small queries): the in-run baseline of what a request costs here before the hot path's
    own work."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    session.get(f"{server.url}/api/me/", timeout=30).raise_for_status()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        session.get(f"{server.url}/api/me/", timeout=30).raise_for_status()
        times.append(1000 * (time.perf_counter() - start))
    return times


# ---------------------------------------------------------------------------------------------------- plans
def query_plans(setup: Setup) -> list[tuple[str, str]]:
    """Return (statement, scans of its PostgreSQL plan) for every statement of one `next` and one submit."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from knox.models import AuthToken

    user = AuthToken.objects.get(token_key=setup.tokens[0][:15]).user
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    with CaptureQueriesContext(connection) as captured:
        body = client.post(f"/api/projects/{setup.slug}/next/").json()
        client.post("/api/labels/", {"item": body["item"], "payload": {"vessel": "RCA"}, "base_version": None},
                    content_type="application/json")
    plans = []
    for query in captured.captured_queries:
        statement = query["sql"]
        if re.match(r"\s*(SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT)", statement):
            continue
        lines = [row[0] for row in sql(f"EXPLAIN {statement}")]
        scans = [
            re.sub(r"\s+\(cost=.*", "", line).strip().lstrip("-> ").strip()
            for line in lines
            if re.search(r"Scan|Insert|Update|Delete", line) and "Filter" not in line
        ]
        plans.append((_short(statement), "; ".join(scans) or lines[0].split("  (")[0]))
    return plans


def _short(statement: str) -> str:
    statement = re.sub(r"\s+", " ", statement)
    statement = re.sub(r'SELECT .*? FROM', "SELECT … FROM", statement, count=1)
    return statement[:110] + ("…" if len(statement) > 110 else "")


# ---------------------------------------------------------------------------------------------------- report
def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def report(args, phases: list[Phase], setups: dict[int, Setup], plans: list[tuple[str, str]], workers: int,
           floors: dict[int, list[float]]) -> str:
    rows = []
    for p in phases:
        row = [f"{p.size:,}", p.name]
        for call in ("next", "workspace", "submit"):
            values = p.calls(call)
            row += [f"{percentile(values, 50) or 0:.0f} / {percentile(values, 99) or 0:.0f} / "
                    f"{max(values) if values else 0:.0f}"]
        errors = sum(len(r.errors) for r in p.results)
        row += [sum(r.cycles for r in p.results), f"{p.cycles_per_s():.1f}", errors, p.double_leases, f"{p.load:.1f}"]
        rows.append(row)
    lines = [
        "HTTP load on the annotator's hot path: next (with the workspace) -> workspace reload -> submit",
        f"server: gunicorn -c deploy/gunicorn.conf.py webapp.asgi:application ({workers} uvicorn worker processes), "
        "webapp.settings.production (psycopg pool per worker), PostgreSQL"
        + (", Redis channel layer" if os.environ.get("REDIS_URL") else ", in-memory channel layer"),
        f"clients: one OS process each (spawn), requests + token; each phase bounded by {args.cycles} cycles and "
        f"{args.seconds:.0f} s per client",
        "items: vessel-type cine runs, one in ten needs two labels, random queue order; "
        + ", ".join(f"{size:,} loaded in {s.load_s:.0f} s" for size, s in setups.items()),
        machine_line(),
        "",
        table(
            ["items", "phase", "next p50/p99/max ms", "workspace p50/p99/max ms", "submit p50/p99/max ms",
             "cycles", "cycles/s", "errors", "double leases", "load avg"],
            rows,
        ),
    ]
    floor_rows = []
    for p in phases:
        if p.clients == 1 and p.size in floors:
            floor = statistics.median(floors[p.size])
            floor_rows.append([
                f"{p.size:,}", f"{floor:.1f}", f"{percentile(floors[p.size], 99):.1f}",
                f"{statistics.median(p.calls('next')):.1f}", f"{statistics.median(p.calls('next')) / floor:.2f}",
                f"{statistics.median(p.calls('submit')) / floor:.2f}",
            ])
    if floor_rows:
        lines += ["", "One client against a cheap authenticated call of the same server in the same run "
                  "(GET /api/me/, 200 calls): what a request costs here before the hot path's own work (HTTP, ASGI, "
                  "Django and DRF, the token and three small queries).", "",
                  table(["items", "floor p50 ms", "floor p99 ms", "next p50 ms", "next / floor", "submit / floor"],
                        floor_rows)]
    by_size: dict[int, list[Phase]] = {}
    for p in phases:
        by_size.setdefault(p.size, []).append(p)
    sizes = sorted(by_size)
    if len(sizes) > 1:
        small, large = by_size[sizes[0]][0], by_size[sizes[-1]][0]
        ratio = statistics.median(large.calls("next")) / statistics.median(small.calls("next"))
        lines += ["", f"next p50 at {sizes[-1]:,} items / p50 at {sizes[0]:,} items, one client: {ratio:.2f}"]
    errors = [e for p in phases for r in p.results for e in r.errors]
    if errors:
        lines += ["", "client errors (first 5):", *errors[:5]]
    if plans:
        lines += ["", f"Every statement of one next + one submit at {sizes[-1]:,} items, with the scans of its plan "
                  "(EXPLAIN):", ""]
        lines += [f"{i + 1:2d}. {statement}\n    {scans}" for i, (statement, scans) in enumerate(plans)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--cycles", type=int, default=200, help="per client and phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    url = os.environ.get("LUMEN_BENCH_HTTP_URL", DEFAULT_URL)
    with tempfile.TemporaryDirectory(prefix="lumen-http-load-") as tmp:
        root = Path(tmp)
        os.environ["LUMEN_MEDIA_ROOT"] = str(root / "media")
        os.environ["LUMEN_PSEUDONYM_KEY"] = PSEUDONYM_KEY
        database_prepare(url)
        server = Server(url, root / "media", root)
        server.start()
        phases: list[Phase] = []
        setups: dict[int, Setup] = {}
        plans: list[tuple[str, str]] = []
        floors: dict[int, list[float]] = {}
        try:
            workers = server.workers()
            for size in sizes:
                database_empty()
                setup = project_load(size, args.clients, root, args.seed)
                setups[size] = setup
                print(f"{size:,} items loaded in {setup.load_s:.0f} s", flush=True)
                floors[size] = floor_measure(server, setup.tokens[-1])
                for template, clients, pause in PHASES:
                    clients = clients or args.clients
                    name = template.format(n=clients)
                    phase = phase_run(server, setup, size, name, clients, pause, args.cycles, args.seconds)
                    phases.append(phase)
                    nexts = phase.calls("next")
                    print(f"  {name}: next p50 {percentile(nexts, 50) or 0:.0f} ms p99 {percentile(nexts, 99) or 0:.0f}"
                          f" ms, {phase.cycles_per_s():.1f} cycles/s, double leases {phase.double_leases}", flush=True)
                if size == sizes[-1]:
                    plans = query_plans(setup)
        finally:
            server.stop()
        text = report(args, phases, setups, plans, workers, floors)
    print(text)
    if args.save:
        print(f"saved {save('http_load.txt', text)}")


if __name__ == "__main__":
    main()
