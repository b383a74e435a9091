"""Render decoded pixel data once into 8-bit, windowed web images so the browser never decodes DICOM."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut

FRAME_NAME = "{index:05d}.{ext}"
LMODE_NAME = "lmode.png"
_ENCODER_THREADS = max(1, min(8, os.cpu_count() or 1))


SAMPLE_FRAMES = 16  # frames of a run that fix its display window when the file stores none


def sample_indices(frames: int) -> range:
    """Return the frames whose values fix a run's display window (every k-th, about SAMPLE_FRAMES of them)."""
    return range(0, frames, max(1, frames // SAMPLE_FRAMES))


def frames_as_uint8(ds: Dataset, pixels: np.ndarray) -> np.ndarray:
    """Return frames as uint8, shape (frames, rows, cols) or (frames, rows, cols, 3), windowed for display."""
    if int(ds.get("NumberOfFrames", 1) or 1) == 1:
        pixels = pixels[np.newaxis]
    return display_mapping(ds, pixels[sample_indices(pixels.shape[0])])(pixels)


def display_mapping(ds: Dataset, sample: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Return the function that turns a batch of decoded frames (frames first) into display uint8.

    The window is fixed once per run, from the stored window or from `sample` (the frames at
    `sample_indices`), so a run decoded batch by batch is windowed exactly as if it were decoded whole.
    """
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    bits_stored = int(ds.get("BitsStored", 8) or 8)
    if photometric == "PALETTE COLOR":
        return lambda batch: _colour_to_uint8(apply_color_lut(batch, ds), bits_stored)
    if int(ds.get("SamplesPerPixel", 1) or 1) == 3 or sample.ndim == 4:
        return lambda batch: _colour_to_uint8(batch, bits_stored)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    window = _window(ds)
    if window is not None:
        centre, width = window
        low, high = centre - width / 2.0, centre + width / 2.0
    elif sample.dtype == np.uint8 and slope == 1 and intercept == 0:
        low, high = 0.0, 255.0
    else:
        # No window stored: stretch between robust percentiles of the whole run, the same for every frame.
        values = _rescaled(sample, slope, intercept)
        low, high = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    if high <= low:
        high = low + 1.0

    def gray(batch: np.ndarray) -> np.ndarray:
        # In place: one float32 copy of the batch is the most this holds beside its input and output.
        values = _rescaled(batch, slope, intercept)
        values -= low
        values *= 255.0 / (high - low)
        np.clip(values, 0, 255, out=values)
        out = values.astype(np.uint8)
        if photometric == "MONOCHROME1":
            np.subtract(255, out, out=out)
        return out

    return gray


def _rescaled(pixels: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Return a new float32 array of the modality values (rescale slope and intercept applied in place)."""
    values = pixels.astype(np.float32)
    if slope != 1:
        values *= slope
    if intercept != 0:
        values += intercept
    return values


def _colour_to_uint8(pixels: np.ndarray, bits_stored: int) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    scale = 255.0 / float((1 << min(bits_stored, 16)) - 1)
    return np.clip(pixels.astype(np.float32) * scale, 0, 255).astype(np.uint8)


def _first(value: Any) -> Any:
    """Return the first of a multi-valued DICOM value, or the value itself (pydicom values are untyped)."""
    if isinstance(value, (MultiValue, list, tuple)):
        return value[0] if len(value) else None
    return value


def _window(ds: Dataset) -> tuple[float, float] | None:
    try:
        centre, width = float(_first(ds.get("WindowCenter"))), float(_first(ds.get("WindowWidth")))
    except (TypeError, ValueError):
        return None
    return (centre, width) if width > 0 else None


# A lossy codec's quality when LUMEN_FRAME_QUALITY is not set: the two keep the same detail of XA and OCT frames
# (PSNR against the windowed frames: `benchmarks.ingest`), JPEG in about 1.3-1.7x WebP's bytes, but encoded some
# twenty times and decoded about four times faster (Pillow); in Chromium a cine run's frames are all on screen
# 25-200 ms sooner (`benchmarks.cine_open`, README).
DEFAULT_QUALITY = {"jpeg": 92, "webp": 85}
FRAME_FORMATS = ("jpeg", "webp", "png")


def frame_quality(fmt: str) -> int:
    """The quality frames are encoded at in `fmt`: LUMEN_FRAME_QUALITY where it is set, else the codec's default
    (PNG is lossless and ignores it)."""
    from django.conf import settings

    return settings.LUMEN_FRAME_QUALITY or DEFAULT_QUALITY.get(fmt, 0)


def encode_image(frame: np.ndarray, fmt: str, quality: int) -> bytes:
    """Encode one uint8 frame as a web image."""
    image = Image.fromarray(frame)
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", compress_level=3)
    elif fmt == "webp":
        image.save(buffer, format="WEBP", quality=quality, method=0)
    elif fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        raise ValueError(f"unknown frame format {fmt!r} (use {', '.join(FRAME_FORMATS)})")
    return buffer.getvalue()


class FrameWriter:
    """Encode batches of frames into a run's frame cache on a pool of threads (Pillow's encoders release the GIL:
    they use every core), numbering them on from batch to batch.

    `write` hands a batch to the encoders and returns once the batch before it is written, so the next batch is
    decoded while this one is encoded, and at most two batches are held at a time. Leaving the `with` block waits
    for the rest (and raises the first encoding error).
    """

    def __init__(self, directory: Path, *, fmt: str, quality: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.fmt, self.quality = directory, fmt, quality
        self.written = 0
        self.bytes = 0
        self.pool = ThreadPoolExecutor(max_workers=_ENCODER_THREADS)
        self._pending: list = []

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self._wait()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _wait(self) -> None:
        pending, self._pending = self._pending, []
        self.bytes += sum(future.result() for future in pending)

    def _one(self, frame: np.ndarray, index: int) -> int:
        data = encode_image(frame, self.fmt, self.quality)
        frame_path(self.directory, index, self.fmt).write_bytes(data)
        return len(data)

    def write(self, frames: np.ndarray) -> None:
        """Queue a batch for encoding, then wait for the batch queued before it."""
        submitted = [self.pool.submit(self._one, frames[i], self.written + i) for i in range(frames.shape[0])]
        self.written += frames.shape[0]
        self._wait()
        self._pending = submitted


def frame_path(directory: Path, index: int, fmt: str) -> Path:
    """Return where frame `index` of a rendered instance lives."""
    return directory / FRAME_NAME.format(index=index, ext=fmt)


def normalise_polar_map(pixels: np.ndarray) -> np.ndarray:
    """Scale a polar map to its own maximum (as the SPECT model expects) and return uint8 grayscale or RGB."""
    values = pixels.astype(np.float32)
    peak = float(values.max())
    if peak <= 0:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.clip(values * (255.0 / peak), 0, 255).astype(np.uint8)


def lmode_strip(frames: np.ndarray) -> np.ndarray:
    """Return the longitudinal (L-mode) view of a pullback: each frame's centre row as one column.

    Shape (columns of a frame, number of frames), grayscale uint8; x is the frame index, so the
    browser can mark the current and the labelled frames along it.
    """
    centre = frames[:, frames.shape[1] // 2]
    if centre.ndim == 3:
        centre = centre.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.ascontiguousarray(np.clip(centre, 0, 255).astype(np.uint8).T)
