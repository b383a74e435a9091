"""Write an export archive: a zip built under a temporary name, its members hashed as they are written, and
renamed into place only once complete, so a half-written archive is never offered."""

from __future__ import annotations

import hashlib
import os
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Members read back from a spool file in pieces of this size.
CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveMember:
    """One file of the archive as the manifest lists it."""

    path: str
    bytes: int
    sha256: str
    label_id: int | None = None

    def as_json(self) -> dict[str, str | int]:
        entry: dict[str, str | int] = {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}
        if self.label_id is not None:
            entry["label"] = self.label_id
        return entry


class ArchiveWriter:
    """A zip file written at `<target>.<token>.part`; `commit` renames it to `target`, `discard` removes it."""

    def __init__(self, target: Path) -> None:
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        self.partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")
        self._zip = zipfile.ZipFile(self.partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self.members: list[ArchiveMember] = []
        self._names: set[str] = set()

    def _claim(self, path: str) -> None:
        if path in self._names or path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"archive path {path!r} is used twice or leaves the archive")
        self._names.add(path)

    def add(self, path: str, data: bytes, *, compress: bool = True, label_id: int | None = None) -> ArchiveMember:
        """Write one member from bytes."""
        self._claim(path)
        info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        self._zip.writestr(info, data)
        member = ArchiveMember(path, len(data), hashlib.sha256(data).hexdigest(), label_id)
        self.members.append(member)
        return member

    def add_spooled(self, path: str, spool: IO[bytes]) -> ArchiveMember:
        """Write one member from a file object (read from its start), hashing it on the way."""
        self._claim(path)
        digest, size = hashlib.sha256(), 0
        spool.seek(0)
        info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with self._zip.open(info, "w", force_zip64=True) as out:
            while chunk := spool.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        member = ArchiveMember(path, size, digest.hexdigest())
        self.members.append(member)
        return member

    def commit(self) -> int:
        """Close the zip, flush it to disk and move it to its final name; return its size in bytes."""
        self._zip.close()
        with self.partial.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self.partial, self.target)
        return self.target.stat().st_size

    def discard(self) -> None:
        """Drop the unfinished archive."""
        self._zip.close()
        self.partial.unlink(missing_ok=True)


@contextmanager
def archive_writer(target: Path) -> Iterator[ArchiveWriter]:
    """Yield a writer for `target`; whatever happens before `commit`, no partial file is left behind."""
    writer = ArchiveWriter(target)
    try:
        yield writer
    finally:
        if writer.partial.exists():
            writer.discard()


def partial_archives_remove(target: Path) -> int:
    """Remove unfinished archives for `target` left by a worker that died while writing; return how many."""
    leftovers = list(target.parent.glob(f"{target.name}.*.part")) if target.parent.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return len(leftovers)


def sha256_of_path(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


__all__ = ["ArchiveMember", "ArchiveWriter", "archive_writer", "partial_archives_remove", "sha256_of_path"]
