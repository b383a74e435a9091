"""Vessel type on coronary angiography cine runs: LCA / RCA / neither, one label per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from annotation.label_schemas import LabelPayloadError, parse_vessel
from annotation.models import Item, ItemKind, Project
from annotation.quality.agreement import vessel_agreement
from annotation.tasks.base import LabelTask, StoredDicom
from annotation.tasks.frames import cine_frames_required, enqueue, frame_media, held_fields
from annotation.tasks.label_studio import Regions, choice_region, choices_tag, rendered_frame, tag, text_region
from learning.domain import UNUSABLE, VESSEL_CHOICES
from learning.tasks import CineRef

# The C-arm geometry of a run, as the instance stores it: the metadata models' and the cold start's features.
GEOMETRY = (
    "positioner_primary_angle",
    "positioner_secondary_angle",
    "distance_source_to_detector",
    "distance_source_to_patient",
)


class VesselType(LabelTask):
    name = "vessel_type"
    title = "Vessel type (angiography cine)"
    default_modalities = ("XA",)
    tool_script = "frontend/tools/vessel_type.js"
    tool_style = "frontend/tools/vessel_type.css"
    views_script = "frontend/tasks/vessel_type.js"
    input_relations = ("instance",)
    class_names = VESSEL_CHOICES

    def check_dicom(self, ds, frames: int) -> tuple[str, ...]:
        cine_frames_required(ds, frames, "cine run")
        return ()

    def items_from_dicom(self, stored: StoredDicom) -> int:
        from annotation.ingest.pipeline import view_name

        item = Item.objects.create(
            project=stored.project,
            kind=ItemKind.CINE_RUN,
            patient=stored.patient,
            instance=stored.instance,
            title=f"Run {stored.instance.pk} · {view_name(stored.instance)}",
            **held_fields(stored.held),
        )
        if not stored.held:
            enqueue(stored.project, [item.pk])
        return 1

    def item_ref(self, item: Item) -> CineRef:
        instance = item.dicom
        values = [getattr(instance, name) for name in GEOMETRY]
        geometry: tuple[float, float, float, float] | None = None  # unless all four were recorded
        if None not in values:
            primary, secondary, detector, patient = (float(v) for v in values)
            geometry = (primary, secondary, detector, patient)
        return CineRef(item_id=item.pk, path=instance.file_path, geometry=geometry)

    def item_media(self, item: Item) -> dict:
        from annotation.ingest.pipeline import view_name

        instance = item.dicom
        geometry = {name: getattr(instance, name) for name in GEOMETRY}
        return frame_media(item) | {"geometry": geometry | {"view": view_name(instance)}}

    def parse_label(self, payload: Any, item: Item):
        return parse_vessel(payload, item)

    def label_classes(self, payload: Any) -> tuple[str, ...]:
        vessel = payload.get("vessel") if isinstance(payload, dict) else None
        return (vessel,) if vessel in VESSEL_CHOICES else ()

    def predicted_classes(self, output: dict) -> tuple[str, ...]:
        vessel = output.get("vessel")
        return (vessel,) if vessel in VESSEL_CHOICES else ()

    def agreement(self, by_item) -> dict:
        return vessel_agreement(by_item)

    def exporter(self):
        from annotation.exports.vessel import VesselExporter  # highdicom and friends load only where an export runs

        return VesselExporter()

    def cold_start_rows(self, project: Project, items: QuerySet[Item]) -> dict[int, tuple]:
        fields = [f"instance__{name}" for name in GEOMETRY]
        return {pk: tuple(rest) for pk, *rest in items.values_list("pk", *fields).iterator(chunk_size=10000)}

    # ------------------------------------------------------------------------------------------------ Label Studio
    def label_studio_config(self) -> str:
        """The run's middle frame (contrast has usually filled the vessels by then), the answer, and the reason
        an unusable run needs."""
        reason = tag(
            "View",
            tag("Header", value="Why is the run unusable?", size=6),
            tag("TextArea", name="unusable_reason", toName="image", maxSubmissions=1, editable=True),
            visibleWhen="choice-selected",
            whenTagName="vessel",
            whenChoiceValue=UNUSABLE,
        )
        return tag(
            "View",
            tag("Header", value="$title"),
            tag("Image", name="image", value="$image", zoom=True),
            choices_tag("vessel", "image", VESSEL_CHOICES, required=True, showInline=True),
            reason,
        )

    def label_studio_images(self, item: Item) -> dict[str, Path]:
        return {"image": rendered_frame(item, item.dicom.number_of_frames // 2)}

    def label_studio_result(self, payload: Any, item: Item) -> list[dict]:
        regions = [choice_region("vessel", "image", payload["vessel"])]
        if reason := payload.get("unusable_reason", ""):
            regions.append(text_region("unusable_reason", "image", reason))
        return regions

    def label_studio_payload(self, regions: Regions, item: Item) -> dict:
        vessel = regions.choice("vessel", VESSEL_CHOICES)
        if vessel is None:
            raise LabelPayloadError("vessel", "no vessel chosen")
        payload = {"vessel": vessel}
        if reason := regions.text("unusable_reason"):
            payload["unusable_reason"] = reason
        return payload

    def label_studio_prediction(self, output: dict, item: Item) -> list[dict]:
        vessel = output.get("vessel")
        return [choice_region("vessel", "image", vessel)] if vessel in VESSEL_CHOICES else []
