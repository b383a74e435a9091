"""Vessel type: each run's class per annotator, with the de-identified UIDs of the run, and the class legend."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from annotation.exports.base import LABEL_KEY, Cell, ExportFile, TaskExporter, csv_bytes, label_key
from annotation.models import Label
from learning.domain import UNUSABLE, VESSEL_CHOICES, VESSEL_CLASSES

CLASSES_CSV = "vessel_type/classes.csv"
LEGEND_JSON = "vessel_type/classes.json"
CLASS_COLUMNS = (
    *LABEL_KEY,
    "study_instance_uid",
    "series_instance_uid",
    "sop_instance_uid",
    "vessel",
    "class_index",
    "unusable_reason",
)


class VesselExporter(TaskExporter):
    relations = ("item__instance__series__study",)
    columns = ("vessel", "unusable_reason")
    describes = {
        CLASSES_CSV: (
            "one row per current label: the run's de-identified study, series and SOP instance UIDs, the answer "
            "(vessel), its index in the model classes (class_index; empty for 'unusable') and the unusable reason"
        ),
        LEGEND_JSON: "the model classes in index order, and every answer an annotator can give",
    }

    def label_row(self, label: Label) -> dict[str, Cell]:
        return {"vessel": label.payload.get("vessel"), "unusable_reason": label.payload.get("unusable_reason", "")}

    def files(self, labels: Iterable[Label]) -> Iterator[ExportFile]:
        rows = []
        for label in labels:
            instance = label.item.dicom
            vessel = label.payload.get("vessel")
            rows.append(
                label_key(label)
                | {
                    "study_instance_uid": instance.series.study.study_instance_uid,
                    "series_instance_uid": instance.series.series_instance_uid,
                    "sop_instance_uid": instance.sop_instance_uid,
                    "vessel": vessel,
                    "class_index": VESSEL_CLASSES.index(vessel) if vessel in VESSEL_CLASSES else None,
                    "unusable_reason": label.payload.get("unusable_reason", ""),
                }
            )
        yield ExportFile(CLASSES_CSV, csv_bytes(CLASS_COLUMNS, rows))
        legend = {"classes": list(VESSEL_CLASSES), "answers": list(VESSEL_CHOICES), "not_a_class": UNUSABLE}
        yield ExportFile(LEGEND_JSON, json.dumps(legend, indent=2).encode())
