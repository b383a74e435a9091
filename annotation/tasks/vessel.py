"""Vessel type on coronary angiography cine runs: LCA / RCA / neither, one label per run."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from annotation.label_schemas import parse_vessel
from annotation.models import Item, ItemKind, Project
from annotation.quality.agreement import vessel_agreement
from annotation.tasks.base import LabelTask, StoredDicom
from annotation.tasks.frames import cine_frames_required, enqueue, frame_media, held_fields
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

    def agreement(self, by_item) -> dict:
        return vessel_agreement(by_item)

    def cold_start_rows(self, project: Project, items: QuerySet[Item]) -> dict[int, tuple]:
        fields = [f"instance__{name}" for name in GEOMETRY]
        return {pk: tuple(rest) for pk, *rest in items.values_list("pk", *fields).iterator(chunk_size=10000)}
