"""Ingest throughput: Lumen's full import of generated XA runs against a bare pydicom decode loop.

    python -m benchmarks.ingest [--files 8] [--frames 60] [--size 512] [--save]

The baseline (`pydicom.dcmread(path).pixel_array` over the same files) runs in the same process, so the
ratio says what validation, de-identification, rendering the frame cache and the database add on top of
decoding. Set DATABASE_URL to measure against PostgreSQL.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from benchmarks.common import django_test_database, machine_line, save, table


def generate(folder: Path, files: int, frames: int, size: int) -> list[Path]:
    from learning.cohorts import fake_patient, write_xa_run

    rng = np.random.default_rng(7)
    paths = []
    for index in range(files):
        path = folder / f"run{index:03d}.dcm"
        write_xa_run(
            path,
            vessel="LCA" if index % 2 else "RCA",
            rng=rng,
            patient=fake_patient(rng, index),
            frames=frames,
            size=size,
        )
        paths.append(path)
    return paths


def baseline(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        pydicom.dcmread(path).pixel_array  # noqa: B018 - decoding is the work being timed
    return time.perf_counter() - start


def lumen_ingest(folder: Path, fmt: str, slug: str) -> tuple[float, int]:
    """Import every file into a fresh project; return seconds taken and bytes in the frame cache."""
    from django.conf import settings

    from annotation.ingest.sources import sources_from_path
    from annotation.models import TaskType
    from annotation.services import import_run, project_create
    from tests.factories import UserFactory

    settings.LUMEN_FRAME_FORMAT = fmt
    project = project_create(slug=slug, name=slug, task_type=TaskType.VESSEL_TYPE, creator=UserFactory())
    start = time.perf_counter()
    report = import_run(project=project, sources=sources_from_path(folder, max_members=10_000))
    elapsed = time.perf_counter() - start
    assert report.summary()["stored"] == len(list(folder.iterdir())), report.summary()
    cache = Path(settings.MEDIA_ROOT) / "frames" / str(project.pk)
    return elapsed, sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--save", action="store_true", help="write the table to benchmarks/results/ingest.txt")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lumen-bench-xa-"))
    try:
        paths = generate(folder, args.files, args.frames, args.size)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        with django_test_database():
            base = min(baseline(paths) for _ in range(2))
            rows = [("pydicom dcmread + pixel_array (baseline)", base, "-")]
            for fmt in ("webp", "jpeg", "png"):
                secs, cache_bytes = lumen_ingest(folder, fmt, f"bench-{fmt}")
                rows.append((f"Lumen import, frame cache as {fmt}", secs, f"{cache_bytes / 1e6:.1f}"))
        body = table(
            ["method", "seconds", "files/s", "MB/s", "time vs baseline", "frame cache MB"],
            [(name, secs, args.files / secs, megabytes / secs, secs / base, cache) for name, secs, cache in rows],
        )
        text = (
            f"Ingest benchmark: {args.files} XA runs of {args.frames} frames at {args.size}x{args.size} "
            f"(8-bit, {megabytes:.1f} MB in all)\n{machine_line()}\n\n{body}"
        )
        print(text)
        if args.save:
            print(f"\nsaved to {save('ingest.txt', text)}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
