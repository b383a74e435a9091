"""Label Studio Community Edition beside Lumen in the HTTP load benchmark: installed, served and loaded for real.

Label Studio is installed from PyPI into its own virtualenv (`var/label-studio/venv-<version>`, once; about 2
minutes), migrated into its own PostgreSQL database (the Lumen benchmark database's name with `_ls` appended),
and served by gunicorn with as many worker processes as Lumen's server has (Label Studio is a WSGI Django
app; its Docker image runs uwsgi, `label-studio start` Django's development server). Projects are loaded by
`benchmarks/label_studio_setup.py`, run with Label Studio's own Python and Django.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks.common import stop_process

REPO = Path(__file__).resolve().parent.parent
VERSION = "1.23.2"
VENV = REPO / "var" / "label-studio" / f"venv-{VERSION}"
SETUP_SCRIPT = Path(__file__).with_name("label_studio_setup.py")


def gunicorn_pin() -> str:
    """Lumen's own gunicorn version (from the lock), so both servers run the same process manager."""
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        if line.lower().startswith("gunicorn=="):
            return line.strip()
    raise RuntimeError("gunicorn is not in requirements/lock.txt")


def ensure_installed() -> Path:
    """Return the virtualenv's python, creating the virtualenv and installing Label Studio first if needed."""
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if marker.exists():
        return python
    print(f"installing label-studio {VERSION} into {VENV} (once, about 2 minutes)", flush=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"label-studio=={VERSION}",
            gunicorn_pin(),
        ],
        check=True,
    )
    marker.write_text(VERSION)
    return python


class LabelStudioServer:
    """Label Studio on loopback: its own database, gunicorn with `workers` processes, legacy tokens."""

    def __init__(self, lumen_database_url: str, workers: int, root: Path, port: int) -> None:
        parts = urlsplit(lumen_database_url)
        self.database = parts.path.lstrip("/") + "_ls"
        if "bench" not in self.database:
            raise SystemExit(f"refusing database {self.database!r}: it is dropped; use a name containing 'bench'")
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.database_url = urlunsplit(parts._replace(path=f"/{self.database}"))
        self.workers = workers
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = root / "label-studio.log"
        self.python = ensure_installed()
        package = next((VENV / "lib").glob("python3*/site-packages/label_studio"))
        self.package = package
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LUMEN_", "DATABASE_URL"))},
            "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
            "DJANGO_DB": "default",
            "POSTGRE_NAME": self.database,
            "POSTGRE_USER": parts.username or "postgres",
            "POSTGRE_PASSWORD": parts.password or "",
            "POSTGRE_HOST": parts.hostname or "127.0.0.1",
            "POSTGRE_PORT": str(parts.port or 5432),
            "LABEL_STUDIO_BASE_DATA_DIR": str(root / "label-studio-data"),
            "LATEST_VERSION_CHECK": "false",  # no call to pypi.org on start
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(package),
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import psycopg
        import requests

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')
        subprocess.run(
            [str(self.python), "manage.py", "migrate", "-v0"],
            cwd=self.package,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        gunicorn = str(VENV / "bin" / "gunicorn")
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [
                    gunicorn,
                    "core.wsgi:application",
                    "--workers",
                    str(self.workers),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--timeout",
                    "120",
                    "--keep-alive",
                    "5",
                ],
                cwd=self.package,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/health/", timeout=5).raise_for_status()
                return
            except requests.RequestException:
                time.sleep(0.5)
        raise RuntimeError(f"Label Studio did not answer within 120 s:\n{self.log.read_text()[-3000:]}")

    def load(self, size: int, clients: int, overlap_every: int) -> tuple[int, list[str], float]:
        """Empty the task tables, load one project of `size` tasks; return (project id, tokens, seconds)."""
        started = time.perf_counter()
        self.sql("TRUNCATE task, project RESTART IDENTITY CASCADE")
        done = subprocess.run(
            [
                str(self.python),
                "-P",
                str(SETUP_SCRIPT),
                json.dumps({"size": size, "clients": clients, "overlap_every": overlap_every}),
            ],
            cwd=self.package,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        return answer["project"], answer["tokens"], time.perf_counter() - started

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

    def stop(self) -> None:
        stop_process(self.process)
