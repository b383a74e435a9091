"""Ingest throughput and memory: Lumen's full import of generated XA runs against the floor of what it must do.

    python -m benchmarks.ingest [--files 8] [--frames 60] [--size 512] [--save]

The floor runs in the same process on the same files: decode each run whole with pydicom, window it for display
(the frames the cache holds) **and** encode those frames with the same codec and the same number of encoder
threads, nothing else. Lumen's import does that plus validation, de-identification, the stored copy, the
database rows and the queue, reading each file in batches. `vs floor` is the floor's time over Lumen's (1.0 = no
overhead; the goal is at least 0.8). A bare decode (dcmread + pixel_array) is shown too.
Peak RSS is sampled every 5 ms during each import, above the process's RSS just before it (after a warm-up
import, so codecs and plugins are loaded). Set DATABASE_URL to measure against PostgreSQL.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom

from benchmarks.common import django_test_database, machine_line, save, table


def generate(folder: Path, files: int, frames: int, size: int, seed: int = 7) -> list[Path]:
    from learning.cohorts import fake_patient, write_xa_run

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(files):
        path = folder / f"run{index:03d}.dcm"
        write_xa_run(
            path,
            vessel="LCA" if index % 2 else "RCA",
            rng=rng,
            patient=fake_patient(rng, seed * 1000 + index),
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


def floor(paths: list[Path], fmt: str, quality: int, threads: int) -> float:
    """Decode each run whole, window it for display (the frames the cache holds) and encode every frame with the
    same codec and threads as the frame cache; nothing else."""
    from annotation.ingest.render import encode_image, frames_as_uint8

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for path in paths:
            ds = pydicom.dcmread(path)
            frames = frames_as_uint8(ds, ds.pixel_array)
            sum(len(data) for data in pool.map(lambda f: encode_image(f, fmt, quality), frames))
    return time.perf_counter() - start


def fidelity(path: Path, fmt: str, quality: int, frames: int = 30) -> float:
    """Mean PSNR (dB) of a run's first frames as the cache stores them in `fmt`, against the windowed frames they
    encode (inf for a lossless codec): what the codec's quality costs the picture an annotator sees."""
    from PIL import Image

    from annotation.ingest.render import encode_image, frames_as_uint8

    ds = pydicom.dcmread(path)
    psnr = []
    for frame in frames_as_uint8(ds, ds.pixel_array[:frames]):
        with Image.open(io.BytesIO(encode_image(frame, fmt, quality))) as image:
            shown = np.asarray(image.convert("L" if frame.ndim == 2 else "RGB"), dtype=np.float64)
        error = np.mean((shown - frame) ** 2)
        psnr.append(float("inf") if error == 0 else 10 * np.log10(255**2 / error))
    return float(np.mean(psnr))


class PeakRss:
    """Sample this process's resident memory every 5 ms; `peak_above` is the most above the starting RSS."""

    def __init__(self) -> None:
        self.start = self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def peak_above(self) -> int:
        return self.peak - self.start


def lumen_ingest(folder: Path, fmt: str, slug: str) -> tuple[float, int, int]:
    """Import every file into a fresh project; return seconds, bytes in the frame cache and peak RSS above start."""
    from django.conf import settings

    from annotation.ingest.sources import ArchiveLimits, sources_from_path
    from annotation.models import TaskType
    from annotation.services import import_run, project_create
    from tests.factories import UserFactory

    settings.LUMEN_FRAME_FORMAT = fmt
    project = project_create(slug=slug, name=slug, task_type=TaskType.VESSEL_TYPE, creator=UserFactory())
    with PeakRss() as memory:
        start = time.perf_counter()
        report = import_run(project=project, sources=sources_from_path(folder, limits=ArchiveLimits(members=10_000)))
        elapsed = time.perf_counter() - start
    assert report.summary()["stored"] == len(list(folder.iterdir())), report.summary()
    cache = Path(settings.MEDIA_ROOT) / "frames" / str(project.pk)
    return elapsed, sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()), memory.peak_above


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--save", action="store_true", help="write the table to benchmarks/results/ingest.txt")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lumen-bench-xa-"))
    try:
        paths = generate(folder / "runs", args.files, args.frames, args.size)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        with django_test_database():
            from django.conf import settings

            from annotation.ingest.render import _ENCODER_THREADS, frame_quality

            default = settings.LUMEN_FRAME_FORMAT
            generate(folder / "warm", 1, 8, args.size, seed=99)
            for fmt in ("jpeg", "webp", "png"):  # load codecs and plugins before measuring
                lumen_ingest(folder / "warm", fmt, f"bench-warm-{fmt}")
            base = min(baseline(paths) for _ in range(2))
            rows = [("pydicom dcmread + pixel_array", base, None, "-", "-", "-")]
            for fmt in ("jpeg", "webp", "png"):
                quality = frame_quality(fmt)
                shown = f"{fmt}{'' if fmt == 'png' else f' q{quality}'}{' (default)' if fmt == default else ''}"
                least = min(floor(paths, fmt, quality, _ENCODER_THREADS) for _ in range(2))
                rows.append((f"floor: decode + window + encode as {shown}", least, least, "-", "-", "-"))
                secs, cache_bytes, peak = lumen_ingest(folder / "runs", fmt, f"bench-{fmt}")
                psnr = fidelity(paths[0], fmt, quality)
                rows.append(
                    (f"Lumen import, frame cache as {shown}", secs, least, f"{cache_bytes / 1e6:.1f}", psnr, peak)
                )
            settings.LUMEN_FRAME_FORMAT = default
            batch = settings.LUMEN_INGEST_BATCH_FRAMES
        work_batch = batch * args.size * args.size * 4  # the float32 copy a batch is windowed in
        body = table(
            [
                "method",
                "seconds",
                "files/s",
                "MB/s",
                "vs floor",
                "frame cache MB",
                "PSNR dB",
                "peak RSS above start MB",
            ],
            [
                (
                    name,
                    secs,
                    args.files / secs,
                    megabytes / secs,
                    "-" if least is None or name.startswith("floor") else f"{least / secs:.2f}",
                    cache,
                    psnr if psnr == "-" else ("lossless" if psnr == float("inf") else f"{psnr:.1f}"),
                    peak if peak == "-" else f"{peak / 2**20:.0f}",
                )
                for name, secs, least, cache, psnr, peak in rows
            ],
        )
        text = (
            f"Ingest benchmark: {args.files} XA runs of {args.frames} frames at {args.size}x{args.size} "
            f"(8-bit, {megabytes:.1f} MB in all); frames decoded in batches of {batch} "
            f"(windowed as float32: {work_batch / 2**20:.0f} MB a batch)\n{machine_line()}\n\n{body}\n\n"
            "vs floor: the floor's seconds over this row's (goal >= 0.8). PSNR: the cached frames against the "
            f"windowed frames they encode (the first 30 of one run). Peak RSS: the import's most above the "
            f"process's RSS before it (goal <= 3 x {work_batch / 2**20:.0f} MB = {3 * work_batch / 2**20:.0f} MB)."
        )
        print(text)
        if args.save:
            print(f"\nsaved to {save('ingest.txt', text)}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
