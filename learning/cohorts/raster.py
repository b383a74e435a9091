"""Small vectorised numpy image helpers shared by the modality generators."""

from __future__ import annotations

import numpy as np


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Return zero-mean, unit-std Gaussian noise low-passed to features of about scale_px."""
    white = rng.standard_normal(shape).astype(np.float32)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    # A Gaussian transfer function keeps the field isotropic and free of ringing.
    transfer = np.exp(-0.5 * (fx**2 + fy**2) * (2.0 * np.pi * scale_px / 2.0) ** 2)
    field = np.fft.irfft2(np.fft.rfft2(white) * transfer, s=shape).astype(np.float32)
    std = float(field.std())
    return field / std if std > 0 else field


def blur3(image: np.ndarray, passes: int = 1) -> np.ndarray:
    """Return image blurred by passes of a separable [1, 2, 1] / 4 kernel (last two axes)."""
    out: np.ndarray = image.astype(np.float32, copy=True)
    for _ in range(passes):
        for axis in (-1, -2):
            padded = np.concatenate([np.take(out, [0], axis=axis), out, np.take(out, [-1], axis=axis)], axis=axis)
            n = out.shape[axis]
            left = np.take(padded, np.arange(0, n), axis=axis)
            mid = np.take(padded, np.arange(1, n + 1), axis=axis)
            right = np.take(padded, np.arange(2, n + 2), axis=axis)
            out = 0.25 * left + 0.5 * mid + 0.25 * right
    return out


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Return image averaged over a (2 radius + 1)^2 box with edge padding."""
    if radius <= 0:
        return image.astype(np.float32, copy=True)
    out = image.astype(np.float64)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        csum = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis)
        n = out.shape[axis]
        upper = np.take(csum, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
        lower = np.take(csum, np.arange(0, n), axis=axis)
        out = (upper - lower) / (2 * radius + 1)
    return out.astype(np.float32)


def bilinear_sample(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Return image sampled at fractional (rows, cols), clamped at the borders."""
    h, w = image.shape
    rows = np.clip(rows, 0.0, h - 1.001)
    cols = np.clip(cols, 0.0, w - 1.001)
    r0 = rows.astype(np.int32)
    c0 = cols.astype(np.int32)
    fr = rows - r0
    fc = cols - c0
    flat = image.ravel()
    idx = r0 * w + c0
    top = flat[idx] * (1 - fc) + flat[idx + 1] * fc
    bottom = flat[idx + w] * (1 - fc) + flat[idx + w + 1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def draw_tube(
    shape: tuple[int, int],
    points: np.ndarray,
    radius: np.ndarray,
    scale: np.ndarray,
    arrival: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Rasterise a tapered tube's projected thickness; return (thickness, arrival, bbox).

    points are (n, 2) row/col pixel positions, radius the tube radius in pixels, scale the
    millimetres of path per pixel at each point and arrival a per-point value carried to
    the pixels the tube covers (used for contrast arrival along the vessel tree).
    The arrays are cropped to bbox = (r0, r1, c0, c1).
    """
    pad = float(radius.max()) + 2.0
    r0 = int(max(0, np.floor(points[:, 0].min() - pad)))
    r1 = int(min(shape[0], np.ceil(points[:, 0].max() + pad) + 1))
    c0 = int(max(0, np.floor(points[:, 1].min() - pad)))
    c1 = int(min(shape[1], np.ceil(points[:, 1].max() + pad) + 1))
    r1, c1 = max(r1, r0), max(c1, c0)  # a tube entirely off-image yields an empty crop
    thick = np.zeros((r1 - r0, c1 - c0), np.float32)
    arr = np.full(thick.shape, np.inf, np.float32)
    if thick.size == 0:
        return thick, arr, (r0, r1, c0, c1)
    for i in range(len(points) - 1):
        a, b = points[i], points[i + 1]
        rad = 0.5 * float(radius[i] + radius[i + 1])
        # Sub-pixel tubes are widened but keep their cross-section area (no flicker).
        r_eff = max(rad, 0.8)
        gain = (rad / r_eff) ** 2 * 0.5 * float(scale[i] + scale[i + 1])
        lo_r = int(max(r0, np.floor(min(a[0], b[0]) - r_eff - 1)))
        hi_r = int(min(r1, np.ceil(max(a[0], b[0]) + r_eff + 2)))
        lo_c = int(max(c0, np.floor(min(a[1], b[1]) - r_eff - 1)))
        hi_c = int(min(c1, np.ceil(max(a[1], b[1]) + r_eff + 2)))
        if lo_r >= hi_r or lo_c >= hi_c:
            continue
        rr = np.arange(lo_r, hi_r, dtype=np.float32)[:, None]
        cc = np.arange(lo_c, hi_c, dtype=np.float32)[None, :]
        d = b - a
        length2 = float(d @ d) or 1e-6
        t = np.clip(((rr - a[0]) * d[0] + (cc - a[1]) * d[1]) / length2, 0.0, 1.0)
        dist2 = (rr - a[0] - t * d[0]) ** 2 + (cc - a[1] - t * d[1]) ** 2
        prof = 2.0 * np.sqrt(np.maximum(r_eff * r_eff - dist2, 0.0)) * gain
        view = thick[lo_r - r0 : hi_r - r0, lo_c - c0 : hi_c - c0]
        aview = arr[lo_r - r0 : hi_r - r0, lo_c - c0 : hi_c - c0]
        better = prof > view
        view[better] = prof[better]
        aval = arrival[i] + t * (arrival[i + 1] - arrival[i])
        aview[better] = aval[better]
    return thick, arr, (r0, r1, c0, c1)


def resample_polyline(points: np.ndarray, step: float) -> np.ndarray:
    """Return parameters (0..len-1, fractional) that space points about step apart."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(cum[-1] / step) + 1, 2)
    targets = np.linspace(0.0, cum[-1], n)
    return np.interp(targets, cum, np.arange(len(points), dtype=np.float64))


def interp_rows(values: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Return values (n, ...) linearly interpolated at fractional row indices params."""
    i0 = np.clip(np.floor(params).astype(int), 0, len(values) - 1)
    i1 = np.clip(i0 + 1, 0, len(values) - 1)
    f = (params - i0).reshape((-1,) + (1,) * (values.ndim - 1))
    return values[i0] * (1 - f) + values[i1] * f


def shift_window(canvas: np.ndarray, pad: int, size: int, offset: np.ndarray) -> np.ndarray:
    """Return the centre (size, size) window of a canvas padded by pad, its content moved by offset (rows, cols)."""
    r, c = pad - float(offset[0]), pad - float(offset[1])
    r0, c0 = int(np.floor(r)), int(np.floor(c))
    fr, fc = np.float32(r - r0), np.float32(c - c0)
    win = canvas[r0 : r0 + size + 1, c0 : c0 + size + 1]
    top = win[:-1, :-1] * (1 - fc) + win[:-1, 1:] * fc
    bottom = win[1:, :-1] * (1 - fc) + win[1:, 1:] * fc
    return top * (1 - fr) + bottom * fr
