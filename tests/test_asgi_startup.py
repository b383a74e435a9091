"""The production entry point imports every view while a worker starts, so no user's request pays for it, and
keeps what it imported out of the garbage collector's full passes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync

REPO = Path(__file__).resolve().parent.parent


def probe_run(probe: str) -> list[str]:
    """Run `probe` in a fresh interpreter with the test settings; return what it printed, split in words."""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings.test"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_loading_the_asgi_application_imports_the_views():
    probe = (
        "import sys, webapp.asgi\n"
        "views = ('annotation.api.views', 'annotation.api.quality_views', 'webapp.urls')\n"
        "print(all(m in sys.modules for m in views))\n"
        "import gc; print(gc.get_freeze_count())"
    )
    imported, frozen = probe_run(probe)
    assert imported == "True"
    # Everything the start-up created (hundreds of thousands of objects) is frozen, not walked by every full pass.
    assert int(frozen) > 100_000, frozen


@pytest.mark.django_db
def test_an_asgi_request_enters_the_sync_thread_once_not_per_middleware(monkeypatch):
    from asgiref.sync import SyncToAsync
    from django.test import AsyncClient

    hops = []
    enter = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await enter(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    response = async_to_sync(AsyncClient().get)("/api/")
    assert response.status_code == 401
    # The middleware chain is entered once; without the sync-only marker every middleware's process_request and
    # process_response was a hop of its own (19 hops for this request instead of 7).
    assert hops.count("convert_exception_to_response.<locals>.inner") == 1, hops
    per_middleware = [hop for hop in hops if hop.endswith((".process_request", ".process_response"))]
    assert per_middleware == [], hops


def test_loading_the_asgi_application_builds_every_url_table_a_request_would():
    probe = (
        "import webapp.asgi\n"
        "from django.urls import resolvers, reverse\n"
        "built = []\n"
        "populate = resolvers.URLResolver._populate\n"
        "resolvers.URLResolver._populate = lambda self: (built.append(self), populate(self))[1]\n"
        "reverse('api:item-workspace', args=[1]); reverse('api:label-list'); reverse('workspace', args=['p'])\n"
        "print(len(built))"
    )
    # The first `next` of a worker reverses into the api namespace: nothing is left to build by then.
    assert probe_run(probe) == ["0"]


@pytest.mark.django_db(transaction=True)
def test_gunicorn_opens_each_workers_database_connection_before_its_first_request(monkeypatch):
    import runpy

    from django.db import connection
    from django.db.backends.base.base import BaseDatabaseWrapper

    opened = []
    ensure = BaseDatabaseWrapper.ensure_connection
    monkeypatch.setattr(
        BaseDatabaseWrapper, "ensure_connection", lambda self: (opened.append(self.alias), ensure(self))
    )
    hooks = runpy.run_path(str(REPO / "deploy" / "gunicorn.conf.py"))
    hooks["post_worker_init"](None)  # gunicorn calls it in each worker once the application is loaded
    assert set(opened) == {"default"}  # PostgreSQL re-checks the connection while opening it
    assert connection.connection is None  # handed back at once (with the production pool: back to the pool, open)
