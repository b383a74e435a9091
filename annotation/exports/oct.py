"""OCT calcium: per labelled frame and author, the mask as a PNG and as a DICOM Segmentation of the stored,
de-identified pullback, and an index of every current label (excluded frames with their reason)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import highdicom as hd
import numpy as np
from PIL import Image

from annotation.exports.base import (
    LABEL_KEY,
    Cell,
    ExportFile,
    TaskExporter,
    author_file_name,
    csv_bytes,
    label_key,
)
from annotation.exports.seg import SegSeries, SegSource
from annotation.ingest.store import media_path
from annotation.models import Label
from learning.masks import mask_decode

MASKS_CSV = "oct_calcium/masks.csv"
PNG_DIR = "oct_calcium/png"
SEG_DIR = "oct_calcium/seg"
CALCIUM = 255  # a PNG pixel of calcium; background is 0
MASK_COLUMNS = (
    *LABEL_KEY,
    "study_instance_uid",
    "series_instance_uid",
    "sop_instance_uid",
    "frame_index",
    "frame_number",
    "rows",
    "columns",
    "excluded",
    "exclusion_reason",
    "mask_pixels",
    "png",
    "seg",
    "seg_series_instance_uid",
    "seg_sop_instance_uid",
)


def mask_name(label: Label) -> str:
    """The file name (without extension) of a label's mask: its item and its author."""
    return f"item-{label.item_id}_{author_file_name(label.author.username, label.author_id)}"


def png_bytes(mask: np.ndarray) -> bytes:
    """Return the mask as an 8-bit greyscale PNG: 0 background, 255 calcium."""
    buffer = io.BytesIO()
    Image.fromarray(np.where(mask, CALCIUM, 0).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


class OctExporter(TaskExporter):
    relations = ("item__instance__series__study",)
    columns = ("excluded", "exclusion_reason", "mask_pixels", "mask_png", "mask_seg")
    describes = {
        MASKS_CSV: (
            "one row per current label: the pullback's de-identified UIDs, the frame (frame_index 0-based, "
            "frame_number 1-based as in DICOM), excluded frames with their reason, the calcium pixel count and the "
            "mask files"
        ),
        f"{PNG_DIR}/item-<item>_<author>.png": (
            f"the mask of a labelled frame, 8-bit greyscale at the frame's size: 0 background, {CALCIUM} calcium"
        ),
        f"{SEG_DIR}/item-<item>_<author>.dcm": (
            "the same mask as a DICOM Segmentation (BINARY, one segment 'Calcium'), one frame, referencing the "
            "stored de-identified pullback (Referenced SOP Instance UID, Referenced Frame Number); one series per "
            "pullback and author"
        ),
    }

    def label_row(self, label: Label) -> dict[str, Cell]:
        payload = label.payload
        if payload.get("excluded"):
            return {
                "excluded": True,
                "exclusion_reason": payload.get("exclusion_reason", ""),
                "mask_pixels": None,
                "mask_png": None,
                "mask_seg": None,
            }
        name = mask_name(label)
        current = label.superseded_at is None  # only current labels have mask files
        return {
            "excluded": False,
            "exclusion_reason": "",
            "mask_pixels": int(mask_decode(payload["mask"]).sum()),
            "mask_png": f"{PNG_DIR}/{name}.png" if current else None,
            "mask_seg": f"{SEG_DIR}/{name}.dcm" if current else None,
        }

    def files(self, labels: Iterable[Label]) -> Iterator[ExportFile]:
        rows: list[dict[str, Cell]] = []
        series: dict[tuple[int, int], SegSeries] = {}
        source: SegSource | None = None  # the pullback of the previous label: labels come in item order
        for label in labels:
            item = label.item
            instance = item.dicom
            frame = item.frame_index or 0
            row = label_key(label) | {
                "study_instance_uid": instance.series.study.study_instance_uid,
                "series_instance_uid": instance.series.series_instance_uid,
                "sop_instance_uid": instance.sop_instance_uid,
                "frame_index": frame,
                "frame_number": frame + 1,
                "rows": instance.rows,
                "columns": instance.columns,
                "excluded": bool(label.payload.get("excluded")),
                "exclusion_reason": label.payload.get("exclusion_reason", ""),
                "mask_pixels": None,
                "png": None,
                "seg": None,
                "seg_series_instance_uid": None,
                "seg_sop_instance_uid": None,
            }
            rows.append(row)
            if row["excluded"]:
                continue
            mask = mask_decode(label.payload["mask"])
            name = mask_name(label)
            png = f"{PNG_DIR}/{name}.png"
            yield ExportFile(png, png_bytes(mask), label_id=label.pk, compress=False)

            if source is None or source.sop_instance_uid != instance.sop_instance_uid:
                path = media_path(instance.file_path)
                if not path.is_file():
                    raise FileNotFoundError(f"the stored file of pullback {instance.pk} is missing from storage")
                source = SegSource(path)
            key = (instance.pk, label.author_id)
            if key not in series:
                username = label.author.username
                series[key] = SegSeries(uid=hd.UID(), number=len(series) + 1, description=f"Calcium by {username}")
            seg = source.segmentation(
                frame_index=frame,
                mask=mask,
                series=series[key],
                instance_number=frame + 1,
                author=label.author.username,
                description=f"Lumen label {label.pk} version {label.version}",
            )
            buffer = io.BytesIO()
            seg.save_as(buffer, enforce_file_format=True)
            seg_path = f"{SEG_DIR}/{name}.dcm"
            yield ExportFile(seg_path, buffer.getvalue(), label_id=label.pk)
            row.update(
                mask_pixels=int(mask.sum()),
                png=png,
                seg=seg_path,
                seg_series_instance_uid=series[key].uid,
                seg_sop_instance_uid=str(seg.SOPInstanceUID),
            )
        yield ExportFile(MASKS_CSV, csv_bytes(MASK_COLUMNS, rows))
