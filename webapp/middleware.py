"""One thread hop per request under ASGI instead of two per middleware.

Django runs a middleware chain in the mode of what it wraps. Innermost is the ASGI handler's async view
caller, so every `MiddlewareMixin` middleware (sessions, CSRF, auth, messages, CSP, django-axes…) would run
async, and each one's `process_request` and `process_response` would be handed to the sync thread and back:
about sixteen hops, 3–5 ms of a worker's CPU per request on a small machine, for views that are all sync
anyway. `SyncChainMiddleware`, last in `MIDDLEWARE`, can only run sync, so every middleware outside it runs
sync too: the ASGI handler enters the sync thread once, and the view runs in that same thread.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SyncChainMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)
