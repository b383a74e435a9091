"""SPECT territories: 17-segment scores on rest/stress polar maps rolled up to LAD / RCA / LCX, with angiography
references where they exist. Items are rest + stress pairs of one patient, from DICOM files or PNGs + manifest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from django.db.models import QuerySet
from django.urls import reverse

from annotation.ingest.dicom_file import polar_map_phases
from annotation.ingest.results import FileResult, Outcome, Reason, Rejection
from annotation.ingest.spect_manifest import import_manifest, is_manifest, is_png
from annotation.ingest.store import media_path
from annotation.label_schemas import LabelPayloadError, parse_spect
from annotation.models import IcaReference, Item, PolarMap, Project
from annotation.quality.agreement import spect_agreement
from annotation.tasks.base import LabelTask, StoredDicom
from annotation.tasks.label_studio import Regions, choice_region, choices_tag, number_region, tag, text_region
from learning.domain import MAX_SEGMENT_SCORE, SEGMENT_NAMES, SEGMENT_SCORE_WORDS, SEGMENTS, TERRITORIES
from learning.spect_scoring import territory_rollup
from learning.tasks import SpectRef

SEXES = {"F": 0.0, "M": 1.0}
NORMAL = "normal"  # the class of a patient with no abnormal territory
# A territory flag as Label Studio offers it.
ABNORMAL = "abnormal"
FLAGS = (ABNORMAL, NORMAL)


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
    # A patient's classes are their abnormal territories (after the reader's overrides), or "normal".
    class_names = (*TERRITORIES, NORMAL)

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

    def label_classes(self, payload: Any) -> tuple[str, ...]:
        return _flagged(self.learning().target_from_payload(payload))

    def predicted_classes(self, output: dict) -> tuple[str, ...]:
        return _flagged(self.learning().target_from_output(output))

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
    def exporter(self):
        from annotation.exports.spect import SpectExporter  # highdicom and friends load only where an export runs

        return SpectExporter()

    def cold_start_rows(self, project: Project, items: QuerySet[Item]) -> dict[int, tuple]:
        return {
            pk: (age, SEXES.get(sex or "", 0.5), weight, height)
            for pk, age, sex, weight, height in items.values_list(
                "pk", "spect__age", "spect__sex", "spect__weight_kg", "spect__height_cm"
            ).iterator(chunk_size=10000)
        }

    # ------------------------------------------------------------------------------------------------ Label Studio
    def label_studio_config(self) -> str:
        """Both maps, a Number 0–4 per segment and phase (34, all required), and per territory an optional flag
        override with its reason."""
        scale = ", ".join(f"{score} {word}" for score, word in enumerate(SEGMENT_SCORE_WORDS))
        grid = [tag("Header", value=name, size=6) for name in ("Segment", "Stress", "Rest")]
        for segment, name in zip(SEGMENTS, SEGMENT_NAMES, strict=True):
            grid.append(tag("Header", value=f"{segment} {name}", size=6))
            for phase in ("stress", "rest"):
                grid.append(
                    tag("Number", name=f"{phase}_{segment}", toName=phase, min=0, max=MAX_SEGMENT_SCORE, required=True)
                )
        overrides = [
            tag(
                "View",
                tag("Header", value=territory, size=6),
                choices_tag(f"flag_{territory}", "stress", FLAGS, showInline=True),
                tag("TextArea", name=f"flag_{territory}_reason", toName="stress", maxSubmissions=1, editable=True),
                style="display: flex; gap: 1em; align-items: center",
            )
            for territory in TERRITORIES
        ]
        maps = [
            tag("View", tag("Header", value=phase.title(), size=5), tag("Image", name=phase, value=f"${phase}"))
            for phase in ("rest", "stress")
        ]
        return tag(
            "View",
            tag("Header", value="$title"),
            tag("View", *maps, style="display: flex; gap: 1em"),
            tag("Header", value=f"Segment scores: {scale}", size=6),
            tag("View", *grid, style="display: grid; grid-template-columns: repeat(3, max-content); gap: 0 1em"),
            tag("Header", value="Territory flags: only to override what the stress scores give, with a reason", size=6),
            *overrides,
        )

    def label_studio_images(self, item: Item) -> dict[str, Path]:
        exam = item.spect
        return {"rest": media_path(exam.rest.image_path), "stress": media_path(exam.stress.image_path)}

    def label_studio_result(self, payload: Any, item: Item) -> list[dict]:
        regions = [
            number_region(f"{phase}_{segment}", phase, payload[phase][segment - 1])
            for phase in ("stress", "rest")
            for segment in SEGMENTS
        ]
        for territory, override in (payload.get("flag_overrides") or {}).items():
            flag = ABNORMAL if override["abnormal"] else NORMAL
            regions.append(choice_region(f"flag_{territory}", "stress", flag))
            regions.append(text_region(f"flag_{territory}_reason", "stress", override["reason"]))
        return regions

    def label_studio_payload(self, regions: Regions, item: Item) -> dict:
        """A flag with a reason is an override; a flag without one must agree with the stress scores (it is then
        no override), and a reason without a flag is refused."""
        scores: dict[str, list[int]] = {}
        for phase in ("stress", "rest"):
            scores[phase] = []
            for segment, name in zip(SEGMENTS, SEGMENT_NAMES, strict=True):
                field = f"{phase}_{segment}"
                score = regions.number(field)
                if score is None:
                    raise LabelPayloadError(field, f"no {phase} score for segment {segment} ({name})")
                if not 0 <= score <= MAX_SEGMENT_SCORE:
                    raise LabelPayloadError(field, f"segment score must be an integer 0–{MAX_SEGMENT_SCORE}")
                scores[phase].append(score)
        rollup = territory_rollup(scores["stress"], scores["rest"])
        overrides = {}
        for territory in TERRITORIES:
            flag = regions.choice(f"flag_{territory}", FLAGS)
            reason = regions.text(f"flag_{territory}_reason") or ""
            if flag is not None and reason.strip():
                overrides[territory] = {"abnormal": flag == ABNORMAL, "reason": reason}
            elif reason.strip():
                raise LabelPayloadError(
                    f"flag_{territory}", f"a reason without a flag: mark {territory} {' or '.join(FLAGS)}"
                )
            elif flag is not None and (flag == ABNORMAL) != rollup[territory].abnormal:
                given = ABNORMAL if rollup[territory].abnormal else NORMAL
                raise LabelPayloadError(
                    f"flag_{territory}_reason",
                    f"{territory} is marked {flag}, but its summed stress score {rollup[territory].sss} makes it "
                    f"{given}: overriding the scores needs a reason",
                )
        return {"stress": scores["stress"], "rest": scores["rest"], "flag_overrides": overrides}

    def label_studio_prediction(self, output: dict, item: Item) -> list[dict]:
        """The model's territory flags, as flags to confirm (it predicts no segment scores)."""
        abnormal = output.get("abnormal") or {}
        return [
            choice_region(f"flag_{territory}", "stress", ABNORMAL if abnormal[territory] else NORMAL)
            for territory in TERRITORIES
            if isinstance(abnormal.get(territory), bool)
        ]

    def item_key(self, item: Item) -> str:
        exam = item.spect
        return "|".join(
            f"{polar.instance.sop_instance_uid}/{polar.frame_index}" if polar.instance else f"png/{polar.sha256}"
            for polar in (exam.rest, exam.stress)
        )


def _flagged(flags: list[int] | None) -> tuple[str, ...]:
    """Return the abnormal territories of [LAD, RCA, LCX] flags, "normal" when none is; () without flags."""
    if flags is None:
        return ()
    return tuple(name for name, flag in zip(TERRITORIES, flags, strict=True) if flag) or (NORMAL,)
