"""Ranges and checks of the XA cohort knobs: a bad value raises ValueError naming the knob and its range."""

from __future__ import annotations

import numpy as np

from .xa_views import check_view_mix

# Ranges of the cohort knobs (table_panning's upper end is half the image size).
NOISE_RANGE = (0.0, 10.0)
ANGLE_JITTER_RANGE = (0.0, 30.0)
SIZE_RANGE = (16, 2048)
MAX_FRAMES = 1000


def check_number(name: str, value: object, low: float, high: float, unit: str = "") -> None:
    """Raise ValueError naming the knob unless value is a number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ValueError(f"{name} must be a number between {low:g} and {high:g}{unit}; got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}{unit}; got {value!r}")


def check_int(name: str, value: object, low: int, high: int) -> None:
    """Raise ValueError naming the knob unless value is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer between {low} and {high}; got {value!r}")


def check_xa_knobs(
    *,
    n_patients: int = 1,
    runs_per_patient: int = 4,
    frames: tuple[int, int] = (24, 48),
    size: int = 256,
    neither_rate: float = 0.0,
    view_mix: str = "standard",
    angle_jitter_deg: float = 0.0,
    noise: float = 1.0,
    table_panning: float = 0.0,
) -> None:
    """Raise ValueError naming the first generate_xa_cohort knob that is out of its range."""
    check_int("n_patients", n_patients, 0, 1_000_000)
    check_int("runs_per_patient", runs_per_patient, 1, 99)
    pair = isinstance(frames, tuple | list) and len(frames) == 2
    if not pair or not all(isinstance(f, int | np.integer) and not isinstance(f, bool) for f in frames):
        raise ValueError(f"frames must be a (min, max) pair of integers; got {frames!r}")
    if not 1 <= frames[0] <= frames[1] <= MAX_FRAMES:
        raise ValueError(f"frames must satisfy 1 <= min <= max <= {MAX_FRAMES}; got {tuple(frames)!r}")
    check_int("size", size, *SIZE_RANGE)
    check_number("neither_rate", neither_rate, 0.0, 1.0)
    check_view_mix(view_mix)
    check_number("angle_jitter_deg", angle_jitter_deg, *ANGLE_JITTER_RANGE, " degrees")
    check_number("noise", noise, *NOISE_RANGE)
    check_number("table_panning", table_panning, 0.0, size / 2, f" pixels (half the image size {size})")
