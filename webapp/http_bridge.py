"""HTTP through Django's synchronous handler under the ASGI server: one thread hop per request.

Every HTTP view of Lumen is synchronous. Django's ASGI handler still runs a request as a chain of hand-offs between
the event loop and a sync thread (the middleware chain, back to the loop for the view caller, into the thread for
the view, a new thread per request for thread-sensitive code), which on a two-core server cost about a quarter of
a web worker's CPU on the annotator's hot path (`benchmarks.http_load`). Here the ASGI server's worker keeps the
event loop (HTTP parsing, websockets through Channels) and hands each HTTP request, once, to Django's WSGI handler
(a2wsgi's WSGI-under-ASGI responder, with the body read first):

- the request body is read in the event loop before the view runs, as Django's ASGI handler does: into memory up
  to `FILE_UPLOAD_MAX_MEMORY_SIZE`, then into a temporary file, so a slow client never holds a view thread and an
  upload's size costs disk, not memory. A body sent without `Content-Length` (chunked) is given the length that
  arrived, so Django reads all of it;
- a file response (`FileResponse`, whitenoise's static files) is sent in 256 KiB blocks (`wsgi.file_wrapper`)
  instead of Django's 4 KiB;
- Django's `request_finished` fires when the response is done, as under any WSGI server: database connections go
  back to their pool.

The handler runs as asgiref's thread-sensitive sync code: in the process's one sync thread, one view at a time
(concurrency comes from the worker processes, `LUMEN_WEB_WORKERS`), and, where the application is called from
sync code (`async_to_sync` in tests), in the caller's thread with its database connection.
"""

from __future__ import annotations

import asyncio
from tempfile import SpooledTemporaryFile

from a2wsgi.wsgi import WSGIResponder, build_environ
from asgiref.sync import sync_to_async
from django.conf import settings

FILE_BLOCK_BYTES = 256 * 1024


class FileBlocks:
    """`wsgi.file_wrapper`: a file response's file in large blocks, closed with the response."""

    def __init__(self, filelike, block_size: int = FILE_BLOCK_BYTES) -> None:
        self.filelike = filelike
        self.block_size = max(block_size, FILE_BLOCK_BYTES)

    def __iter__(self):
        while block := self.filelike.read(self.block_size):
            yield block

    def close(self) -> None:
        self.filelike.close()


class SpooledResponder(WSGIResponder):
    """a2wsgi's responder, with the body read whole (spooled) in the event loop before the WSGI call."""

    async def __call__(self, scope, receive, send) -> None:
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
            await self._respond(environ, send)

    async def _respond(self, environ, send) -> None:
        # As a2wsgi's WSGIResponder.__call__ does once it has its environ.
        sender = self.loop.create_task(self.sender(send))
        try:
            await sync_to_async(self.wsgi, thread_sensitive=True)(environ, self.start_response)
            await self.send_queue.put(None)
            await sender
            if self.exc_info is not None:
                raise self.exc_info[0].with_traceback(self.exc_info[1], self.exc_info[2])
        finally:
            if not sender.done():
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)


class DjangoHTTP:
    """The ASGI application for HTTP: a WSGI application (Django's handler) called once per request, its body
    spooled first."""

    send_queue_size = 10  # response messages in flight between the sync thread and the event loop (a2wsgi's)

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"DjangoHTTP serves HTTP, not {scope['type']!r}")
        # a2wsgi's responder takes a thread pool, unused here (the call goes through asgiref, above).
        await SpooledResponder(self.app, None, self.send_queue_size)(scope, receive, send)
