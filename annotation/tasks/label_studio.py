"""Pieces the tasks share for Label Studio: config tags, result regions written and read, and brush masks.

A task that can be labelled in Label Studio writes its labeling config (`LabelTask.label_studio_config`) with the
tags below and maps a label payload to result regions and back. Masks travel in Label Studio's brush RLE through
label-studio-sdk's own converter (`mask2rle` / `decode_rle`), so what Label Studio draws is what Lumen stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from annotation.ingest import render
from annotation.ingest.store import media_path
from annotation.label_schemas import LabelPayloadError
from annotation.models import Item

# Label Studio draws a brush region from its RGBA image; a pixel is painted where its alpha channel is set (the
# SDK's own converters read channel 3 the same way).
BRUSH_CHANNELS = 4
ALPHA = 3
PAINTED = 255


def tag(name: str, /, *children: str, **attributes: str | int | bool) -> str:
    """Return one XML element of a labeling config; attribute values are escaped, True/False become "true"/"false"."""
    attrs = "".join(
        f" {key}={quoteattr(str(value).lower() if isinstance(value, bool) else str(value))}"
        for key, value in attributes.items()
    )
    return f"<{name}{attrs}>{''.join(children)}</{name}>" if children else f"<{name}{attrs}/>"


def choices_tag(name: str, to_name: str, values: Iterable[str], **attributes: str | int | bool) -> str:
    """Return a single-choice <Choices> control offering `values`."""
    return tag(
        "Choices", *(tag("Choice", value=v) for v in values), name=name, toName=to_name, choice="single", **attributes
    )


def rendered_frame(item: Item, index: int) -> Path:
    """Return where frame `index` of the item's run or pullback is cached as a rendered 8-bit image."""
    instance = item.dicom
    return render.frame_path(media_path(instance.frames_dir), index, instance.frame_format)


# ---------------------------------------------------------------------------------------------------- writing
def region(from_name: str, to_name: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"from_name": from_name, "to_name": to_name, "type": kind, "value": value}


def choice_region(from_name: str, to_name: str, choice: str) -> dict[str, Any]:
    return region(from_name, to_name, "choices", {"choices": [choice]})


def text_region(from_name: str, to_name: str, text: str) -> dict[str, Any]:
    return region(from_name, to_name, "textarea", {"text": [text]})


def number_region(from_name: str, to_name: str, number: int) -> dict[str, Any]:
    return region(from_name, to_name, "number", {"number": number})


def brush_region(from_name: str, to_name: str, label: str, mask: np.ndarray) -> dict[str, Any]:
    """Return a boolean (rows, columns) mask as a Label Studio brush region, encoded by the SDK's `mask2rle`."""
    from label_studio_sdk.converter.brush import mask2rle  # the SDK takes a second to import: only when used

    rows, columns = mask.shape
    painted = np.where(np.asarray(mask, dtype=bool), PAINTED, 0).astype(np.uint8)
    value = {"format": "rle", "rle": mask2rle(painted), "brushlabels": [label]}
    return {
        **region(from_name, to_name, "brushlabels", value),
        "original_width": int(columns),
        "original_height": int(rows),
        "image_rotation": 0,
    }


# ---------------------------------------------------------------------------------------------------- reading
class Regions:
    """The result regions of one Label Studio annotation, read by control name; a bad region is a LabelPayloadError
    naming its control."""

    def __init__(self, result: Any) -> None:
        if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
            raise LabelPayloadError("result", "must be a list of Label Studio result regions")
        self.by_name: dict[str, list[dict[str, Any]]] = {}
        for r in result:
            self.by_name.setdefault(str(r.get("from_name", "")), []).append(r)

    def all(self, name: str) -> list[dict[str, Any]]:
        return self.by_name.get(name, [])

    def _one(self, name: str, key: str) -> Any:
        found = self.all(name)
        if not found:
            return None
        if len(found) > 1:
            raise LabelPayloadError(name, f"{len(found)} results where one is expected")
        value = found[0].get("value")
        if not isinstance(value, dict) or key not in value:
            raise LabelPayloadError(name, f"the result has no value.{key}")
        return value[key]

    def choice(self, name: str, allowed: Sequence[str]) -> str | None:
        """Return the one choice made in control `name` (None when none), which must be one of `allowed`."""
        chosen = self._one(name, "choices")
        if chosen is None:
            return None
        if not isinstance(chosen, list) or len(chosen) != 1:
            raise LabelPayloadError(name, "choose exactly one")
        if chosen[0] not in allowed:
            raise LabelPayloadError(name, f"{chosen[0]!r} is not one of {', '.join(allowed)}")
        return chosen[0]

    def text(self, name: str) -> str | None:
        """Return the text entered in TextArea `name` (its lines joined), or None when nothing was entered."""
        lines = self._one(name, "text")
        if lines is None:
            return None
        if isinstance(lines, str):
            lines = [lines]
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise LabelPayloadError(name, "the text must be a list of strings")
        return "\n".join(lines) or None

    def number(self, name: str) -> int | None:
        """Return the whole number entered in Number `name`, or None when nothing was entered."""
        number = self._one(name, "number")
        if number is None:
            return None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number != int(number):
            raise LabelPayloadError(name, f"{number!r} is not a whole number")
        return int(number)

    def brush_mask(self, name: str, label: str, rows: int, columns: int) -> np.ndarray | None:
        """Return the union of the brush regions of control `name` as a boolean (rows, columns) mask, decoded by the
        SDK's `decode_rle`; None when there is none. Each region must be labelled `label` and drawn on an image of
        exactly the item's size."""
        from label_studio_sdk.converter.brush import decode_rle

        found = self.all(name)
        if not found:
            return None
        mask = np.zeros((rows, columns), dtype=bool)
        for index, r in enumerate(found):
            where = name if len(found) == 1 else f"{name}[{index}]"
            raw = r.get("value")
            value: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if value.get("format", "rle") != "rle" or not isinstance(value.get("rle"), list):
                raise LabelPayloadError(where, "a brush region must carry value.rle (format rle)")
            if value.get("brushlabels") != [label]:
                raise LabelPayloadError(where, f"a brush region must be labelled [{label!r}]")
            size = (r.get("original_height"), r.get("original_width"))
            if size != (rows, columns):
                raise LabelPayloadError(
                    where, f"drawn on a {size[0]}x{size[1]} image, but the frame is {rows}x{columns} (rows x columns)"
                )
            try:
                pixels = decode_rle(value["rle"])
            except (ValueError, IndexError, TypeError):
                raise LabelPayloadError(where, "value.rle is not Label Studio brush RLE") from None
            if pixels.size != rows * columns * BRUSH_CHANNELS:
                raise LabelPayloadError(
                    where,
                    f"value.rle holds {pixels.size} values; a {rows}x{columns} RGBA image has "
                    f"{rows * columns * BRUSH_CHANNELS}",
                )
            mask |= pixels.reshape(rows, columns, BRUSH_CHANNELS)[:, :, ALPHA] > 0
        return mask
