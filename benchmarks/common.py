"""Helpers shared by the benchmarks: a throw-away test database and a plain-text table."""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# The learning benchmarks' key for patient pseudonyms. Splits are a keyed hash of the pseudonym, so with the
# checkout's own random key (var/pseudonym.key) every machine drew other train / validation / test patients
# from the same generator seed and no figure could be re-measured. The cohorts are synthetic: nothing to protect.
SYNTHETIC_PSEUDONYM_KEY = "lumen-benchmarks-synthetic-cohorts-only-0c4f2a9e7b1d6e3f8a5c2b9d4e7f1a3c"


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
        from django.db import connection

        if connection.vendor == "postgresql":
            # A server thread's connection (its own thread's, out of reach here) would keep the database from
            # being dropped: end every other session on it first.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
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


def angle_regression_probabilities(
    train_angles: Sequence[Sequence[float]],
    train_classes: Sequence[int],
    angles: Sequence[Sequence[float]],
    classes: int,
):
    """Fit scikit-learn's L2 logistic regression (C = 1) on two C-arm angles with quadratic terms, as an outside
    evaluator would, and return its (runs, classes) probabilities for `angles` (one class seen: certain of it)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    y = np.asarray(train_classes, dtype=int)
    probs = np.zeros((len(angles), classes))
    if len(set(y.tolist())) < 2:
        probs[:, int(y[0]) if len(y) else 0] = 1.0
        return probs
    model = make_pipeline(
        StandardScaler(),
        PolynomialFeatures(2, include_bias=False),
        StandardScaler(),
        LogisticRegression(C=1.0, max_iter=2000),
    )
    model.fit(np.asarray(train_angles, dtype=float), y)
    probs[:, model.classes_] = model.predict_proba(np.asarray(angles, dtype=float))
    return probs


def stop_process(process: subprocess.Popen | None, timeout: float = 30) -> None:
    """Stop a server the benchmark started: terminate, then kill if it has not exited within `timeout` s."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
