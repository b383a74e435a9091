"""Liveness and readiness for load balancers and Kubernetes probes: `/healthz` and `/readyz`.

Answered by the first middleware, before host validation, HTTPS redirects, sessions and CSRF: a probe reaches the
pod by its IP (not an allowed host) over plain HTTP, and a redirect would count as healthy without checking
anything. The answers say nothing about projects, users or patients.

- `/healthz`: the process serves requests (200), nothing else is checked, so a slow database never gets a web
  process restarted.
- `/readyz`: what a web process needs to serve users: the database answers a query, and Redis (when REDIS_URL is
  set: throttles and live updates go through it) answers a PING. 503 with the failing checks otherwise. The Ray
  cluster is the orchestrator's concern: `manage.py healthcheck` checks it from the orchestrator's status file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

PATHS = {"/healthz", "/healthz/", "/readyz", "/readyz/"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    ms: float
    error: str = ""


def _timed(name: str, probe: Callable[[], None]) -> Check:
    started = time.perf_counter()
    try:
        probe()
    except Exception as error:  # noqa: BLE001 — any failure of a dependency is "not ready", said by type only
        return Check(name, False, round((time.perf_counter() - started) * 1000, 1), type(error).__name__)
    return Check(name, True, round((time.perf_counter() - started) * 1000, 1))


def database_check() -> Check:
    def probe() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    return _timed("database", probe)


def redis_check() -> Check | None:
    """PING the Redis of REDIS_URL (None when the deployment runs without Redis)."""
    if not settings.REDIS_URL:
        return None

    def probe() -> None:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()

    return _timed("redis", probe)


def readiness() -> list[Check]:
    return [check for check in (database_check(), redis_check()) if check is not None]


def _json(status: int, body: dict) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


class HealthMiddleware:
    """Answer the probe paths first; every other request goes on down the chain."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path not in PATHS:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return _json(405, {"error": "use GET"})
        if request.path.startswith("/healthz"):
            return _json(200, {"status": "ok"})
        checks = readiness()
        ready = all(check.ok for check in checks)
        return _json(
            200 if ready else 503, {"status": "ready" if ready else "not ready", "checks": [asdict(c) for c in checks]}
        )
