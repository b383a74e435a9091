"""Label Studio Community Edition beside Lumen in the HTTP load benchmark: installed, served and loaded for real.

The server itself (installed from PyPI into its own virtualenv, migrated, served by gunicorn on loopback, accounts
and tokens made with its own Django) is `benchmarks/label_studio_server.py`, which the round-trip tests start too.
Here it runs on its own PostgreSQL database (the Lumen benchmark database's name with `_ls` appended) with as many
gunicorn worker processes as Lumen's server has (Label Studio is a WSGI Django app; its Docker image runs uwsgi,
`label-studio start` Django's development server). Projects are loaded by `benchmarks/label_studio_setup.py`, run
with Label Studio's own Python and Django.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks import label_studio_server
from benchmarks.label_studio_server import VERSION, ensure_installed

__all__ = ["VERSION", "LabelStudioServer", "ensure_installed"]

SETUP_SCRIPT = Path(__file__).with_name("label_studio_setup.py")
OWNER = "bench-lead@example.org"


class LabelStudioServer(label_studio_server.LabelStudioServer):
    """The benchmark's Label Studio: a PostgreSQL database made afresh, `workers` sync worker processes, the
    clients' legacy tokens."""

    def __init__(self, lumen_database_url: str, workers: int, root: Path, port: int) -> None:
        parts = urlsplit(lumen_database_url)
        self.database = parts.path.lstrip("/") + "_ls"
        if "bench" not in self.database:
            raise SystemExit(f"refusing database {self.database!r}: it is dropped; use a name containing 'bench'")
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.database_url = urlunsplit(parts._replace(path=f"/{self.database}"))
        super().__init__(root, port=port, database_url=self.database_url, workers=workers, threads=1)

    def start(self, timeout: float = 120) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        super().start(timeout)

    def load(self, size: int, clients: int, overlap_every: int) -> tuple[int, list[str], float]:
        """Empty the task tables, load one project of `size` tasks; return (project id, tokens, seconds)."""
        started = time.perf_counter()
        self.sql("TRUNCATE task, project RESTART IDENTITY CASCADE")
        annotators = [f"bench-annotator-{i}@example.org" for i in range(clients)]
        accounts = self.accounts([OWNER, *annotators])
        answer = self.run_script(SETUP_SCRIPT, {"owner": OWNER, "size": size, "overlap_every": overlap_every})
        return answer["project"], [accounts[email].legacy_token for email in annotators], time.perf_counter() - started

    def double_labels(self, project: int) -> int:
        """Tasks given more (not skipped) annotations than they needed: Label Studio's double leases."""
        (count,) = self.sql(
            "SELECT count(*) FROM task t WHERE t.project_id = %s AND t.overlap < "
            "(SELECT count(*) FROM task_completion a WHERE a.task_id = t.id AND NOT a.was_cancelled)",
            [project],
        )[0]
        return int(count)

    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(query, params or [])
            return cursor.fetchall() if cursor.description else []
