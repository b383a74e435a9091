"""Shared fixtures: users in roles, projects per task type, API clients."""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

import pytest
from rest_framework.test import APIClient

from annotation.models import Role, TaskType
from tests.factories import MembershipFactory, ProjectFactory, UserFactory


@pytest.fixture
def lead(db):
    return UserFactory(username="lead-user")


@pytest.fixture
def annotator(db):
    return UserFactory(username="annotator-user")


@pytest.fixture
def stranger(db):
    return UserFactory(username="stranger-user")


def _project(task_type, lead, annotator, slug):
    project = ProjectFactory(task_type=task_type, slug=slug)
    MembershipFactory(project=project, user=lead, role=Role.LEAD)
    MembershipFactory(project=project, user=annotator, role=Role.ANNOTATOR)
    return project


@pytest.fixture
def vessel_project(lead, annotator):
    return _project(TaskType.VESSEL_TYPE, lead, annotator, "vessel")


@pytest.fixture
def second_annotator(vessel_project):
    """A second annotator of the vessel project (for overlap, agreement and concurrency)."""
    user = UserFactory(username="second-annotator")
    MembershipFactory(project=vessel_project, user=user, role=Role.ANNOTATOR)
    return user


@pytest.fixture
def executor():
    """An inline executor: training and scoring jobs on a thread of this process, no Ray."""
    from gpu_workers.executors import InlineExecutor

    pool = InlineExecutor()
    yield pool
    pool.close()


@pytest.fixture
def oct_project(lead, annotator):
    return _project(TaskType.OCT_CALCIUM, lead, annotator, "oct")


@pytest.fixture
def spect_project(lead, annotator):
    return _project(TaskType.SPECT_TERRITORY, lead, annotator, "spect")


@pytest.fixture
def client_for():
    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


@pytest.fixture(autouse=True)
def isolated_media(settings, tmp_path):
    """Give every test its own MEDIA_ROOT so file assertions see only what that test wrote."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def judge_promotes(monkeypatch):
    """Every candidate wins: for tests of what happens after promotion (the judge has its own tests)."""
    from annotation.services import learning

    def always(metrics, primary, has_champion, min_test_items=10, refresh=None):
        return True, "promoted: the promotion judge is bypassed in this test"

    monkeypatch.setattr(learning, "promotion_decision", always)


SHUTDOWN_GRACE_S = 120
_run_status = pytest.StashKey[int]()


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_run_status] = int(exitstatus)


def pytest_unconfigure(config):
    """After a failed run has reported, end the process even if a thread never returns.

    A test that timed out can leave a thread that waits forever (an event loop whose closing never ends); the
    interpreter waits for it at exit, and CI would hang until its own limit instead of failing with the report
    already printed. A run that passed exits as usual; the watchdog only fires if shutting down takes longer than
    SHUTDOWN_GRACE_S.
    """
    status = config.stash.get(_run_status, 0)
    if status == 0:
        return

    def end() -> None:
        sys.stderr.write(f"tests: the run failed and shutting down took over {SHUTDOWN_GRACE_S} s; ending it\n")
        sys.stderr.flush()
        os._exit(status)

    watchdog = threading.Timer(SHUTDOWN_GRACE_S, end)
    watchdog.daemon = True  # it never holds up an exit that happens sooner
    watchdog.start()


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Empty the cache (the API throttles' counters) so each test starts with a client nobody has throttled."""
    from django.core.cache import cache

    cache.clear()


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    """The ASGI scope a server gives the application for an HTTP request from 127.0.0.1 (plus `headers`)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


@contextmanager
def connection_kept():
    """Around a call of the ASGI or WSGI application made as a server would: the request's start and end must not
    close the test's database connection (Django's test client disconnects the same handler, and reconnects it
    after each of its own requests, so this is done per call)."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
