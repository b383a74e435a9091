"""SPECT territories: the 17-segment scores of each reading (stress and rest, as the label has them) and the LAD /
RCA / LCX roll-up with its abnormal flags, the annotator's overrides applied."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from annotation.exports.base import LABEL_KEY, Cell, ExportFile, TaskExporter, csv_bytes, label_key
from annotation.models import Label
from learning.domain import ABNORMAL_SUMMED_SCORE, SEGMENT_NAMES, SEGMENT_TERRITORY, SEGMENTS, TERRITORY_SEGMENTS
from learning.spect_scoring import territory_flags, territory_rollup

PHASES = ("stress", "rest")
SCORES_CSV = "spect_territory/segment_scores.csv"
TERRITORIES_CSV = "spect_territory/territories.csv"
SEGMENTS_CSV = "spect_territory/segments.csv"
SCORE_COLUMNS = (*LABEL_KEY, "phase", *(f"segment_{s}" for s in SEGMENTS))
TERRITORY_COLUMNS = (
    *LABEL_KEY,
    "territory",
    "segments",
    "sss",
    "srs",
    "sds",
    "abnormal_by_score",
    "override_abnormal",
    "override_reason",
    "abnormal",
)


class SpectExporter(TaskExporter):
    columns = (
        *(f"{phase}_{s}" for phase in PHASES for s in SEGMENTS),
        *(f"{territory}_abnormal" for territory in TERRITORY_SEGMENTS),
        *(f"{territory}_override_reason" for territory in TERRITORY_SEGMENTS),
    )
    describes = {
        SCORES_CSV: "per current label and phase (stress, rest): the 17 segment scores (0 normal … 4 absent)",
        TERRITORIES_CSV: (
            "per current label and territory: summed stress, rest and difference scores (SSS, SRS, SDS), abnormal "
            f"by score (SSS >= {ABNORMAL_SUMMED_SCORE}), the annotator's override and reason, and the final flag"
        ),
        SEGMENTS_CSV: "the AHA 17-segment model: each segment's name and coronary territory",
    }

    def label_row(self, label: Label) -> dict[str, Cell]:
        payload = label.payload
        overrides = payload.get("flag_overrides") or {}
        flags = territory_flags(territory_rollup(payload["stress"], payload["rest"]), overrides)
        row: dict[str, Cell] = {f"{phase}_{s}": payload[phase][s - 1] for phase in PHASES for s in SEGMENTS}
        for territory, abnormal in flags.items():
            row[f"{territory}_abnormal"] = abnormal
            row[f"{territory}_override_reason"] = overrides.get(territory, {}).get("reason", "")
        return row

    def files(self, labels: Iterable[Label]) -> Iterator[ExportFile]:
        scores, territories = [], []
        for label in labels:
            key = label_key(label)
            payload = label.payload
            for phase in PHASES:
                scores.append(key | {"phase": phase} | {f"segment_{s}": payload[phase][s - 1] for s in SEGMENTS})
            overrides = payload.get("flag_overrides") or {}
            rollup = territory_rollup(payload["stress"], payload["rest"])
            flags = territory_flags(rollup, overrides)
            for name, score in rollup.items():
                override = overrides.get(name) or {}
                territories.append(
                    key
                    | {
                        "territory": name,
                        "segments": " ".join(str(s) for s in TERRITORY_SEGMENTS[name]),
                        "sss": score.sss,
                        "srs": score.srs,
                        "sds": score.sds,
                        "abnormal_by_score": score.abnormal,
                        "override_abnormal": override.get("abnormal"),
                        "override_reason": override.get("reason", ""),
                        "abnormal": flags[name],
                    }
                )
        yield ExportFile(SCORES_CSV, csv_bytes(SCORE_COLUMNS, scores))
        yield ExportFile(TERRITORIES_CSV, csv_bytes(TERRITORY_COLUMNS, territories))
        legend: list[dict[str, Cell]] = [
            {"segment": s, "name": SEGMENT_NAMES[s - 1], "territory": SEGMENT_TERRITORY[s]} for s in SEGMENTS
        ]
        yield ExportFile(SEGMENTS_CSV, csv_bytes(("segment", "name", "territory"), legend))
