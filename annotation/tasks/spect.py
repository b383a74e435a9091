"""SPECT territories: 17-segment scores on rest/stress polar maps rolled up to LAD / RCA / LCX, with angiography
references where they exist. Items are rest + stress pairs of one patient, from DICOM files or PNGs + manifest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
from django.db.models import QuerySet
from django.urls import reverse

from annotation.ingest.dicom_file import polar_map_phases
from annotation.ingest.results import FileResult, Outcome, Reason, Rejection
from annotation.ingest.spect_manifest import import_manifest, is_manifest, is_png
from annotation.label_schemas import parse_spect
from annotation.models import IcaReference, Item, PolarMap, Project
from annotation.quality.agreement import spect_agreement
from annotation.tasks.base import LabelTask, StoredDicom
from learning.tasks import SpectRef

SEXES = {"F": 0.0, "M": 1.0}


class SpectTerritory(LabelTask):
    name = "spect_territory"
    title = "SPECT territories"
    default_modalities = ("NM", "OT")
    upload_hint = (
        "DICOM files (many at once) or zip archives, or PNG polar maps with a <code>manifest.csv</code> "
        "(patient,rest_file,stress_file,age,sex,weight,height)"
    )
    burned_in_check = False
    pairs_maps = True
    tool_script = "frontend/tools/spect_territory.js"
    tool_style = "frontend/tools/spect_territory.css"
    views_script = "frontend/tasks/spect_territory.js"
    input_relations = ("spect__rest", "spect__stress")

    # ------------------------------------------------------------------------------------------------ ingest
    def check_dicom(self, ds, frames: int) -> tuple[str, ...]:
        if frames > 2:
            raise Rejection(
                Reason.NOT_MULTIFRAME,
                f"{frames}-frame NM data is projection or tomographic data, not a polar map (one map per file, or a "
                "rest and a stress map as two frames)",
            )
        return polar_map_phases(ds, frames)

    def frame_cache(self) -> str | None:
        return "polar_maps"

    def locks_patient(self) -> bool:
        return True

    def items_from_dicom(self, stored: StoredDicom) -> int:
        from annotation.ingest.pipeline import pair_polar_map

        maps = [
            PolarMap.objects.create(
                project=stored.project,
                patient=stored.patient,
                study=stored.study,
                phase=phase,
                instance=stored.instance,
                frame_index=index,
                image_path=stored.paths.polar(str(index)),
                rows=stored.instance.rows,
                columns=stored.instance.columns,
                sha256=stored.sha256,
                clinical=asdict(stored.clinical),
            )
            for index, phase in enumerate(stored.phases)
        ]
        created = 0
        for polar in maps:  # a two-frame file's first map may have paired with its second already
            if polar.phase and PolarMap.objects.unpaired().filter(pk=polar.pk).exists():
                created += pair_polar_map(stored.project, stored.patient, stored.study, polar)
        return created

    def claims_upload(self, name: str) -> bool:
        return is_manifest(name) or is_png(name)

    def ingest_uploads(self, project: Project, files: Sequence) -> list[FileResult]:
        """Import every manifest with the PNGs of the same upload; a PNG no manifest row names is refused."""
        pngs = {f.name: f for f in files if is_png(f.name)}
        results: list[FileResult] = []
        used: set[str] = set()
        for manifest in (f for f in files if is_manifest(f.name)):
            results.extend(import_manifest(project, manifest, pngs, used))
        for name in sorted(set(pngs) - used):
            refused = "PNG not listed in any manifest row of this upload"
            results.append(FileResult(name, Outcome.REJECTED, str(Reason.NOT_IN_MANIFEST), refused))
        return results

    def item_ref(self, item: Item) -> SpectRef:
        exam = item.spect
        return SpectRef(
            item_id=item.pk,
            rest_path=exam.rest.image_path,
            stress_path=exam.stress.image_path,
            age=exam.age,
            sex=exam.sex,
            weight_kg=exam.weight_kg,
            height_cm=exam.height_cm,
        )

    # ------------------------------------------------------------------------------------------------ workspace
    def item_media(self, item: Item) -> dict:
        exam = item.spect
        return {
            "rest_url": reverse("api:item-polar-map", args=[item.pk, "rest"]),
            "stress_url": reverse("api:item-polar-map", args=[item.pk, "stress"]),
            "rows": exam.rest.rows,
            "columns": exam.rest.columns,
            "clinical": {"age": exam.age, "sex": exam.sex, "weight_kg": exam.weight_kg, "height_cm": exam.height_cm},
        }

    # ------------------------------------------------------------------------------------------------ labels
    def parse_label(self, payload: Any, item: Item):
        return parse_spect(payload, item)

    def reference_targets(self, project: Project, settings) -> dict | None:
        """On the ICA reference, each item's newest angiography row is its target instead of the labels."""
        if settings.spect_reference != "ica":
            return None
        from annotation.training_data import FinalTarget

        latest: dict[int, IcaReference] = {}
        for ica in IcaReference.objects.filter(item__project=project).order_by("item_id", "-created_at", "-id"):
            latest.setdefault(ica.item_id, ica)
        spec = self.learning()
        out = {}
        for item_id, ica in latest.items():
            values = {"LM": ica.stenosis_lm, "LAD": ica.stenosis_lad, "LCX": ica.stenosis_lcx, "RCA": ica.stenosis_rca}
            target = spec.target_from_payload({}, {"reference": "ica", "ica": values})
            if target is not None:
                out[item_id] = FinalTarget(target=target, ica_reference=ica)
        return out

    # ------------------------------------------------------------------------------------------------ quality
    def agreement(self, by_item) -> dict:
        return spect_agreement(by_item)

    def target_agreement(self, mine: Any, target: Any) -> float:
        return float(np.mean([x == y for x, y in zip(mine, target, strict=True)]))

    # ------------------------------------------------------------------------------------------------ queue
    def cold_start_rows(self, project: Project, items: QuerySet[Item]) -> dict[int, tuple]:
        return {
            pk: (age, SEXES.get(sex or "", 0.5), weight, height)
            for pk, age, sex, weight, height in items.values_list(
                "pk", "spect__age", "spect__sex", "spect__weight_kg", "spect__height_cm"
            ).iterator(chunk_size=10000)
        }
