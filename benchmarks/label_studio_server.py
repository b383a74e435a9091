"""A real Label Studio Community Edition server on loopback: for the round-trip tests and the HTTP benchmark.

Label Studio is installed from PyPI into its own virtualenv (`var/label-studio/venv-<version>`, once; about 2
minutes: its pins clash with Lumen's), migrated into a database of its own (SQLite in the server's folder, or a
PostgreSQL database the caller names) and served by gunicorn on 127.0.0.1 (Label Studio is a WSGI Django app; its
Docker image runs uwsgi, `label-studio start` Django's development server). Accounts and their API tokens are made
with Label Studio's own Python and Django (`benchmarks/label_studio_accounts.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from benchmarks.al_http import free_port
from benchmarks.common import stop_process

REPO = Path(__file__).resolve().parent.parent
VERSION = "1.23.2"
VENV = REPO / "var" / "label-studio" / f"venv-{VERSION}"
ACCOUNTS_SCRIPT = Path(__file__).with_name("label_studio_accounts.py")


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


class LabelStudioFailed(RuntimeError):
    """Label Studio could not be set up or did not answer; the message ends with its log."""


@dataclass(frozen=True)
class Account:
    """A Label Studio user and its two kinds of API token (either one is accepted by the SDK)."""

    email: str
    user_id: int
    legacy_token: str
    personal_token: str


class LabelStudioServer:
    """Label Studio on a loopback port: its own data folder and database, gunicorn with `workers` processes.

    `database_url` names a PostgreSQL database that exists (the caller creates it); empty, Label Studio uses SQLite
    in `root`, with one worker process (`threads` serve requests at once).
    """

    def __init__(
        self, root: Path, *, port: int | None = None, database_url: str = "", workers: int = 1, threads: int = 4
    ) -> None:
        self.python = ensure_installed()
        self.package = next((VENV / "lib").glob("python3*/site-packages/label_studio"))
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "label-studio.log"
        self.workers = workers if database_url else 1  # one writer process: SQLite locks the file per write
        self.threads = threads
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LUMEN_", "DATABASE_URL"))},
            "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
            "LABEL_STUDIO_BASE_DATA_DIR": str(root / "label-studio-data"),
            "LATEST_VERSION_CHECK": "false",  # no call to pypi.org on start
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(self.package),
        }
        if database_url:
            parts = urlsplit(database_url)
            self.env |= {
                "DJANGO_DB": "default",
                "POSTGRE_NAME": parts.path.lstrip("/"),
                "POSTGRE_USER": parts.username or "postgres",
                "POSTGRE_PASSWORD": parts.password or "",
                "POSTGRE_HOST": parts.hostname or "127.0.0.1",
                "POSTGRE_PORT": str(parts.port or 5432),
            }
        else:
            self.env["DJANGO_DB"] = "sqlite"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> None:
        """Migrate its database, serve it, and wait until /health/ answers; raise LabelStudioFailed if it does not."""
        import requests

        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        with self.log.open("w") as out:
            try:
                migrate = subprocess.run(
                    [str(self.python), "manage.py", "migrate", "-v0"],
                    cwd=self.package,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                raise LabelStudioFailed(
                    f"Label Studio's migrations ran past {timeout:.0f} s:\n{self.log_tail()}"
                ) from None
        if migrate.returncode != 0:
            raise LabelStudioFailed(f"Label Studio's migrations failed:\n{self.log_tail()}")
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [
                    str(VENV / "bin" / "gunicorn"),
                    "core.wsgi:application",
                    "--workers",
                    str(self.workers),
                    "--threads",
                    str(self.threads),
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
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabelStudioFailed(f"Label Studio exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                requests.get(f"{self.url}/health/", timeout=5).raise_for_status()
                return
            except requests.RequestException:
                time.sleep(0.5)
        self.stop()
        raise LabelStudioFailed(f"Label Studio did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def accounts(self, emails: list[str]) -> dict[str, Account]:
        """Create (or find) users of these emails, the first owning the organization; return them with tokens."""
        answer = self.run_script(ACCOUNTS_SCRIPT, {"emails": emails})
        return {email: Account(email, row["id"], row["legacy"], row["personal"]) for email, row in answer.items()}

    def run_script(self, script: Path, options: dict) -> dict:
        """Run a script with Label Studio's Python and Django; return the JSON of its last output line."""
        done = subprocess.run(
            # -P: the script's folder (benchmarks/, which holds a queue.py) must not shadow the standard library.
            [str(self.python), "-P", str(script), json.dumps(options)],
            cwd=self.package,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise LabelStudioFailed(f"{script.name} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> LabelStudioServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
