"""Uploads streamed straight to a staging folder on disk, and the sources an import job reads back from it.

`StagingUploadHandler` replaces Django's upload handlers on the import endpoint: every file of a multipart
request is written chunk by chunk into `MEDIA_ROOT/imports/<token>/<n>`, never held whole in memory, and the
request answers as soon as the body has been read. The import job later reads the files back in upload order
(`sources_from_staged`), under the names the browser gave (their relative paths inside a dropped folder).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from annotation.ingest.results import Reason, Rejection
from annotation.ingest.sources import ArchiveLimits, BadSource, SourceFile, skipped, sources_from_file

STAGING_FOLDER = "imports"


def staging_root() -> Path:
    return Path(settings.MEDIA_ROOT) / STAGING_FOLDER


def staging_remove(directory: str) -> None:
    """Remove a staging folder (relative to MEDIA_ROOT) and everything in it."""
    if directory:
        shutil.rmtree(Path(settings.MEDIA_ROOT) / directory, ignore_errors=True)


class StagedFile(UploadedFile):
    """A file of the upload, already complete on disk at `path` (the handle is opened only when read)."""

    def __init__(self, path: Path, name: str, size: int, content_type: str | None) -> None:
        super().__init__(file=None, name=name, content_type=content_type, size=size)
        self.path = path

    def open(self, mode: str | None = None, *args: Any, **kwargs: Any) -> StagedFile:
        self.file = self.path.open(mode or "rb", *args, **kwargs)
        return self

    def read(self, *args: Any) -> bytes:
        if self.file is None:
            self.file = self.path.open("rb")
        return self.file.read(*args)

    def close(self) -> None:
        # Django closes every file of a request whose parsing failed; one never opened has no handle to close.
        if self.file is not None:
            self.file.close()


class StagingUploadHandler(FileUploadHandler):
    """Write each uploaded file into one staging folder as it arrives; refuse bodies over `max_bytes`.

    Requests without credentials (no session user, no Authorization header) are read and thrown away, so
    anonymous uploads never reach the disk; the view refuses them with 401/403 as usual.
    """

    chunk_size = 1024 * 1024

    def __init__(self, request=None, *, max_bytes: int | None = None) -> None:
        super().__init__(request)
        self.allowed: bool | None = None  # decided at the first file: authentication has run by then
        self.max_bytes = settings.LUMEN_MAX_UPLOAD_BYTES if max_bytes is None else max_bytes
        self.directory: Path | None = None
        self.count = 0
        self.total = 0
        self.too_large = False
        self._handle: BinaryIO | None = None
        self._path: Path | None = None

    @property
    def relative_directory(self) -> str:
        return str(self.directory.relative_to(settings.MEDIA_ROOT)) if self.directory else ""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > self.max_bytes:
            self.too_large = True  # the first chunk stops the upload (StopUpload is only caught there)
        return None

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        if self.allowed is None:
            user = getattr(self.request, "user", None)  # DRF copies the user it authenticated onto the request
            has_token = "HTTP_AUTHORIZATION" in getattr(self.request, "META", {})
            self.allowed = bool(user is not None and user.is_authenticated) or has_token
        if not self.allowed:
            return
        if self.directory is None:
            self.directory = staging_root() / f"incoming-{uuid.uuid4().hex}"
            self.directory.mkdir(parents=True)
        self.count += 1
        self._path = self.directory / f"{self.count:06d}"
        self._handle = self._path.open("wb")

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.total += len(raw_data)
        if self.too_large or self.total > self.max_bytes:
            self.too_large = True
            self.abort()
            raise StopUpload(connection_reset=True)
        if self._handle is not None:
            self._handle.write(raw_data)
        return None  # consumed: no later handler sees the bytes

    def file_complete(self, file_size: int) -> StagedFile | None:
        if self._handle is None or self._path is None:
            return None
        self._handle.close()
        self._handle = None
        return StagedFile(self._path, self.file_name or "upload", file_size, self.content_type)

    def upload_interrupted(self) -> None:
        self.abort()

    def abort(self) -> None:
        """Close and remove whatever this request staged."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def display_name(raw: str, fallback: str) -> str:
    """Return the name a file is reported under: its relative path inside the upload, never absolute or `..`."""
    parts = [part for part in PurePosixPath(raw.replace("\\", "/")).parts if part not in ("", "/", ".", "..")]
    return "/".join(parts)[:1024] or fallback


@dataclass(frozen=True)
class StagedEntry:
    """One staged file as the job records it: the name to report and where it lies under MEDIA_ROOT."""

    name: str
    path: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "size": self.size}


def sources_from_staged(entries: list[dict[str, Any]], *, limits: ArchiveLimits) -> list[SourceFile | BadSource]:
    """Return the sources of staged files in upload order, zip archives expanded into their members."""
    sources: list[SourceFile | BadSource] = []
    for entry in entries:
        name, path = entry["name"], Path(settings.MEDIA_ROOT) / entry["path"]
        if skipped(name):
            continue
        if not path.is_file():
            sources.append(BadSource(name, Rejection(Reason.STORAGE_FAILED, "the uploaded file is gone from staging")))
            continue
        sources.extend(sources_from_file(name, path, limits=limits))
    return sources
