"""The production entry point imports every view while a worker starts, so no user's request pays for it, and
keeps what it imported out of the garbage collector's full passes."""

import asyncio
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
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


def asgi_call(
    method: str, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]] = (), own_loop: bool = False
) -> dict:
    """Call the production ASGI application as the server does; return the status, headers and body messages."""
    from tests.conftest import http_scope
    from webapp.asgi import application

    scope = http_scope(method, path, list(headers))
    pending = list(chunks) or [b""]
    answer: dict = {"bodies": []}

    async def receive():
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"], answer["headers"] = message["status"], dict(message["headers"])
        else:
            answer["bodies"].append(message.get("body", b""))

    if own_loop:
        in_own_loop(application(scope, receive, send))
    else:
        async_to_sync(application)(scope, receive, send)
    return answer


async def no_body() -> dict:
    """ASGI `receive` of a request without a body."""
    return {"type": "http.request", "body": b"", "more_body": False}


def in_own_loop(awaitable):
    """Run `awaitable` to its end on an event loop of its own, in a thread of its own (the browser tests'
    Playwright keeps an event loop running in the main thread, where async_to_sync refuses to run). What it runs
    cannot see the test's database transaction there: only for requests that read no database."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, awaitable).result()


@pytest.mark.django_db
def test_an_http_request_enters_the_sync_thread_once_and_ends_as_django_requests_end(monkeypatch):
    from asgiref.sync import SyncToAsync
    from django.core.signals import request_finished

    from tests.conftest import connection_kept

    hops, finished = [], []
    enter = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await enter(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)
    receiver = lambda **kwargs: finished.append(kwargs["sender"])  # noqa: E731
    request_finished.connect(receiver)
    try:
        with connection_kept():
            answer = asgi_call("GET", "/api/", [])
    finally:
        request_finished.disconnect(receiver)
    assert answer["status"] == 401
    # Django's ASGI handler made 7 hops for this request (the middleware chain, the view, the signals); Django's
    # WSGI handler is entered once and runs everything in that thread.
    assert hops == ["DjangoHTTP.call"], hops
    # request_finished, on which Django gives its database connections back, fired at the end of the response.
    assert len(finished) == 1


@pytest.mark.django_db
def test_a_chunked_request_body_reaches_the_view_whole(annotator):
    from knox.models import AuthToken

    from tests.conftest import connection_kept

    _, token = AuthToken.objects.create(annotator)
    body = b'{"item": 987654, "payload": {"vessel": "LCA"}}'
    with connection_kept():
        answer = asgi_call(
            "POST",
            "/api/labels/",
            [body[:10], body[10:30], body[30:]],
            [
                (b"transfer-encoding", b"chunked"),
                (b"content-type", b"application/json"),
                (b"authorization", f"Token {token}".encode()),
            ],
        )
    # Without a Content-Length, a WSGI application reads no body at all ("This field is required"); here the view
    # parsed all three chunks and judged the item it named.
    assert answer["status"] == 400
    assert b"987654" in b"".join(answer["bodies"]), answer


def test_a_file_response_is_sent_whole_in_large_blocks():
    from django.contrib.staticfiles import finders

    from webapp.http_bridge import FILE_BLOCK_BYTES

    name = "admin/js/vendor/jquery/jquery.js"
    expected = Path(finders.find(name)).read_bytes()
    assert len(expected) > FILE_BLOCK_BYTES  # the test needs more than one block
    answer = asgi_call("GET", f"/static/{name}", [], own_loop=True)
    assert answer["status"] == 200
    assert b"".join(answer["bodies"]) == expected
    # whitenoise answers with a file response: it travels in 256 KiB blocks (and the final empty message), where
    # Django's own iteration sends 4 KiB at a time.
    assert len(answer["bodies"]) <= -(-len(expected) // FILE_BLOCK_BYTES) + 1


def test_a_slow_reader_of_a_file_does_not_hold_the_view_thread(monkeypatch):
    """While a client is slow to read a file response, the worker's one view thread answers other requests."""
    from django.contrib.staticfiles import finders

    from tests.conftest import http_scope
    from webapp import http_bridge
    from webapp.asgi import application

    # Small blocks: the file is many of them, more than any buffer between a sending thread and the client holds.
    monkeypatch.setattr(http_bridge, "FILE_BLOCK_BYTES", 4096)

    name = "admin/js/vendor/jquery/jquery.js"
    expected = Path(finders.find(name)).read_bytes()

    async def both() -> tuple[bytes, int, bool]:
        first_block = asyncio.Event()
        reading = asyncio.Event()  # the slow client reads its second block only once the other request is answered
        file_bodies: list[bytes] = []
        other: dict = {}

        async def slow_send(message):
            if message["type"] == "http.response.body":
                file_bodies.append(message.get("body", b""))
                if len(file_bodies) == 1:
                    first_block.set()
                    await reading.wait()

        async def other_send(message):
            if message["type"] == "http.response.start":
                other["status"] = message["status"]

        async def other_request():
            await first_block.wait()  # the file's answer has begun: its view has returned
            await application(http_scope("GET", "/api/", []), no_body, other_send)
            other["done_while_file_waits"] = len(file_bodies) == 1
            reading.set()

        await asyncio.wait_for(
            asyncio.gather(application(http_scope("GET", f"/static/{name}", []), no_body, slow_send), other_request()),
            timeout=60,
        )
        return b"".join(file_bodies), other["status"], other["done_while_file_waits"]

    sent, status, answered_meanwhile = in_own_loop(both())
    assert status == 401 and answered_meanwhile
    assert sent == expected


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


def test_a_static_file_is_answered_while_a_view_holds_the_view_thread():
    """Styles and scripts never queue behind a view in the worker's one view thread (a page's first frame, `next`)."""
    import threading

    from asgiref.sync import sync_to_async
    from django.contrib.staticfiles import finders

    from tests.conftest import http_scope
    from webapp.asgi import application

    name = "frontend/first-item.js"
    expected = Path(finders.find(name)).read_bytes()
    release = threading.Event()

    def view_running():  # what a view does in the sync thread: hold it
        release.wait(timeout=60)

    async def static_while_held() -> tuple[int, bytes, bool]:
        answer: dict = {"bodies": []}

        async def send(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            else:
                answer["bodies"].append(message.get("body", b""))

        held = asyncio.ensure_future(sync_to_async(view_running, thread_sensitive=True)())
        await asyncio.sleep(0.05)  # the sync thread is now inside view_running
        try:
            await asyncio.wait_for(application(http_scope("GET", f"/static/{name}", []), no_body, send), timeout=20)
            still_held = not held.done()
        finally:
            release.set()
            await held
        return answer["status"], b"".join(answer["bodies"]), still_held

    status, body, still_held = in_own_loop(static_while_held())
    assert status == 200 and body == expected
    assert still_held  # answered while the view thread was busy, not after it
    # A name under /static/ that is no file goes on through Django, outside the view thread too: a plain 404.
    missing = asgi_call("GET", "/static/frontend/no-such-file.js", [], own_loop=True)
    assert missing["status"] == 404
