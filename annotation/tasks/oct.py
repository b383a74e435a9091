"""Calcium masks on intravascular OCT pullback frames: one item per frame, brush masks, excluded frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from django.db.models import QuerySet

from annotation.label_schemas import EXCLUSION_REASONS, LabelPayloadError, parse_oct
from annotation.models import Item, ItemKind, Project
from annotation.quality.agreement import oct_agreement
from annotation.tasks.base import LabelTask, StoredDicom
from annotation.tasks.frames import cine_frames_required, enqueue, frame_media, held_fields
from annotation.tasks.label_studio import Regions, brush_region, choice_region, choices_tag, rendered_frame, tag
from learning import metrics
from learning.masks import MaskFormatError, mask_decode, mask_encode
from learning.tasks import OctFrameRef

# Label Studio offers the exclusion reasons in words; a label stores their codes.
EXCLUSION_WORDS = {reason: reason.replace("_", " ") for reason in EXCLUSION_REASONS}
CALCIUM = "calcium"


class OctCalcium(LabelTask):
    name = "oct_calcium"
    title = "Calcium masks (IVOCT)"
    default_modalities = ("IVOCT",)
    shows_predictions = True
    prediction_hint = " (as an editable starting mask)"
    frame_agreement = True
    tool_script = "frontend/tools/oct_calcium.js"
    tool_style = "frontend/tools/oct_calcium.css"
    views_script = "frontend/tasks/oct_calcium.js"
    input_relations = ("instance",)

    def check_dicom(self, ds, frames: int) -> tuple[str, ...]:
        cine_frames_required(ds, frames, "pullback")
        return ()

    def frame_cache(self) -> str | None:
        return "pullback"

    def items_from_dicom(self, stored: StoredDicom) -> int:
        n = stored.frames
        Item.objects.bulk_create(
            Item(
                project=stored.project,
                kind=ItemKind.OCT_FRAME,
                patient=stored.patient,
                instance=stored.instance,
                frame_index=index,
                title=f"Pullback {stored.instance.pk} · frame {index + 1}/{n}",
                **held_fields(stored.held),
            )
            for index in range(n)
        )
        if not stored.held:
            enqueue(stored.project, list(Item.objects.filter(instance=stored.instance).values_list("pk", flat=True)))
        return n

    def item_ref(self, item: Item) -> OctFrameRef:
        return OctFrameRef(
            item_id=item.pk,
            path=item.dicom.file_path,
            frame_index=item.frame_index or 0,
            rows=item.dicom.rows,
            columns=item.dicom.columns,
        )

    def item_media(self, item: Item) -> dict:
        return frame_media(item) | {"pullback": item.instance_id}

    def parse_label(self, payload: Any, item: Item):
        return parse_oct(payload, item)

    def agreement(self, by_item) -> dict:
        return oct_agreement(by_item)

    def target_agreement(self, mine: Any, target: Any) -> float:
        a, b = mask_decode(mine), mask_decode(target)
        return float(metrics.dice(a, b)) if a.shape == b.shape else 0.0

    def exporter(self):
        from annotation.exports.oct import OctExporter  # highdicom and friends load only where an export runs

        return OctExporter()

    def cold_start_rows(self, project: Project, items: QuerySet[Item]) -> dict[int, tuple]:
        from annotation.services.queue import stable_draw

        return {
            pk: ((index or 0) / max(frames or 1, 1), stable_draw(project.pk, instance or 0, "pullback"))
            for pk, index, frames, instance in items.values_list(
                "pk", "frame_index", "instance__number_of_frames", "instance_id"
            ).iterator(chunk_size=10000)
        }

    # ------------------------------------------------------------------------------------------------ Label Studio
    def label_studio_config(self) -> str:
        """The frame, a calcium brush, and the reason an excluded frame (which carries no mask) is left out."""
        return tag(
            "View",
            tag("Header", value="$title"),
            tag("Image", name="image", value="$image", zoom=True, zoomControl=True),
            tag("BrushLabels", tag("Label", value=CALCIUM, background="#e8590c"), name=CALCIUM, toName="image"),
            tag("Header", value="Exclude the frame (it then carries no mask) because of", size=6),
            choices_tag("excluded", "image", EXCLUSION_WORDS.values(), showInline=True),
        )

    def label_studio_images(self, item: Item) -> dict[str, Path]:
        return {"image": rendered_frame(item, item.frame_index or 0)}

    def label_studio_result(self, payload: Any, item: Item) -> list[dict]:
        if payload.get("excluded"):
            return [choice_region("excluded", "image", EXCLUSION_WORDS[payload["exclusion_reason"]])]
        mask = mask_decode(payload["mask"])
        return [brush_region(CALCIUM, "image", CALCIUM, mask)] if mask.any() else []

    def label_studio_payload(self, regions: Regions, item: Item) -> dict:
        """An exclusion reason excludes the frame; otherwise the union of the calcium strokes is the mask (none: an
        empty mask, a frame without calcium)."""
        rows, columns = item.dicom.rows, item.dicom.columns
        words = regions.choice("excluded", tuple(EXCLUSION_WORDS.values()))
        mask = regions.brush_mask(CALCIUM, CALCIUM, rows, columns)
        if words is not None:
            if mask is not None and mask.any():
                raise LabelPayloadError("excluded", "an excluded frame carries no calcium mask: clear one of the two")
            reason = next(code for code, said in EXCLUSION_WORDS.items() if said == words)
            return {"excluded": True, "exclusion_reason": reason}
        if mask is None:
            mask = np.zeros((rows, columns), dtype=bool)
        return {"excluded": False, "mask": mask_encode(mask)}

    def label_studio_prediction(self, output: dict, item: Item) -> list[dict]:
        try:
            mask = mask_decode(output.get("mask"))
        except MaskFormatError:
            return []
        if mask.shape != (item.dicom.rows, item.dicom.columns) or not mask.any():
            return []
        return [brush_region(CALCIUM, "image", CALCIUM, mask)]
