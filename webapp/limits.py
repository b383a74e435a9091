"""Request bodies bounded at the ASGI layer, before Django reads a byte of them.

Django's ASGI handler spools a whole request body (to memory, then to a temporary file) before any view,
authentication included, runs. `BodyLimitMiddleware` sits in front of it:

- a body larger than its limit is refused with 413 from its `Content-Length` alone, and a body sent without one
  (chunked) is cut off with 413 as soon as it passes the limit;
- the limit is `LUMEN_MAX_REQUEST_BYTES` everywhere but the import endpoint, whose uploads may reach
  `LUMEN_MAX_UPLOAD_BYTES`;
- an upload is read only after its credentials (a valid API token or a signed-in session) have been checked;
  without them it is refused with 401 unread.
"""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie
from types import SimpleNamespace

from asgiref.sync import sync_to_async
from django.conf import settings

# The multipart import endpoint (annotation/api/views.py ImportViewSet.create).
UPLOAD_PATH = re.compile(r"/api/projects/[-\w]+/imports/")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(Exception):
    pass


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _credentials_valid(authorization: str | None, cookie: str | None) -> bool:
    """Whether the request carries a valid API token or a signed-in session (checked against the database)."""
    from django.contrib.auth import get_user
    from django.core.signals import request_finished
    from rest_framework.exceptions import AuthenticationFailed

    from annotation.api.authentication import TokenAuthentication

    try:
        if authorization:
            scheme, _, key = authorization.partition(" ")
            if scheme != "Token" or not key.strip():
                return False
            try:
                TokenAuthentication().authenticate_credentials(key.strip().encode())
            except AuthenticationFailed:
                return False
            return True
        if cookie:
            from importlib import import_module

            jar = SimpleCookie()
            jar.load(cookie)
            morsel = jar.get(settings.SESSION_COOKIE_NAME)
            if morsel is None:
                return False
            store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=morsel.value)
            return get_user(SimpleNamespace(session=store)).is_authenticated
        return False
    finally:
        # Released as at the end of any request (Django closes or returns its database connections on this signal).
        request_finished.send(sender=BodyLimitMiddleware)


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        upload = scope["method"] == "POST" and UPLOAD_PATH.fullmatch(scope["path"]) is not None
        limit = settings.LUMEN_MAX_UPLOAD_BYTES if upload else settings.LUMEN_MAX_REQUEST_BYTES
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return await _answer(send, 400, "Content-Length is not a number of bytes")
            if int(declared) > limit:
                return await _answer(send, 413, f"the request body is {int(declared)} bytes; the limit here is {limit}")
        if upload:
            valid = await sync_to_async(_credentials_valid, thread_sensitive=True)(
                _header(scope, b"authorization"), _header(scope, b"cookie")
            )
            if not valid:
                return await _answer(
                    send,
                    401,
                    "Authentication credentials were not provided or are not valid: "
                    "log in or send 'Authorization: Token <key>' with an upload.",
                )

        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await _answer(send, 413, f"the request body passed the limit here ({limit} bytes)")
