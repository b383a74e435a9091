"""HTTP through Django's synchronous handler under the ASGI server: one thread hop per request.

Every HTTP view of Lumen is synchronous. Django's ASGI handler still runs a request as a chain of hand-offs between
the event loop and a sync thread (the middleware chain, back to the loop for the view caller, into the thread for
the view, a new thread per request for thread-sensitive code), which on a two-core server cost about a quarter of
a web worker's CPU on the annotator's hot path (`benchmarks.http_load`). Here the ASGI server's worker keeps the
event loop (HTTP parsing, websockets through Channels) and hands each HTTP request, once, to Django's WSGI handler
(the WSGI environ is built by a2wsgi):

- the request body is read in the event loop before the view runs, as Django's ASGI handler does: into memory up
  to `FILE_UPLOAD_MAX_MEMORY_SIZE`, then into a temporary file, so a slow client never holds the view thread and an
  upload's size costs disk, not memory. A body sent without `Content-Length` (chunked) is given the length that
  arrived, so Django reads all of it;
- the answer is sent from the event loop once the view has returned, so a slow reader never holds the view thread
  either: a response in memory whole; a file response (`FileResponse`, whitenoise's static files) in 256 KiB blocks
  (`wsgi.file_wrapper`), read in the loop's default thread pool;
- Django's `request_finished` fires when the response is done, in the view's thread, as under any WSGI server:
  database connections go back to their pool.

The handler runs as asgiref's thread-sensitive sync code: in the process's one sync thread, one view at a time
(concurrency comes from the worker processes, `LUMEN_WEB_WORKERS`); a static file, which needs no view and no
database, in the event loop's thread pool beside it; and, where the application is called from
sync code (`async_to_sync` in tests), in the caller's thread with its database connection. A streaming response
other than a file (none of Lumen's views answers one) would be read whole before it is sent, as Django's ASGI
handler reads a synchronous iterator.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile

from a2wsgi.wsgi import build_environ
from asgiref.sync import sync_to_async
from django.conf import settings

FILE_BLOCK_BYTES = 256 * 1024


class FileBlocks:
    """`wsgi.file_wrapper`: a file response's file in large blocks, closed with the response."""

    def __init__(self, filelike, block_size: int = FILE_BLOCK_BYTES) -> None:
        self.filelike = filelike
        self.block_size = max(block_size, FILE_BLOCK_BYTES)

    def read_block(self) -> bytes:
        return self.filelike.read(self.block_size)

    def __iter__(self):
        while block := self.read_block():
            yield block

    def close(self) -> None:
        self.filelike.close()  # Django's response.close: the file, then request_finished


@dataclass
class Answer:
    """What the WSGI call answered: status and headers, and the body whole or the file to send it from."""

    status: int
    headers: list[tuple[bytes, bytes]]
    content: bytes = b""
    file: FileBlocks | None = None


class DjangoHTTP:
    """The ASGI application for HTTP: a WSGI application (Django's handler) called once per request, its body
    spooled first and its answer sent from the event loop."""

    def __init__(self, app) -> None:
        self.app = app
        # Where whitenoise's files are (Django gives STATIC_URL its leading "/"; a URL on another host matches no
        # path here). Read once: every request asks.
        self.static_prefix = settings.STATIC_URL

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"DjangoHTTP serves HTTP, not {scope['type']!r}")
        with SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE) as body:
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return  # the client left before its body was complete: nothing to answer
                chunk = message.get("body", b"")
                body.write(chunk)
                size += len(chunk)
                if not message.get("more_body"):
                    break
            body.seek(0)
            environ = build_environ(scope, body)  # type: ignore[arg-type]
            environ["CONTENT_LENGTH"] = str(size)
            environ["wsgi.file_wrapper"] = FileBlocks
            # A static file (whitenoise answers it before any middleware that reads the session or the database)
            # needs no view: it is answered from the event loop's thread pool, beside the view running in the sync
            # thread, so a page's styles and scripts never wait behind a view, nor a view (a frame, `next`) behind
            # them.
            sensitive = not scope["path"].startswith(self.static_prefix)
            answer = await sync_to_async(self.call, thread_sensitive=sensitive)(environ)
        await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
        if answer.file is None:
            await send({"type": "http.response.body", "body": answer.content})
            return
        try:
            loop = asyncio.get_running_loop()
            while block := await loop.run_in_executor(None, answer.file.read_block):
                await send({"type": "http.response.body", "body": block, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await sync_to_async(answer.file.close, thread_sensitive=sensitive)()

    def call(self, environ: dict) -> Answer:
        """Run the WSGI application (in the sync thread); a response that is not a file is read and closed here."""
        started: list[Answer] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
            answer = Answer(
                int(status.split(" ", 1)[0]), [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            )
            started[:] = [answer]
            return written.append  # WSGI's write(); Django never calls it

        response = self.app(environ, start_response)
        if isinstance(response, FileBlocks):
            started[0].file = response
            return started[0]
        try:
            content = b"".join(response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
        started[0].content = b"".join(written) + content
        return started[0]
