"""Calcium masks on intravascular OCT pullback frames: one item per frame, brush masks, excluded frames."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from annotation.label_schemas import parse_oct
from annotation.models import Item, ItemKind, Project
from annotation.quality.agreement import oct_agreement
from annotation.tasks.base import LabelTask, StoredDicom
from annotation.tasks.frames import cine_frames_required, enqueue, frame_media, held_fields
from learning import metrics
from learning.masks import mask_decode
from learning.tasks import OctFrameRef


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

    def cold_start_rows(self, project: Project, items: QuerySet[Item]) -> dict[int, tuple]:
        from annotation.services.queue import stable_draw

        return {
            pk: ((index or 0) / max(frames or 1, 1), stable_draw(project.pk, instance or 0, "pullback"))
            for pk, index, frames, instance in items.values_list(
                "pk", "frame_index", "instance__number_of_frames", "instance_id"
            ).iterator(chunk_size=10000)
        }
