"""Turn uploads, zip archives and folders into named file sources, checking sizes before reading."""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from annotation.ingest.results import Reason, Rejection

ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class ArchiveLimits:
    """What a zip archive may expand to, read from its directory before any member is inflated.

    Inflating a member can never yield more than the size its header declares (zipfile stops there, and a member
    whose data runs on fails its CRC check and is rejected), so these checks bound what extraction writes.
    `ratio` applies to members that expand beyond `ratio_floor` bytes (small files may compress as they like).
    """

    members: int = 20000
    expanded_bytes: int = 20 * 1024**3
    ratio: float = 200.0
    ratio_floor: int = 16 * 1024 * 1024

    @classmethod
    def from_settings(cls) -> ArchiveLimits:
        from django.conf import settings

        return cls(
            members=settings.LUMEN_MAX_ZIP_MEMBERS,
            expanded_bytes=settings.LUMEN_MAX_ZIP_EXPANDED_BYTES,
            ratio=settings.LUMEN_MAX_ZIP_RATIO,
        )


@dataclass(frozen=True)
class SourceFile:
    """One file to import: a display name (its path inside the upload), its size and a way to read it.

    `path` is set when the file lies on disk as it is (a staged upload, a file of a folder); `opener` streams a
    zip member. `local()` gives a path either way, so a large file is read in pieces, never whole.
    """

    name: str
    size: int
    reader: Callable[[], bytes]
    path: Path | None = None
    opener: Callable[[], AbstractContextManager[IO[bytes]]] | None = None

    def read(self) -> bytes:
        return self.reader()

    @contextmanager
    def local(self) -> Iterator[Path]:
        """Yield a path holding the file's bytes: its own, or a temporary copy written in 1 MB pieces."""
        if self.path is not None:
            yield self.path
            return
        with tempfile.NamedTemporaryFile(prefix="lumen-import-", suffix=".dcm") as copy:
            if self.opener is not None:
                with self.opener() as stream:
                    shutil.copyfileobj(stream, copy, length=1024 * 1024)
            else:
                copy.write(self.reader())
            copy.flush()
            yield Path(copy.name)


@dataclass(frozen=True)
class BadSource:
    """A source that could not even be opened (a broken archive); reported, never stored."""

    name: str
    rejection: Rejection


def skipped(name: str) -> bool:
    """Return True for what an upload carries without meaning to: hidden files and macOS resource forks."""
    parts = PurePosixPath(name).parts
    return any((part.startswith(".") and part != "..") or part == "__MACOSX" for part in parts) or name.endswith("/")


def _member_problem(info: zipfile.ZipInfo, limits: ArchiveLimits) -> Rejection | None:
    """Return why a zip member is never extracted (it is reported, not silently dropped), or None."""
    path = PurePosixPath(info.filename)
    if path.is_absolute() or ".." in path.parts:
        return Rejection(Reason.BAD_ARCHIVE, "its path climbs out of the archive (absolute or '..'); not extracted")
    if stat.S_ISLNK(info.external_attr >> 16):
        return Rejection(Reason.BAD_ARCHIVE, "a symbolic link, not a file; links are never followed")
    if info.file_size > limits.ratio_floor and info.file_size > limits.ratio * max(info.compress_size, 1):
        return Rejection(
            Reason.BAD_ARCHIVE,
            f"would inflate {info.compress_size} compressed bytes to {info.file_size} "
            f"(more than {limits.ratio:g}:1, a zip bomb); not extracted",
        )
    return None


def expand_zip(name: str, opener: Callable[[], IO[bytes]], limits: ArchiveLimits) -> Iterator[SourceFile | BadSource]:
    try:
        with opener() as handle, zipfile.ZipFile(handle) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir() and not skipped(info.filename)]
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        yield BadSource(name, Rejection(Reason.BAD_ARCHIVE, f"not a readable zip archive ({exc})"))
        return

    if len(infos) > limits.members:
        yield BadSource(
            name, Rejection(Reason.BAD_ARCHIVE, f"archive holds {len(infos)} files, more than {limits.members}")
        )
        return
    problems = {info.filename: _member_problem(info, limits) for info in infos}
    expanded = 0
    for info in sorted(infos, key=lambda i: i.filename):  # the expansion budget is spent in import order
        if problems[info.filename] is None:
            expanded += info.file_size
            if expanded > limits.expanded_bytes:
                problems[info.filename] = Rejection(
                    Reason.BAD_ARCHIVE,
                    f"the archive's files expand to more than {limits.expanded_bytes} bytes by here; not extracted",
                )
    for info in infos:
        if (problem := problems[info.filename]) is not None:
            yield BadSource(f"{name}/{info.filename}", problem)
    infos = [info for info in infos if problems[info.filename] is None]
    for info in sorted(infos, key=lambda i: i.filename):

        def read(member: str = info.filename) -> bytes:
            with opener() as handle, zipfile.ZipFile(handle) as archive:
                return archive.read(member)

        @contextmanager
        def stream(member: str = info.filename) -> Iterator[IO[bytes]]:
            with opener() as handle, zipfile.ZipFile(handle) as archive, archive.open(member) as data:
                yield data

        # file_size is the uncompressed size, so the per-file size limit applies before anything inflates too.
        yield SourceFile(name=f"{name}/{info.filename}", size=info.file_size, reader=read, opener=stream)


def is_zip(name: str, head: bytes) -> bool:
    return name.lower().endswith(".zip") or head.startswith(ZIP_MAGIC) and not name.lower().endswith(".dcm")


def sources_from_path(root: Path, *, limits: ArchiveLimits) -> Iterator[SourceFile | BadSource]:
    """Yield sources for a file or every file below a folder (sorted), expanding zip archives."""
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        name = str(path.relative_to(root.parent if root.is_file() else root))
        if not skipped(name):
            yield from sources_from_file(name, path, limits=limits)


def sources_from_file(name: str, path: Path, *, limits: ArchiveLimits) -> Iterator[SourceFile | BadSource]:
    """Yield the source of one file on disk reported as `name`, or its members when it is a zip archive."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if is_zip(name, head):
        yield from expand_zip(name, lambda: path.open("rb"), limits)
    else:
        yield SourceFile(name=name, size=path.stat().st_size, reader=path.read_bytes, path=path)
