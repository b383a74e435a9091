"""Lumen's ASGI application with `benchmarks.cine_open`'s two benchmark-only routes, for the production server.

    LUMEN_BENCH_DICOM=<stored file> gunicorn -c deploy/gunicorn.conf.py benchmarks.cine_asgi:application

`/bench/blank` (an empty page of the server's origin) and `/bench/dicom` (the run's de-identified DICOM file,
streamed whole: the baseline a DICOM-reading viewer must transfer); every other path is `webapp.asgi`'s.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

CHUNK = 64 * 1024


def bench_routes(app, dicom: Path):
    """Wrap the ASGI app with two benchmark-only routes: a blank page and the stored DICOM file, streamed."""

    async def send_body(send, body_type: str, chunks) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", body_type.encode())]})
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def read_file():
        with dicom.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk

    async def blank():
        yield b"<!doctype html><title>bench</title>"

    async def router(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/bench/dicom":
            await send_body(send, "application/dicom", read_file())
        elif scope["type"] == "http" and scope["path"] == "/bench/blank":
            await send_body(send, "text/html", blank())
        else:
            await app(scope, receive, send)

    return router


if os.environ.get("LUMEN_BENCH_DICOM"):
    from webapp.asgi import application as lumen

    application = bench_routes(lumen, Path(os.environ["LUMEN_BENCH_DICOM"]))
