"""A 2 GB upload to the server run as `make demo` runs it: streamed to disk, the server's memory stays bounded."""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import pytest
import requests
from knox.models import AuthToken

from annotation.models import Job
from tests.frontend.test_browser_live import _serve

pytestmark = pytest.mark.django_db(transaction=True)
UPLOAD_BYTES = 2 * 1024**3
RSS_BOUND = 64 * 1024**2  # the most the upload may add to the server's resident memory


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    yield from _serve(tmp_path_factory, redis=False)


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * 4096


class _Zeros:
    """A multipart body of one file of `size` zero bytes, produced as it is sent (requests reads it in pieces)."""

    def __init__(self, boundary: str, size: int) -> None:
        self.head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="huge.dcm"\r\n'
            "Content-Type: application/dicom\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.size, self.sent = size, 0
        self.pending = self.head

    def __len__(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def read(self, count: int = -1) -> bytes:
        if not self.pending and self.sent < self.size:
            step = min(1024 * 1024, self.size - self.sent)
            self.sent += step
            self.pending = bytes(step) + (self.tail if self.sent == self.size else b"")
        out, self.pending = self.pending[: max(count, 0) or None], self.pending[max(count, 0) or len(self.pending) :]
        return out


def test_a_2_gb_upload_is_streamed_to_disk_and_the_server_memory_stays_bounded(server, vessel_project, lead):
    token = AuthToken.objects.create(user=lead)[1]
    before = _rss(server.pid)
    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss(server.pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    boundary = "lumen" + secrets.token_hex(8)
    started = time.monotonic()
    try:
        response = requests.post(
            f"{server.url}/api/projects/{vessel_project.slug}/imports/",
            data=_Zeros(boundary, UPLOAD_BYTES),
            headers={"Authorization": f"Token {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
            timeout=600,
        )
    finally:
        done.set()
        watcher.join()
    assert response.status_code == 202, response.text[:500]
    job = Job.objects.get(pk=response.json()["id"])
    [entry] = job.params["files"]
    staged = Path(server.media_root) / entry["path"]
    try:
        assert entry["name"] == "huge.dcm" and entry["size"] == UPLOAD_BYTES == staged.stat().st_size
        grew = peak[0] - before
        assert grew <= RSS_BOUND, f"the server grew by {grew / 2**20:.0f} MB for a 2 GB upload"
    finally:
        staged.unlink(missing_ok=True)
    print(f"2 GB upload: {time.monotonic() - started:.1f} s, server RSS +{(peak[0] - before) / 2**20:.0f} MB")


def _raw_post(server, path: str, length: int, headers: str = "") -> tuple[str, int]:
    """Send a POST's head declaring `length` body bytes, read the answer, then push body bytes until the server
    stops taking them; return the status line and how many body bytes the server let through."""
    import socket
    from urllib.parse import urlsplit

    with socket.create_connection(("127.0.0.1", urlsplit(server.url).port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{headers}\r\n".encode()
        )
        answer = sock.recv(65536).decode("latin-1")
        sock.settimeout(2)
        sent = 0
        chunk = bytes(1024 * 1024)
        try:
            while sent < length:
                sent += sock.send(chunk[: length - sent])
        except OSError:  # the server closed the connection, or stopped reading (send timed out)
            pass
    return answer.split("\r\n", 1)[0], sent


def test_a_500_mb_anonymous_post_is_refused_before_its_body_is_read(server, vessel_project, lead):
    size = 500 * 1024**2
    before = _rss(server.pid)
    upload = f"/api/projects/{vessel_project.slug}/imports/"
    status, sent = _raw_post(server, upload, size)
    assert status == "HTTP/1.1 401 Unauthorized" and sent < size // 10
    status, sent = _raw_post(server, "/api/labels/", size)
    assert status == "HTTP/1.1 413 Request Entity Too Large" and sent < size // 10
    token = AuthToken.objects.create(user=lead)[1]
    status, _ = _raw_post(server, upload, 21 * 1024**3, f"Authorization: Token {token}\r\n")
    assert status == "HTTP/1.1 413 Request Entity Too Large"  # over LUMEN_MAX_UPLOAD_BYTES, even signed in
    grew = _rss(server.pid) - before
    assert grew <= 16 * 1024**2, f"the server grew by {grew / 2**20:.0f} MB"
