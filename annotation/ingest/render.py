"""Render decoded pixel data once into 8-bit, windowed web images so the browser never decodes DICOM."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut

FRAME_NAME = "{index:05d}.{ext}"
LMODE_NAME = "lmode.png"
_ENCODER_THREADS = max(1, min(8, os.cpu_count() or 1))


def frames_as_uint8(ds: Dataset, pixels: np.ndarray) -> np.ndarray:
    """Return frames as uint8, shape (frames, rows, cols) or (frames, rows, cols, 3), windowed for display."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
        samples = 3
    if frames == 1:
        pixels = pixels[np.newaxis]
    if samples == 3 or pixels.ndim == 4:
        return _colour_to_uint8(pixels, int(ds.get("BitsStored", 8) or 8))
    return _gray_to_uint8(ds, pixels, photometric)


def _colour_to_uint8(pixels: np.ndarray, bits_stored: int) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    scale = 255.0 / float((1 << min(bits_stored, 16)) - 1)
    return np.clip(pixels.astype(np.float32) * scale, 0, 255).astype(np.uint8)


def _gray_to_uint8(ds: Dataset, pixels: np.ndarray, photometric: str) -> np.ndarray:
    values = pixels.astype(np.float32)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope != 1 or intercept != 0:
        values = values * slope + intercept
    window = _window(ds)
    if window is not None:
        centre, width = window
        low, high = centre - width / 2.0, centre + width / 2.0
    elif pixels.dtype == np.uint8 and slope == 1 and intercept == 0:
        low, high = 0.0, 255.0
    else:
        # No window stored: stretch between robust percentiles of the whole run, the same for every frame.
        sample = values[:: max(1, values.shape[0] // 16)]
        low, high = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if high <= low:
        high = low + 1.0
    out = np.clip((values - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out


def _first(value: object) -> object:
    if isinstance(value, (MultiValue, list, tuple)):
        return value[0] if len(value) else None
    return value


def _window(ds: Dataset) -> tuple[float, float] | None:
    try:
        centre, width = float(_first(ds.get("WindowCenter"))), float(_first(ds.get("WindowWidth")))
    except (TypeError, ValueError):
        return None
    return (centre, width) if width > 0 else None


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
        raise ValueError(f"unknown frame format {fmt!r} (use webp, jpeg or png)")
    return buffer.getvalue()


def write_frames(frames: np.ndarray, directory: Path, *, fmt: str, quality: int) -> int:
    """Encode every frame into `directory` (encoders release the GIL, so threads run them in parallel)."""
    directory.mkdir(parents=True, exist_ok=True)

    def write(index: int) -> int:
        data = encode_image(frames[index], fmt, quality)
        (directory / FRAME_NAME.format(index=index, ext=fmt)).write_bytes(data)
        return len(data)

    with ThreadPoolExecutor(max_workers=_ENCODER_THREADS) as pool:
        return sum(pool.map(write, range(frames.shape[0])))


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
