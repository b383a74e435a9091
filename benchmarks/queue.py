"""Labelling-queue benchmark: leasing latency under 32 concurrent annotators, and re-ranking throughput.

    python -m benchmarks.queue [--sizes 10000,100000,1000000] [--clients 32] [--leases 100] [--quick] [--save]

Runs against PostgreSQL only (`DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/lumen_bench_queue;
the database is created and migrated if missing). The benchmark empties that database's tables between sizes,
so it refuses a database whose name does not contain "bench".

Per size: one vessel-type project, its items bulk-loaded with COPY (one in ten needs two labels, the rest one),
a random queue order written with `queue_set_order` (timed), then `ANALYZE` (autovacuum may be off). Then one
client thread (the baseline), then `--clients` threads at once, each with its own connection and annotator, loop
`item_next` → `label_submit` (85 %),
`assignment_release` (10 %) or `item_skip` (5 %) until each has taken `--leases` leases or `--seconds` have
passed. Latency is `time.perf_counter` around the `item_next` call alone, in the client thread (so it includes
waiting for the GIL among 32 threads on this machine, as a threaded server would). Afterwards the database is
checked, not the counters the clients kept:

- double leases: items with more current labellers + live leases than `required_labels`, more submitted
  leases than `required_labels`, or more leases overlapping in time (leased_at .. finished_at) than
  `required_labels`;
- lost items: items whose open_slots + live leases + labellers differ from `required_labels`, and items still
  wanting labels with an open slot but no entry in the current queue generation (so no one can lease them).

Also shown, not an error: stale entries, fully labelled items still in the current order (two annotators who
submit the second and last label of an item at the same moment each count one labeller); they hold no open
slot, so they are never leased, and the next re-rank drops them.

At the largest size, re-ranking: Prediction rows for every item are COPY-loaded for one model version, then
`queue_rerank` (read the scores, entropy strategy, write the new generation, switch, drop the old), the same
order computed alone (`queue_order`), `queue_set_order` with that precomputed order, and a raw baseline in the
same run: COPY the new priorities into a temporary table and `UPDATE annotation_queueentry … FROM` it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from benchmarks.common import machine_line, save, table

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/lumen_bench_queue"
PAYLOAD = {"vessel": "LCA"}
SKIP_SHARE = 0.05
RELEASE_SHARE = 0.10
OVERLAP_EVERY = 10  # one item in ten needs two labels


# ---------------------------------------------------------------------------------------------------- database
def database_prepare(url: str) -> None:
    """Create the scratch database if missing, set Django up against it and migrate it."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing database {name!r}: the queue benchmark empties it; use a name containing 'bench'")
    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.base")
    os.environ.setdefault("LUMEN_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("the queue benchmark needs PostgreSQL (set DATABASE_URL to a postgres:// URL)")
    call_command("migrate", verbosity=0)


def database_empty() -> None:
    """Remove every row the benchmark wrote (projects, patients and users, with everything hanging off them)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE annotation_project, annotation_patient, auth_user RESTART IDENTITY CASCADE")


def sql(query: str, params: Sequence[object] = ()) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def copy_text(query: str, lines: Callable[[], object]) -> None:
    """COPY rows given as tab-separated text lines, written in chunks of 64k lines."""
    from django.db import connection

    with connection.cursor() as cursor, cursor.cursor.copy(query) as copy:
        buffer: list[str] = []
        for line in lines():
            buffer.append(line)
            if len(buffer) >= 65536:
                copy.write("".join(buffer))
                buffer = []
        if buffer:
            copy.write("".join(buffer))


def timed(work: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


# ---------------------------------------------------------------------------------------------------- setup
@dataclass
class Setup:
    project_id: int
    user_ids: list[int]
    load_s: float
    order_s: float


def project_load(size: int, clients: int, seed: int) -> Setup:
    """Create a project with `size` queued items and `clients` annotators; return ids and load timings."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from annotation.models import Membership, Patient, Project, Role, TaskType
    from annotation.services.queue import queue_set_order
    from annotation.services.tallies import progress_recount

    user_model = get_user_model()
    project = Project.objects.create(
        slug=f"bench-queue-{size}",
        name=f"Queue benchmark {size}",
        task_type=TaskType.VESSEL_TYPE,
        settings={"acquisition_strategy": "entropy", "gold_rate": 0.0},
    )
    users = user_model.objects.bulk_create([user_model(username=f"bench-annotator-{i}") for i in range(clients)])
    Membership.objects.bulk_create([Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users])
    patient = Patient.objects.create(pseudonym="BENCH-0001", identity_hash="bench-queue-patient")
    now = timezone.now().isoformat()

    def items():
        for i in range(size):
            need = 2 if i % OVERLAP_EVERY == 0 else 1
            yield f"{project.pk}\tcine_run\t{patient.pk}\trun {i}\t\tf\t{need}\t{need}\t{now}\n"

    columns = "project_id, kind, patient_id, title, split, is_gold, required_labels, open_slots, created_at"
    load_s, _ = timed(lambda: copy_text(f"COPY annotation_item ({columns}) FROM STDIN", items))
    ids = [pk for (pk,) in sql("SELECT id FROM annotation_item WHERE project_id = %s ORDER BY id", [project.pk])]
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    order_s, _ = timed(lambda: queue_set_order(project=project, item_ids=order, strategy="random"))
    progress_recount(project=project)  # rows COPY-loaded around the services: count the progress counters once
    sql("ANALYZE annotation_item")
    sql("ANALYZE annotation_queueentry")
    return Setup(project.pk, [u.pk for u in users], load_s, order_s)


# ---------------------------------------------------------------------------------------------------- clients
@dataclass
class ClientStats:
    lease_s: list[float] = field(default_factory=list)
    submit_s: list[float] = field(default_factory=list)
    empty: int = 0
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)


def client_loop(
    project_id: int, user_id: int, leases: int, deadline: float, seed: int, barrier: threading.Barrier
) -> ClientStats:
    """Lease and finish items as one annotator until `leases` are taken or the deadline passes."""
    from django.contrib.auth import get_user_model
    from django.db import connections

    from annotation.models import Project
    from annotation.services import LabelConflict, assignment_release, item_next, item_skip, label_submit

    stats = ClientStats()
    rng = random.Random(seed)
    try:
        project = Project.objects.get(pk=project_id)  # opens this thread's connection before the clock starts
        user = get_user_model().objects.get(pk=user_id)
        barrier.wait()
        while len(stats.lease_s) < leases and time.monotonic() < deadline:
            start = time.perf_counter()
            lease = item_next(project=project, annotator=user)
            stats.lease_s.append(time.perf_counter() - start)
            if lease is None:
                stats.empty += 1
                break
            item = lease.item
            item.project = project
            draw = rng.random()
            try:
                if draw < SKIP_SHARE:
                    item_skip(item=item, annotator=user, reason="benchmark skip")
                elif draw < SKIP_SHARE + RELEASE_SHARE:
                    assignment_release(item=item, annotator=user)
                else:
                    start = time.perf_counter()
                    label_submit(item=item, author=user, payload=PAYLOAD, base_version=None)
                    stats.submit_s.append(time.perf_counter() - start)
            except LabelConflict:
                stats.conflicts += 1
    except Exception as error:  # noqa: BLE001 - reported in the table; one failing client must not hide the rest
        stats.errors.append(f"{type(error).__name__}: {error}")
    finally:
        connections.close_all()
    return stats


@dataclass
class RunResult:
    stats: list[ClientStats]
    wall_s: float


def clients_run(project_id: int, user_ids: Sequence[int], leases: int, seconds: float, seed: int) -> RunResult:
    """Run one client thread per annotator from a common start; return their stats and the wall time."""
    barrier = threading.Barrier(len(user_ids) + 1)
    results: list[ClientStats | None] = [None] * len(user_ids)
    deadline = time.monotonic() + seconds + 30  # the clock starts at the barrier; 30 s covers connecting

    def run(index: int, user_id: int) -> None:
        results[index] = client_loop(project_id, user_id, leases, deadline, seed * 1000 + index, barrier)

    threads = [threading.Thread(target=run, args=(i, u)) for i, u in enumerate(user_ids)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return RunResult([r or ClientStats(errors=["thread died"]) for r in results], time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------- checks
@dataclass
class Checks:
    double_leases: int
    lost_items: int
    stale_entries: int
    assignments: int
    labels: int
    live_leases: int


def max_overlap(intervals: list[tuple[datetime.datetime, datetime.datetime]]) -> int:
    """Return the most intervals open at one moment (an interval ending when another starts does not overlap)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def database_check(project_id: int) -> Checks:
    """Count double-leased and lost items from the Label and Assignment rows stored for the project."""
    far = datetime.datetime.max.replace(tzinfo=datetime.UTC)
    required = dict(
        sql(
            "SELECT DISTINCT i.id, i.required_labels FROM annotation_item i JOIN annotation_assignment a "
            "ON a.item_id = i.id WHERE i.project_id = %s AND a.kind = 'queue'",
            [project_id],
        )
    )
    intervals: dict[int, list] = defaultdict(list)
    submitted: dict[int, int] = defaultdict(int)
    rows = sql(
        "SELECT a.item_id, a.leased_at, a.finished_at, a.state FROM annotation_assignment a "
        "JOIN annotation_item i ON i.id = a.item_id WHERE i.project_id = %s AND a.kind = 'queue'",
        [project_id],
    )
    for item_id, leased_at, finished_at, state in rows:
        end = finished_at or far
        if end > leased_at:  # a skip without a lease is stored as an empty interval
            intervals[item_id].append((leased_at, end))
        submitted[item_id] += state == "submitted"
    doubled = {i for i, spans in intervals.items() if max_overlap(spans) > required[i]}
    doubled |= {i for i, n in submitted.items() if n > required[i]}
    over = sql(
        """
        SELECT i.id FROM annotation_item i
        LEFT JOIN (SELECT item_id, count(DISTINCT author_id) AS n FROM annotation_label
                   WHERE superseded_at IS NULL GROUP BY item_id) l ON l.item_id = i.id
        LEFT JOIN (SELECT item_id, count(*) AS n FROM annotation_assignment
                   WHERE state = 'leased' AND kind = 'queue' GROUP BY item_id) s ON s.item_id = i.id
        WHERE i.project_id = %s AND NOT i.is_gold AND coalesce(l.n, 0) + coalesce(s.n, 0) > i.required_labels
        """,
        [project_id],
    )
    doubled |= {i for (i,) in over}
    lost = sql(
        """
        WITH labellers AS (SELECT item_id, count(DISTINCT author_id) AS n FROM annotation_label
                           WHERE superseded_at IS NULL GROUP BY item_id),
             live AS (SELECT item_id, count(*) AS n FROM annotation_assignment
                      WHERE state = 'leased' AND kind = 'queue' GROUP BY item_id),
             current AS (SELECT e.item_id FROM annotation_queueentry e JOIN annotation_projectqueue q
                         ON q.project_id = e.project_id AND q.generation = e.generation WHERE e.project_id = %s)
        SELECT count(*) FROM annotation_item i
        LEFT JOIN labellers l ON l.item_id = i.id
        LEFT JOIN live s ON s.item_id = i.id
        WHERE i.project_id = %s AND NOT i.is_gold AND (
            i.open_slots + coalesce(s.n, 0) + coalesce(l.n, 0) <> i.required_labels
            OR (coalesce(l.n, 0) < i.required_labels AND i.open_slots > 0
                AND NOT EXISTS (SELECT 1 FROM current c WHERE c.item_id = i.id)))
        """,
        [project_id, project_id],
    )[0][0]
    # Harmless but worth seeing: fully labelled items still in the order (open_slots 0, so never leased).
    stale = sql(
        """
        SELECT count(*) FROM annotation_queueentry e
        JOIN annotation_projectqueue q ON q.project_id = e.project_id AND q.generation = e.generation
        JOIN annotation_item i ON i.id = e.item_id
        JOIN (SELECT item_id, count(DISTINCT author_id) AS n FROM annotation_label
              WHERE superseded_at IS NULL GROUP BY item_id) l ON l.item_id = e.item_id
        WHERE e.project_id = %s AND l.n >= i.required_labels
        """,
        [project_id],
    )[0][0]
    counts = sql(
        "SELECT (SELECT count(*) FROM annotation_assignment a JOIN annotation_item i ON i.id = a.item_id "
        "        WHERE i.project_id = %s),"
        " (SELECT count(*) FROM annotation_label l JOIN annotation_item i ON i.id = l.item_id WHERE i.project_id = %s),"
        " (SELECT count(*) FROM annotation_assignment a JOIN annotation_item i ON i.id = a.item_id "
        "        WHERE i.project_id = %s AND a.state = 'leased')",
        [project_id, project_id, project_id],
    )[0]
    return Checks(len(doubled), lost, stale, *counts)


# ---------------------------------------------------------------------------------------------------- re-ranking
@dataclass
class Rerank:
    rows: list[tuple[str, int, float]]
    predictions_s: float
    baseline_s: float


def vacuum() -> None:
    """Clear dead queue entries and refresh statistics, as autovacuum would between re-ranks (it may be off)."""
    sql("VACUUM ANALYZE annotation_queueentry")


def rerank_measure(project_id: int, seed: int) -> Rerank:
    """Time queue_rerank, queue_order alone, queue_set_order with a precomputed order and a raw bulk UPDATE."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation.models import ModelStatus, ModelVersion, Project, ProjectQueue
    from annotation.services.queue import queue_order, queue_rerank, queue_set_order

    project = Project.objects.get(pk=project_id)
    version = ModelVersion.objects.create(
        project=project, number=1, family="metadata_mlp", status=ModelStatus.CANDIDATE
    )
    ids = [pk for (pk,) in sql("SELECT id FROM annotation_item WHERE project_id = %s ORDER BY id", [project_id])]
    entropy = np.random.default_rng(seed).uniform(0.0, float(np.log(3)), len(ids))
    now = timezone.now().isoformat()

    def predictions():
        for item_id, value in zip(ids, entropy.tolist(), strict=True):
            yield (
                f'{item_id}\t{version.pk}\t{{"probabilities": [0.5, 0.3, 0.2]}}\t{value!r}\t'
                f'{{"entropy": {value!r}}}\t\\N\t\\N\t{now}\n'
            )

    columns = "item_id, model_version_id, output, uncertainty, uncertainty_detail, confidence, embedding, created_at"
    predictions_s, _ = timed(lambda: copy_text(f"COPY annotation_prediction ({columns}) FROM STDIN", predictions))
    sql("ANALYZE annotation_prediction")

    vacuum()
    generation = ProjectQueue.objects.get(pk=project_id).generation
    entry_ids = [
        pk
        for (pk,) in sql(
            "SELECT id FROM annotation_queueentry WHERE project_id = %s AND generation = %s ORDER BY id",
            [project_id, generation],
        )
    ]
    priorities = np.random.default_rng(seed + 1).permutation(len(entry_ids)).tolist()
    raw_times: dict[str, float] = {}

    def raw() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            start = time.perf_counter()
            cursor.execute("CREATE TEMP TABLE bench_priority (id bigint, priority double precision) ON COMMIT DROP")
            with cursor.cursor.copy("COPY bench_priority (id, priority) FROM STDIN") as copy:
                copy.write("".join(f"{i}\t{p}\n" for i, p in zip(entry_ids, priorities, strict=True)))
            raw_times["copy"] = time.perf_counter() - start
            start = time.perf_counter()
            cursor.execute(
                "UPDATE annotation_queueentry q SET priority = t.priority FROM bench_priority t WHERE q.id = t.id"
            )
            if cursor.rowcount != len(entry_ids):
                raise RuntimeError(f"raw UPDATE touched {cursor.rowcount} rows, expected {len(entry_ids)}")
            raw_times["update"] = time.perf_counter() - start

    raw_s, _ = timed(raw)
    # queue_order first: it also warms the cache with the Prediction rows, as a scoring job just before would.
    order_s, (order, _) = timed(lambda: queue_order(project, version, seed))
    vacuum()
    rerank_s, queue = timed(lambda: queue_rerank(project=project, version=version, seed=seed))
    ranked = queue.ranked_items
    vacuum()
    set_s, queue = timed(lambda: queue_set_order(project=project, item_ids=order, strategy="entropy", version=version))
    rows = [
        ("raw SQL: COPY into a temp table + UPDATE … FROM it, one transaction (baseline)", len(entry_ids), raw_s),
        ("  raw UPDATE … FROM alone", len(entry_ids), raw_times["update"]),
        ("queue_rerank end to end (read scores, entropy, write generation, switch, drop old)", ranked, rerank_s),
        ("queue_order alone (read scores, entropy order; no writes)", len(order), order_s),
        ("queue_set_order with that precomputed order (write, switch, drop old)", queue.ranked_items, set_s),
    ]
    return Rerank(rows, predictions_s, raw_s)


# ---------------------------------------------------------------------------------------------------- report
def ms(values: Sequence[float], q: float | None = None) -> float | str:
    if not values:
        return "-"
    array = np.asarray(values) * 1000.0
    return float(array.mean() if q is None else np.percentile(array, q))


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (5 min {five:.1f})"


def lease_row(size: int, clients: int, run: RunResult, solo_p50: float | None) -> tuple:
    leases = [t for st in run.stats for t in st.lease_s]
    submits = [t for st in run.stats for t in st.submit_s]
    p50 = ms(leases, 50)
    ratio = p50 / solo_p50 if solo_p50 and isinstance(p50, float) else 1.0
    return (
        size,
        clients,
        len(leases),
        p50,
        ms(leases, 99),
        ms(leases),
        ms(leases, 100),
        ratio,
        len(leases) / run.wall_s,
        ms(submits, 50),
        ms(submits, 99),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated queued item counts")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--leases", type=int, default=100, help="leases per client (each is then finished)")
    parser.add_argument("--seconds", type=float, default=120.0, help="stop the clients after this long per run")
    parser.add_argument("--no-rerank", action="store_true", help="skip the re-ranking measurements")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10k items, 20 leases per client")
    parser.add_argument("--save", action="store_true", help="write the report to benchmarks/results/queue.txt")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.leases = "10000", 20
    sizes = [int(s) for s in args.sizes.split(",") if s]

    began = time.perf_counter()
    load_start = load_text()
    database_prepare(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    (pg_version,) = sql("SHOW server_version")[0]
    (autovacuum,) = sql("SHOW autovacuum")[0]
    load_rows, lease_rows, rerank = [], [], None
    for size in sizes:
        database_empty()
        setup = project_load(size, args.clients + 1, args.seed)
        print(f"{size} items loaded in {setup.load_s:.1f} s, ordered in {setup.order_s:.1f} s; leasing …", flush=True)
        solo = clients_run(setup.project_id, setup.user_ids[:1], args.leases, args.seconds, args.seed)
        crowd = clients_run(setup.project_id, setup.user_ids[1:], args.leases, args.seconds, args.seed + 1)
        checks = database_check(setup.project_id)
        stats = solo.stats + crowd.stats
        errors = [e for st in stats for e in st.errors]
        for error in sorted(set(errors))[:5]:
            print(f"  client error: {error}")
        load_rows.append(
            (
                size,
                setup.load_s,
                size / setup.load_s,
                setup.order_s,
                size / setup.order_s,
                checks.assignments,
                checks.labels,
                checks.live_leases,
                checks.double_leases,
                checks.lost_items,
                checks.stale_entries,
                len(errors) + sum(st.conflicts for st in stats),
            )
        )
        solo_row = lease_row(size, 1, solo, None)
        lease_rows += [solo_row, lease_row(size, args.clients, crowd, solo_row[3])]
        print(table(LEASE_HEADERS, lease_rows[-2:]), flush=True)
        if size == max(sizes) and not args.no_rerank:
            print("re-ranking …", flush=True)
            rerank = rerank_measure(setup.project_id, args.seed)
    database_empty()

    lines = [
        f"Queue benchmark: 1 then {args.clients} annotator threads, each up to {args.leases} leases "
        f"(item_next, then label_submit {100 - 100 * (SKIP_SHARE + RELEASE_SHARE):.0f} %, "
        f"assignment_release {100 * RELEASE_SHARE:.0f} %, item_skip {100 * SKIP_SHARE:.0f} %, no pause between), "
        f"1 in {OVERLAP_EVERY} items needs 2 labels",
        f"{machine_line()} · PostgreSQL {pg_version} · load average {load_start} at start, {load_text()} at end · "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC · whole run {time.perf_counter() - began:.0f} s",
        "",
        table(LOAD_HEADERS, load_rows),
        "",
        "COPY: annotation_item rows; set_order: queue_set_order of a random order of every item (first generation); "
        "assignments / labels / live: rows in the database after both runs; double / lost: counted from the "
        "Assignment and Label rows (must be 0); stale: fully labelled items still holding an entry in the current "
        "order (open_slots 0, so never leased; dropped at the next re-rank); errors: client exceptions + label "
        "conflicts.",
        "",
        table(LEASE_HEADERS, lease_rows),
        "",
        f"item_next ms: time.perf_counter around the service call in the client thread (all {args.clients} threads "
        "share one Python process and its GIL with 2 CPUs for Python and PostgreSQL together, so with many clients "
        "it is mostly waiting for a CPU); x 1 client: p50 over the 1-client p50 at the same size; leases/s: item_next "
        "calls of all clients over the run's wall time.",
    ]
    if rerank is not None:
        base = rerank.baseline_s
        rerank_rows = [(name, n, secs, n / secs, secs / base) for name, n, secs in rerank.rows]
        lines += [
            "",
            f"Re-ranking {max(sizes)} items: Prediction rows (uncertainty + {{'entropy': x}}, no embedding) for every "
            f"item COPY-loaded in {rerank.predictions_s:.1f} s; VACUUM ANALYZE of annotation_queueentry before each "
            f"timed write (autovacuum here: {autovacuum}), so each starts from one live generation.",
            "",
            table(["method", "rows", "seconds", "rows/s", "time vs baseline"], rerank_rows),
        ]
    text = "\n".join(lines)
    print("\n" + text)
    if args.save:
        print(f"\nsaved to {save('queue.txt', text)}")


LOAD_HEADERS = [
    "items",
    "COPY s",
    "COPY rows/s",
    "set_order s",
    "set_order rows/s",
    "assignments",
    "labels",
    "live",
    "double",
    "lost",
    "stale",
    "errors",
]
LEASE_HEADERS = [
    "items",
    "clients",
    "leases",
    "item_next p50 ms",
    "p99 ms",
    "mean ms",
    "max ms",
    "p50 x 1 client",
    "leases/s",
    "submit p50 ms",
    "submit p99 ms",
]


if __name__ == "__main__":
    main()
