"""Helpers shared by the benchmarks: a throw-away test database and a plain-text table."""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@contextmanager
def django_test_database() -> Iterator[None]:
    """Set up Django against a fresh test database (PostgreSQL when DATABASE_URL is set, else SQLite)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.test")
    import django
    from django.conf import settings
    from django.test.utils import setup_test_environment, teardown_test_environment

    django.setup()
    from django.test.runner import DiscoverRunner

    settings.MEDIA_ROOT = tempfile.mkdtemp(prefix="lumen-bench-media-")
    setup_test_environment()
    runner = DiscoverRunner(verbosity=0)
    old = runner.setup_databases()
    try:
        yield
    finally:
        runner.teardown_databases(old)
        teardown_test_environment()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return rows as an aligned plain-text table."""
    cells = [list(map(str, headers))] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(value.rjust(widths[i]) if i else value.ljust(widths[i]) for i, value in enumerate(row))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def machine_line() -> str:
    return f"{platform.platform()} · {os.cpu_count()} CPUs · Python {platform.python_version()}"


def save(name: str, text: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(text + "\n")
    return path
