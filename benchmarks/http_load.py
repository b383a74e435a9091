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
(throughput); N clients pausing 1 s between items (a fast human), once all starting at the same instant and
once "staggered": each client starts at its own random moment within the first pause (seeded by `--seed`), as
annotators who do not all press a key in the same millisecond. Every client still runs for `--seconds`. The
in-run baseline: before the phases, 200 calls of a cheap authenticated endpoint on the same server (`GET
/api/me/`: the token, the user's memberships and permissions), what a request costs here before the hot path's own
work; the hot path's calls are shown as ratios to it. Reported per phase: p50 / p99 / max of each
call (ms, measured in the client around the whole HTTP request), completed cycles per second, errors, and
double leases counted from the database afterwards (items leased beyond their slots; must be 0). At the
largest size, every SQL statement one `next` and one submit run is shown with its PostgreSQL plan
(`EXPLAIN`, the scans only), so a query that scans a table rather than an index is visible. Then a second project
of the smallest size is loaded beside the largest one (same server, database and tables), and one client alternates
between the two for ALTERNATION_ROUNDS rounds: the ratio of their `next` p50, measured in the same minutes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
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
from benchmarks.common import machine_line, save, stop_process, table
from benchmarks.queue import database_check, database_empty, database_prepare, sql

REPO = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/lumen_bench_http"
# Random keys for this run (production settings refuse short, shared or documented keys).
SECRET_KEY = secrets.token_urlsafe(48)
PSEUDONYM_KEY = secrets.token_urlsafe(48)
CREDENTIALS_KEY = secrets.token_urlsafe(48)
OVERLAP_EVERY = 10
ALTERNATION_ROUNDS = 5
LUMEN, LABEL_STUDIO = "Lumen", "Label Studio"
# (name, clients or None for --clients, pause between items in s, whether the clients start at random moments)
PHASES = (
    ("1 client", 1, 0.0, False),
    ("{n} clients, no pause", None, 0.0, False),
    ("{n} clients, 1 s pause", None, 1.0, False),
    ("{n} clients, 1 s pause, staggered", None, 1.0, True),
)


# ---------------------------------------------------------------------------------------------------- setup
@dataclass
class Setup:
    """One loaded project of one system: what its clients need and how to count its double leases."""

    system: str  # "Lumen" or "Label Studio"
    url: str
    project_id: int
    slug: str  # Lumen's project slug; Label Studio addresses projects by id
    tokens: list[str]
    load_s: float


def project_load(size: int, clients: int, root: Path, seed: int, tag: str = "") -> Setup:
    """Create the project: one imported run, its instance cloned per item, a random order, counted progress.

    `tag` names a second project of the same size loaded beside another (its slug, folder and users)."""
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
        slug=f"bench-http-{size}{tag}",
        name=f"HTTP load {size}{tag}",
        task_type=TaskType.VESSEL_TYPE,
        settings={"gold_rate": 0.0, "overlap_rate": 0.0},
    )
    folder = root / f"xa-{size}{tag}"
    generate_xa_cohort(folder, n_patients=1, runs_per_patient=1, frames=(24, 24), size=128, seed=seed)
    report = import_run(project=project, sources=sources_from_path(folder, limits=ArchiveLimits(members=10)))
    if report.summary()["rejected"]:
        raise RuntimeError(f"the template run was not imported: {report.as_json()}")
    (template,) = sql("SELECT id FROM annotation_instance WHERE project_id = %s", [project.pk])[0]
    columns = [
        name
        for (name,) in sql(
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
        [users_model(username=f"http-annotator-{size}{tag}-{i}") for i in range(clients)]
    )
    Membership.objects.bulk_create([Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users])
    tokens = [AuthToken.objects.create(user=user)[1] for user in users]
    for name in ("annotation_item", "annotation_instance", "annotation_queueentry", "annotation_worktally"):
        sql(f"ANALYZE {name}")
    return Setup(LUMEN, "", project.pk, project.slug, tokens, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------------- server
class Server:
    """gunicorn with deploy/gunicorn.conf.py and the production settings, as deploy/README.md runs it."""

    def __init__(
        self,
        database_url: str,
        media: Path,
        logs: Path,
        application: str = "webapp.asgi:application",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.application = application
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = logs / "gunicorn.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webapp.settings.production",
            "DATABASE_URL": database_url,
            "LUMEN_SECRET_KEY": SECRET_KEY,
            "LUMEN_PSEUDONYM_KEY": PSEUDONYM_KEY,
            "LUMEN_CREDENTIALS_KEY": CREDENTIALS_KEY,
            # Plain HTTP on loopback, no TLS proxy in front: no HTTPS redirect, no secure-only cookies.
            "LUMEN_SECURE_COOKIES": "false",
            "LUMEN_SSL_REDIRECT": "false",
            "LUMEN_MEDIA_ROOT": str(media),
            "LUMEN_STATIC_ROOT": str(logs / "static"),
            "LUMEN_BIND": f"127.0.0.1:{self.port}",
            "LUMEN_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import requests

        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=REPO, env=self.env, check=True
        )
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [gunicorn, "-c", "deploy/gunicorn.conf.py", self.application],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
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
        stop_process(self.process)


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


class Loop:
    """One system's annotator loop over HTTP: next (with what the item page needs) → item reload → submit."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup

    def next(self, session) -> tuple[object, dict | None]:
        """Return (the response, the next item's handle or None when the queue is empty)."""
        s = self.setup
        if s.system == LUMEN:
            response = session.post(f"{s.url}/api/projects/{s.slug}/next/", timeout=60)
            response.raise_for_status()
            body = response.json()
            return response, (body if body["item"] is not None else None)
        # Label Studio: GET …/next/ answers the task (locked for this user) or 404 when none is left.
        response = session.get(f"{s.url}/api/projects/{s.project_id}/next/", timeout=60)
        if response.status_code == 404:
            return response, None
        response.raise_for_status()
        return response, response.json()

    def reload(self, session, handle: dict):
        s = self.setup
        url = s.url + handle["workspace_url"] if s.system == LUMEN else f"{s.url}/api/tasks/{handle['id']}/"
        return session.get(url, timeout=60)

    def submit(self, session, handle: dict):
        s = self.setup
        if s.system == LUMEN:
            label = handle["workspace"]["label"]
            return session.post(
                f"{s.url}/api/labels/",
                json={
                    "item": handle["item"],
                    "payload": {"vessel": "LCA"},
                    "base_version": label["version"] if label else None,
                    "time_spent_ms": 1000,
                },
                timeout=60,
            )
        return session.post(
            f"{s.url}/api/tasks/{handle['id']}/annotations/",
            json={
                "result": [
                    {"from_name": "vessel", "to_name": "image", "type": "choices", "value": {"choices": ["LCA"]}}
                ],
                "lead_time": 1.0,
            },
            timeout=60,
        )

    def warm(self, session) -> None:
        s = self.setup
        path = "/api/me/" if s.system == LUMEN else "/api/current-user/whoami"
        session.get(s.url + path, timeout=30).raise_for_status()


def client_main(
    setup: Setup, token: str, cycles: int, seconds: float, pause: float, offset: float, ready, go, out
) -> None:
    """One annotator in its own process: `offset` s after the start, next → reload → submit until done; puts a
    ClientResult on `out`."""
    import requests

    loop = Loop(setup)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    result = ClientResult()
    loop.warm(session)  # the connection is open before the clock starts
    ready.put(1)
    go.wait()
    time.sleep(offset)
    result.started = time.perf_counter()
    deadline = result.started + seconds
    try:
        while result.cycles < cycles and time.perf_counter() < deadline:
            start = time.perf_counter()
            _, handle = loop.next(session)
            result.next_ms.append(1000 * (time.perf_counter() - start))
            if handle is None:
                result.empty += 1
                break
            start = time.perf_counter()
            loop.reload(session, handle).raise_for_status()
            result.workspace_ms.append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            submitted = loop.submit(session, handle)
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
    system: str
    size: int
    name: str
    clients: int
    results: list[ClientResult]
    double_leases: int
    load: float

    def calls(self, name: str) -> list[float]:
        return [ms for r in self.results for ms in getattr(r, f"{name}_ms")]

    def errors(self) -> int:
        return sum(len(r.errors) for r in self.results)

    def cycles_per_s(self) -> float:
        wall = max(r.ended for r in self.results) - min(r.started for r in self.results)
        return sum(r.cycles for r in self.results) / wall if wall > 0 else 0.0


def phase_run(
    setup: Setup,
    size: int,
    name: str,
    clients: int,
    pause: float,
    offsets: list[float],
    cycles: int,
    seconds: float,
    double_leases,
) -> Phase:
    """Run one phase against one system (client i starts `offsets[i]` s after the others are released);
    `double_leases()` counts items leased beyond their slots afterwards."""
    context = multiprocessing.get_context("spawn")
    ready, out, go = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(
            target=client_main, args=(setup, setup.tokens[i], cycles, seconds, pause, offsets[i], ready, go, out)
        )
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    go.set()
    results = [out.get(timeout=seconds + max(offsets) + 300) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    load = os.getloadavg()[0]
    return Phase(setup.system, size, name, clients, results, double_leases(), load)


@dataclass
class Alternation:
    """One client's `next` on a small and the large project of one server and database, round by round."""

    small: int
    large: int
    rounds: list[tuple[list[float], list[float]]]  # per round: the small project's next ms, the large one's

    def p50(self, which: int) -> float:
        return statistics.median(ms for round_ in self.rounds for ms in round_[which])


def alternation_run(small: Setup, large: Setup, sizes: tuple[int, int], cycles: int, seconds: float) -> Alternation:
    """One client at a time, alternating between the two projects for ALTERNATION_ROUNDS rounds of up to `cycles`
    cycles each: both sizes are measured in the same minutes, so the machine's drift cancels out of their ratio."""
    rounds = []
    for _ in range(ALTERNATION_ROUNDS):
        pair = []
        for setup, size in ((small, sizes[0]), (large, sizes[1])):
            phase = phase_run(setup, size, "alternation", 1, 0.0, [0.0], cycles, seconds, lambda: 0)
            pair.append(phase.calls("next"))
        rounds.append((pair[0], pair[1]))
    return Alternation(sizes[0], sizes[1], rounds)


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
        client.post(
            "/api/labels/",
            {"item": body["item"], "payload": {"vessel": "RCA"}, "base_version": None},
            content_type="application/json",
        )
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
    statement = re.sub(r"SELECT .*? FROM", "SELECT … FROM", statement, count=1)
    return statement[:110] + ("…" if len(statement) > 110 else "")


# ---------------------------------------------------------------------------------------------------- report
def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def phase_row(p: Phase) -> list:
    row = [f"{p.size:,}", p.name, p.system]
    for call in ("next", "workspace", "submit"):
        values = p.calls(call)
        row += [
            f"{percentile(values, 50) or 0:.0f} / {percentile(values, 99) or 0:.0f} / "
            f"{max(values) if values else 0:.0f}"
        ]
    cycles = sum(r.cycles for r in p.results)
    return row + [cycles, f"{p.cycles_per_s():.1f}", p.errors(), p.double_leases, f"{p.load:.1f}"]


def ratio_rows(phases: list[Phase]) -> list[list]:
    """Per size and phase, Lumen against Label Studio in the same run: next p50 and p99, and cycles per second."""
    by_key = {(p.system, p.size, p.name): p for p in phases}
    rows = []
    for p in phases:
        other = by_key.get((LABEL_STUDIO, p.size, p.name))
        if p.system != LUMEN or other is None:
            continue
        ours, theirs = p.calls("next"), other.calls("next")
        if not ours or not theirs:
            continue
        rows.append(
            [
                f"{p.size:,}",
                p.name,
                f"{percentile(theirs, 50) / percentile(ours, 50):.1f}x",
                f"{percentile(theirs, 99) / percentile(ours, 99):.1f}x",
                f"{p.cycles_per_s():.1f} / {other.cycles_per_s():.1f}",
                f"{p.cycles_per_s() / other.cycles_per_s():.1f}x" if other.cycles_per_s() else "-",
            ]
        )
    return rows


def report(
    args,
    phases: list[Phase],
    setups: dict[tuple[str, int], Setup],
    plans: list[tuple[str, str]],
    workers: int,
    floors: dict[int, list[float]],
    alternation: Alternation | None = None,
) -> str:
    lumen = [p for p in phases if p.system == LUMEN]
    lines = [
        "HTTP load on the annotator's hot path: next (with what the item page needs) -> item reload -> submit",
        f"Lumen: gunicorn -c deploy/gunicorn.conf.py webapp.asgi:application ({workers} uvicorn worker processes), "
        "webapp.settings.production (psycopg pool per worker), PostgreSQL"
        + (", Redis channel layer" if os.environ.get("REDIS_URL") else ", in-memory channel layer")
        + "; POST /api/projects/<slug>/next/ -> GET its workspace URL -> POST /api/labels/",
    ]
    if any(p.system == LABEL_STUDIO for p in phases):
        from benchmarks.label_studio import VERSION

        lines.append(
            f"Label Studio CE {VERSION} (PyPI, its own virtualenv): gunicorn core.wsgi:application ({workers} worker "
            "processes), its own PostgreSQL database, legacy tokens, default project settings (sequential sampling, "
            "task locks); GET /api/projects/<id>/next/ -> GET /api/tasks/<id>/ -> POST /api/tasks/<id>/annotations/; "
            "phases interleaved with Lumen's (the same phase on Lumen, then on Label Studio)"
        )
    lines += [
        f"clients: one OS process each (spawn), requests + token; each phase bounded by {args.cycles} cycles and "
        f"{args.seconds:.0f} s per client",
        "items: vessel-type cine runs (Label Studio: one image task each), one in ten needs two labels; Lumen's queue "
        "in random order; "
        + ", ".join(f"{system} {size:,} loaded in {s.load_s:.0f} s" for (system, size), s in setups.items()),
        machine_line(),
        "",
        table(
            [
                "items",
                "phase",
                "system",
                "next p50/p99/max ms",
                "item reload p50/p99/max ms",
                "submit p50/p99/max ms",
                "cycles",
                "cycles/s",
                "errors",
                "double leases",
                "load avg",
            ],
            [phase_row(p) for p in phases],
        ),
    ]
    ratios = ratio_rows(phases)
    if ratios:
        lines += [
            "",
            "Label Studio / Lumen in the same run (next latency: how many times slower Label Studio is; "
            "cycles/s: how many times more items Lumen moves):",
            "",
            table(["items", "phase", "next p50", "next p99", "cycles/s Lumen / LS", "cycles/s ratio"], ratios),
        ]
    herd_rows = []
    for p in phases:
        if p.clients == 1:
            continue
        firsts = [r.next_ms[0] for r in p.results if r.next_ms]
        rest = [ms for r in p.results for ms in r.next_ms[1:]]
        if firsts and rest:
            herd_rows.append(
                [
                    f"{p.size:,}",
                    p.name,
                    p.system,
                    f"{percentile(firsts, 50):.0f} / {max(firsts):.0f}",
                    f"{percentile(rest, 50):.0f} / {percentile(rest, 99):.0f} / {max(rest):.0f}",
                ]
            )
    if herd_rows:
        lines += [
            "",
            "Where next's tail comes from with many clients: where all clients start together, every client "
            "sends its first next at the same instant, a burst each server process works through in turn (the "
            "staggered phase starts each client at its own moment within the first second); the rest are the "
            "steady state.",
            "",
            table(
                ["items", "phase", "system", "first next of each client p50/max ms", "every later next p50/p99/max ms"],
                herd_rows,
            ),
        ]
    floor_rows = []
    for p in lumen:
        if p.clients == 1 and p.size in floors:
            floor = statistics.median(floors[p.size])
            floor_rows.append(
                [
                    f"{p.size:,}",
                    f"{floor:.1f}",
                    f"{percentile(floors[p.size], 99):.1f}",
                    f"{statistics.median(p.calls('next')):.1f}",
                    f"{statistics.median(p.calls('next')) / floor:.2f}",
                    f"{statistics.median(p.calls('submit')) / floor:.2f}",
                ]
            )
    if floor_rows:
        lines += [
            "",
            "Lumen, one client, against a cheap authenticated call of the same server in the same run "
            "(GET /api/me/, 200 calls): what a request costs here before the hot path's own work (HTTP, ASGI, "
            "Django and DRF, the token and three small queries).",
            "",
            table(
                ["items", "floor p50 ms", "floor p99 ms", "next p50 ms", "next / floor", "submit / floor"], floor_rows
            ),
        ]
    by_size: dict[int, list[Phase]] = {}
    for p in lumen:
        by_size.setdefault(p.size, []).append(p)
    sizes = sorted(by_size)
    if len(sizes) > 1:
        small, large = by_size[sizes[0]][0], by_size[sizes[-1]][0]
        ratio = statistics.median(large.calls("next")) / statistics.median(small.calls("next"))
        lines += ["", f"Lumen next p50 at {sizes[-1]:,} items / p50 at {sizes[0]:,} items, one client: {ratio:.2f}"]
    if alternation is not None:
        a = alternation
        lines += [
            "",
            f"The same ratio measured in the same minutes: after the {a.large:,}-item phases, a second project of "
            f"{a.small:,} items was loaded beside it (same server, same database, same tables), and one client "
            f"alternated between the two, {len(a.rounds)} rounds of up to {args.cycles} cycles on each "
            "(the 1-client row of each size above ran minutes apart, while this machine's speed drifts):",
            "",
            table(
                ["round", f"{a.small:,} items next p50 ms", f"{a.large:,} items next p50 ms", "ratio"],
                [
                    [
                        i + 1,
                        f"{statistics.median(s):.1f}",
                        f"{statistics.median(b):.1f}",
                        f"{statistics.median(b) / statistics.median(s):.2f}",
                    ]
                    for i, (s, b) in enumerate(a.rounds)
                ]
                + [["all", f"{a.p50(0):.1f}", f"{a.p50(1):.1f}", f"{a.p50(1) / a.p50(0):.2f}"]],
            ),
        ]
    errors = [f"{p.system}: {e}" for p in phases for r in p.results for e in r.errors]
    if errors:
        lines += ["", "client errors (first 5):", *errors[:5]]
    if plans:
        lines += [
            "",
            f"Every statement of one Lumen next + one submit at {sizes[-1]:,} items, with the scans of its "
            "plan (EXPLAIN):",
            "",
        ]
        lines += [f"{i + 1:2d}. {statement}\n    {scans}" for i, (statement, scans) in enumerate(plans)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--cycles", type=int, default=200, help="per client and phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--label-studio",
        action="store_true",
        help="run every phase against Label Studio CE too (installed into var/label-studio once)",
    )
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
        other = None
        phases: list[Phase] = []
        setups: dict[tuple[str, int], Setup] = {}
        plans: list[tuple[str, str]] = []
        floors: dict[int, list[float]] = {}
        alternation: Alternation | None = None
        try:
            server.start()
            workers = server.workers()
            if args.label_studio:
                from benchmarks.label_studio import LabelStudioServer

                other = LabelStudioServer(url, workers, root, free_port())
                other.start()
            for size in sizes:
                database_empty()
                setup = project_load(size, args.clients, root, args.seed)
                setup.url = server.url
                runs = [(setup, lambda s=setup: database_check(s.project_id).double_leases)]
                if other is not None:
                    project, tokens, load_s = other.load(size, args.clients, OVERLAP_EVERY)
                    ls = Setup(LABEL_STUDIO, other.url, project, "", tokens, load_s)
                    runs.append((ls, lambda p=project: other.double_labels(p)))
                for s, _ in runs:
                    setups[(s.system, size)] = s
                    print(f"{s.system}: {size:,} items loaded in {s.load_s:.0f} s", flush=True)
                floors[size] = floor_measure(server, setup.tokens[-1])
                for template, clients, pause, staggered in PHASES:
                    clients = clients or args.clients
                    name = template.format(n=clients)
                    starts = random.Random(args.seed + size)  # the same start moments for both systems
                    offsets = [starts.uniform(0, pause) if staggered else 0.0 for _ in range(clients)]
                    for s, double_leases in runs:
                        phase = phase_run(
                            s, size, name, clients, pause, offsets, args.cycles, args.seconds, double_leases
                        )
                        phases.append(phase)
                        nexts = phase.calls("next")
                        print(
                            f"  {s.system}, {name}: next p50 {percentile(nexts, 50) or 0:.0f} ms p99 "
                            f"{percentile(nexts, 99) or 0:.0f} ms, {phase.cycles_per_s():.1f} cycles/s, "
                            f"double leases {phase.double_leases}, errors {phase.errors()}",
                            flush=True,
                        )
                if size == sizes[-1]:
                    plans = query_plans(setup)
                    if len(sizes) > 1:
                        side = project_load(sizes[0], 1, root, args.seed + 1, tag="-beside")
                        side.url = server.url
                        print(f"Lumen: a second project of {sizes[0]:,} items loaded beside it", flush=True)
                        alternation = alternation_run(side, setup, (sizes[0], size), args.cycles, args.seconds)
                        print(
                            f"  alternating one client: next p50 {alternation.p50(0):.1f} ms at {sizes[0]:,} items, "
                            f"{alternation.p50(1):.1f} ms at {size:,}",
                            flush=True,
                        )
        finally:
            server.stop()
            if other is not None:
                other.stop()
        text = report(args, phases, setups, plans, workers, floors, alternation)
    print(text)
    if args.save:
        print(f"saved {save('http_load.txt', text)}")


if __name__ == "__main__":
    main()
