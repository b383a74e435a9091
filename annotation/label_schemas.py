"""One label schema per task type, validated on the server; errors name the offending field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from annotation.models import Item
from learning.domain import MAX_SEGMENT_SCORE, SEGMENT_COUNT, TERRITORIES, UNUSABLE, VESSEL_CHOICES
from learning.masks import MaskFormatError, mask_decode

EXCLUSION_REASONS = ("poor_blood_clearance", "in_guide_catheter", "artifact")


class LabelPayloadError(ValueError):
    """A label payload is invalid; `field` is the dotted path of the bad value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class VesselLabel:
    vessel: str
    unusable_reason: str = ""


@dataclass(frozen=True)
class OctLabel:
    excluded: bool
    exclusion_reason: str
    mask: np.ndarray | None


@dataclass(frozen=True)
class SpectLabel:
    stress: tuple[int, ...]
    rest: tuple[int, ...]
    flag_overrides: dict[str, dict[str, Any]]


def _require_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise LabelPayloadError("payload", "must be a JSON object")
    return payload


def _reject_unknown(payload: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise LabelPayloadError(unknown[0], "unknown field")


def _reason(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name, "")
    if not isinstance(value, str):
        raise LabelPayloadError(name, "must be a string")
    return value.strip()


def parse_vessel(payload: Any, item: Item) -> VesselLabel:
    payload = _require_object(payload)
    _reject_unknown(payload, {"vessel", "unusable_reason"})
    vessel = payload.get("vessel")
    if vessel not in VESSEL_CHOICES:
        raise LabelPayloadError("vessel", f"must be one of {', '.join(VESSEL_CHOICES)}")
    reason = _reason(payload, "unusable_reason")
    if vessel == UNUSABLE and not reason:
        raise LabelPayloadError("unusable_reason", f"is required when vessel is '{UNUSABLE}'")
    return VesselLabel(vessel=vessel, unusable_reason=reason)


def parse_oct(payload: Any, item: Item) -> OctLabel:
    payload = _require_object(payload)
    _reject_unknown(payload, {"excluded", "exclusion_reason", "mask"})
    excluded = payload.get("excluded", False)
    if not isinstance(excluded, bool):
        raise LabelPayloadError("excluded", "must be true or false")
    if excluded:
        reason = payload.get("exclusion_reason")
        if reason not in EXCLUSION_REASONS:
            raise LabelPayloadError("exclusion_reason", f"must be one of {', '.join(EXCLUSION_REASONS)}")
        return OctLabel(excluded=True, exclusion_reason=reason, mask=None)
    if "mask" not in payload:
        raise LabelPayloadError("mask", "is required unless the frame is excluded")
    try:
        mask = mask_decode(payload["mask"])
    except MaskFormatError as exc:
        raise LabelPayloadError("mask", str(exc)) from exc
    if item.instance is not None and mask.shape != (item.instance.rows, item.instance.columns):
        raise LabelPayloadError(
            "mask", f"shape {list(mask.shape)} does not match the frame ({item.instance.rows}, {item.instance.columns})"
        )
    return OctLabel(excluded=False, exclusion_reason="", mask=mask)


def _scores(payload: dict[str, Any], name: str) -> tuple[int, ...]:
    values = payload.get(name)
    if not isinstance(values, list) or len(values) != SEGMENT_COUNT:
        raise LabelPayloadError(name, f"must be a list of {SEGMENT_COUNT} segment scores")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEGMENT_SCORE:
            raise LabelPayloadError(f"{name}[{index}]", f"segment score must be an integer 0–{MAX_SEGMENT_SCORE}")
    return tuple(values)


def parse_spect(payload: Any, item: Item) -> SpectLabel:
    payload = _require_object(payload)
    _reject_unknown(payload, {"stress", "rest", "flag_overrides"})
    stress = _scores(payload, "stress")
    rest = _scores(payload, "rest")
    overrides = payload.get("flag_overrides", {})
    if not isinstance(overrides, dict):
        raise LabelPayloadError("flag_overrides", "must be an object keyed by territory")
    for territory, override in overrides.items():
        where = f"flag_overrides.{territory}"
        if territory not in TERRITORIES:
            raise LabelPayloadError(where, f"territory must be one of {', '.join(TERRITORIES)}")
        if not isinstance(override, dict) or not isinstance(override.get("abnormal"), bool):
            raise LabelPayloadError(f"{where}.abnormal", "must be true or false")
        if not isinstance(override.get("reason"), str) or not override["reason"].strip():
            raise LabelPayloadError(f"{where}.reason", "a flag override needs a reason")
    return SpectLabel(stress=stress, rest=rest, flag_overrides=overrides)


def label_payload_validate(*, item: Item, payload: Any) -> Any:
    """Validate a payload against the item's task schema and return its typed form."""
    from annotation.tasks import label_task  # the tasks import these parsers

    return label_task(item.project.task_type).parse_label(payload, item)
