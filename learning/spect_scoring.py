"""Roll 17-segment SPECT scores up to coronary territories (SSS, SRS, SDS and the abnormal flag)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from learning.domain import (
    ABNORMAL_SUMMED_SCORE,
    MAX_SEGMENT_SCORE,
    SEGMENT_COUNT,
    TERRITORY_SEGMENTS,
    ica_obstructive,
)

__all__ = ["TerritoryScore", "ica_obstructive", "patient_abnormal", "territory_flags", "territory_rollup"]


@dataclass(frozen=True)
class TerritoryScore:
    """Summed scores of one territory; ``sds`` may be negative (reverse redistribution)."""

    territory: str
    sss: int
    srs: int
    sds: int
    abnormal: bool


def _checked(scores: Sequence[int], name: str) -> tuple[int, ...]:
    if len(scores) != SEGMENT_COUNT:
        raise ValueError(f"{name}: expected {SEGMENT_COUNT} segment scores, got {len(scores)}")
    for index, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= MAX_SEGMENT_SCORE:
            raise ValueError(f"{name}: segment {index + 1} score must be an integer 0-{MAX_SEGMENT_SCORE}")
    return tuple(scores)


def territory_rollup(stress: Sequence[int], rest: Sequence[int]) -> dict[str, TerritoryScore]:
    """Return per-territory summed stress, rest and difference scores; abnormal when SSS >= 4."""
    stress = _checked(stress, "stress")
    rest = _checked(rest, "rest")
    rollup = {}
    for territory, segments in TERRITORY_SEGMENTS.items():
        sss = sum(stress[s - 1] for s in segments)
        srs = sum(rest[s - 1] for s in segments)
        rollup[territory] = TerritoryScore(territory, sss, srs, sss - srs, sss >= ABNORMAL_SUMMED_SCORE)
    return rollup


def territory_flags(
    rollup: Mapping[str, TerritoryScore], overrides: Mapping[str, Mapping] | None = None
) -> dict[str, bool]:
    """Return each territory's abnormal flag after the annotator's overrides ({"LAD": {"abnormal": bool}})."""
    overrides = overrides or {}
    unknown = set(overrides) - set(rollup)
    if unknown:
        raise ValueError(f"overrides name unknown territories: {', '.join(sorted(unknown))}")
    return {
        name: bool(overrides[name]["abnormal"]) if name in overrides else score.abnormal
        for name, score in rollup.items()
    }


def patient_abnormal(rollup: Mapping[str, TerritoryScore], overrides: Mapping[str, Mapping] | None = None) -> bool:
    """Return whether any territory is abnormal once the overrides are applied."""
    return any(territory_flags(rollup, overrides).values())
