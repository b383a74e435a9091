"""12-lead ECGs of a project: their signal for the plot, and ECG ↔ per-vessel stenosis pairs for training (seed 004).

Storing an ECG is part of the import (`annotation.ingest.ecg`: the same de-identification and patient as images).

The pairs follow the paper's three tasks on each vessel's maximum stenosis (LM, LAD, LCX, RCA):

- ``label_0_vs_100``: 0 when the maximum is exactly 0 %, 1 when it is exactly 100 %, blank otherwise;
- ``label_0_vs_ge90``: 0 at 0 %, 1 at 90 % or more, blank otherwise;
- ``label_lt70_vs_ge70``: 1 at 70 % or more, else 0 (every known value takes part).

A patient's maximum per vessel is taken over the lesions of every *current* report (not superseded) of the
patient's studies in the project; a vessel no lesion names is 0 %. A patient with no current report has no pairs.
A PDA / PLA lesion (segments 4 and 16) in a report without a recorded dominance may belong to the RCA or the LCX:
those two vessels' values are then unknown (blank maximum and labels, with a note) unless the lesion cannot change
them (its stenosis is no more than the vessel's maximum from the other lesions). The summary counts such values.

Pairs go by patient, not by date: each of a patient's ECGs is paired with the patient's current reports, and the
ECG's recording time is a column (dates are shifted per patient, so intervals to the studies survive).

Splits are by patient, so no patient is in two: a patient with items in the project keeps their items' split
(`annotation.services.splits`); any other patient gets `patient_split` of the pseudonym, the keyed hash against
the project's fractions that items use (no new patient joins a locked test set).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pydicom

from annotation.ingest.ecg import EcgGroup, group_samples, twelve_lead_group
from annotation.ingest.results import Rejection
from annotation.ingest.store import media_path
from annotation.models import Ecg, ExamReport, Item, Project, Split
from annotation.project_settings import parse_settings
from annotation.services.splits import patient_split
from learning.domain import DOMINANCE_SEGMENTS, STENOSIS_VESSELS, segment_vessels

# The longest stretch of signal one request returns (an ambulatory recording lasts hours).
MAX_WINDOW_SECONDS = 60.0
PAIR_COLUMNS = [
    "patient",
    "ecg_id",
    "ecg_sop_instance_uid",
    "ecg_acquired_at",
    "vessel",
    "max_stenosis_percent",
    "label_0_vs_100",
    "label_0_vs_ge90",
    "label_lt70_vs_ge70",
    "split",
    "note",
]
AMBIGUOUS_VESSELS = ("LCX", "RCA")  # where a PDA / PLA lesion may belong when the dominance is not recorded


class EcgInputError(ValueError):
    """A bad request about an ECG; `field` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class EcgFileUnreadable(RuntimeError):
    """The stored file of an ECG is missing or no longer holds its 12-lead group."""


@dataclass(frozen=True)
class EcgSignal:
    """A window of an ECG's 12-lead group: per lead, its samples in the channel's units (as stored, e.g. uV)."""

    leads: list[str]
    units: list[str]
    sampling_frequency: float
    total_samples: int
    start_sample: int
    samples: list[list[float]]  # one list per lead, in channel order

    @property
    def duration_s(self) -> float:
        return self.total_samples / self.sampling_frequency


def ecg_duration_s(ecg: Ecg) -> float:
    return ecg.sample_count / ecg.sampling_frequency if ecg.sampling_frequency else 0.0


def ecg_signal(*, ecg: Ecg, start: float = 0.0, seconds: float | None = None) -> EcgSignal:
    """Return the samples of `ecg` from `start` seconds for `seconds` (the rest, at most MAX_WINDOW_SECONDS)."""
    if not np.isfinite(start) or start < 0:
        raise EcgInputError("start", "must be a number of seconds, 0 or more")
    if seconds is not None and (not np.isfinite(seconds) or seconds <= 0 or seconds > MAX_WINDOW_SECONDS):
        raise EcgInputError("seconds", f"must be more than 0 and at most {MAX_WINDOW_SECONDS:g}")
    ds, group = _read(ecg)
    first = int(round(start * group.sampling_frequency)) if start < group.duration_s else group.sample_count
    if first >= group.sample_count:
        raise EcgInputError("start", f"is past the end of the recording ({group.duration_s:g} s)")
    span = min(seconds or MAX_WINDOW_SECONDS, MAX_WINDOW_SECONDS)
    last = min(group.sample_count, first + max(1, int(round(span * group.sampling_frequency))))
    values = group_samples(ds, group)[first:last]
    return EcgSignal(
        leads=list(group.leads),
        units=list(group.units),
        sampling_frequency=group.sampling_frequency,
        total_samples=group.sample_count,
        start_sample=first,
        samples=[values[:, channel].tolist() for channel in range(values.shape[1])],
    )


def _read(ecg: Ecg) -> tuple[pydicom.Dataset, EcgGroup]:
    path = media_path(ecg.file_path)
    try:
        ds = pydicom.dcmread(path)
        return ds, twelve_lead_group(ds)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise EcgFileUnreadable(f"the stored file of ECG {ecg.pk} cannot be read ({type(exc).__name__})") from None
    except Rejection as rejection:
        raise EcgFileUnreadable(f"the stored file of ECG {ecg.pk}: {rejection.message}") from None


# --- Pairs ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VesselValue:
    """A patient's maximum stenosis in one vessel, or None when an unlinked PDA / PLA lesion leaves it unknown."""

    percent: int | None
    note: str = ""


@dataclass
class PairsSummary:
    ecgs: int = 0
    ecgs_paired: int = 0
    ecgs_without_report: int = 0
    rows: int = 0
    unknown_values: int = 0  # (ECG, vessel) rows left blank: a PDA / PLA lesion without a recorded dominance
    positives: dict[str, int] = field(default_factory=dict)  # per label column
    negatives: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EcgPairs:
    rows: list[dict[str, str]]
    summary: PairsSummary


def threshold_labels(percent: int) -> dict[str, str]:
    """Return the three label columns for a vessel's maximum stenosis: "0", "1", or "" (not in that task)."""
    return {
        "label_0_vs_100": "0" if percent == 0 else "1" if percent == 100 else "",
        "label_0_vs_ge90": "0" if percent == 0 else "1" if percent >= 90 else "",
        "label_lt70_vs_ge70": "1" if percent >= 70 else "0",
    }


def patient_vessel_stenosis(*, project: Project, patient_ids: set[int]) -> dict[int, dict[str, VesselValue]]:
    """Return each patient's maximum stenosis per vessel over their current reports (patients without one: absent)."""
    known: dict[int, dict[str, int]] = {}
    unlinked: dict[int, int] = {}  # the largest PDA / PLA stenosis reported without a dominance
    reports = (
        ExamReport.objects.filter(project=project, superseded_at__isnull=True, study__patient_id__in=patient_ids)
        .select_related("study")
        .prefetch_related("lesions")
    )
    for report in reports:
        patient = report.study.patient_id
        values = known.setdefault(patient, dict.fromkeys(STENOSIS_VESSELS, 0))
        for lesion in report.lesions.all():
            vessels = segment_vessels(lesion.segment, report.dominance)
            if not vessels and lesion.segment in DOMINANCE_SEGMENTS:
                unlinked[patient] = max(unlinked.get(patient, 0), lesion.stenosis_percent)
            for vessel in vessels:
                values[vessel] = max(values[vessel], lesion.stenosis_percent)
    result: dict[int, dict[str, VesselValue]] = {}
    for patient, values in known.items():
        ambiguous = unlinked.get(patient)
        result[patient] = {}
        for vessel in STENOSIS_VESSELS:
            if ambiguous is not None and vessel in AMBIGUOUS_VESSELS and ambiguous > values[vessel]:
                note = (
                    f"unknown: a PDA/PLA lesion of {ambiguous} % in a report without a recorded dominance may "
                    f"belong to the {vessel} (otherwise {values[vessel]} %)"
                )
                result[patient][vessel] = VesselValue(None, note)
            else:
                result[patient][vessel] = VesselValue(values[vessel])
    return result


def patient_splits(*, project: Project, patients: dict[int, str]) -> dict[int, str]:
    """Return the split of each patient (id → pseudonym): their items' split, else the keyed hash of the pseudonym."""
    settings = parse_settings(project.task_type, project.settings)
    by_items: dict[int, set[str]] = defaultdict(set)
    rows = (
        Item.objects.filter(project=project, patient_id__in=patients)
        .exclude(split=Split.UNASSIGNED)
        .values_list("patient_id", "split")
        .distinct()
    )
    for patient_id, split in rows:
        by_items[patient_id].add(split)
    splits: dict[int, str] = {}
    for patient_id, pseudonym in patients.items():
        held = by_items.get(patient_id)
        # Items keep a patient in one split (splits_fill); should they not, the most held-out one wins.
        if held:
            split = next(s for s in (Split.TEST, Split.VALIDATION, Split.TRAIN) if s in held)
        else:
            split = patient_split(pseudonym, settings, allow_test=not settings.test_set_locked)
        splits[patient_id] = str(split)
    return splits


def ecg_pairs(*, project: Project) -> EcgPairs:
    """Return one row per (ECG, vessel) of the project's ECGs whose patient has a current report, and a summary."""
    ecgs = list(
        Ecg.objects.filter(project=project)
        .select_related("patient")
        .order_by("patient__pseudonym", "acquired_at", "id")
    )
    patients = {ecg.patient_id: ecg.patient.pseudonym for ecg in ecgs}
    stenosis = patient_vessel_stenosis(project=project, patient_ids=set(patients))
    splits = patient_splits(project=project, patients=patients)
    summary = PairsSummary(ecgs=len(ecgs))
    label_columns = list(threshold_labels(0))
    summary.positives = dict.fromkeys(label_columns, 0)
    summary.negatives = dict.fromkeys(label_columns, 0)
    rows: list[dict[str, str]] = []
    for ecg in ecgs:
        values = stenosis.get(ecg.patient_id)
        if values is None:
            summary.ecgs_without_report += 1
            continue
        summary.ecgs_paired += 1
        for vessel in STENOSIS_VESSELS:
            value = values[vessel]
            labels = threshold_labels(value.percent) if value.percent is not None else dict.fromkeys(label_columns, "")
            if value.percent is None:
                summary.unknown_values += 1
            for column, label in labels.items():
                if label == "1":
                    summary.positives[column] += 1
                elif label == "0":
                    summary.negatives[column] += 1
            rows.append(
                {
                    "patient": ecg.patient.pseudonym,
                    "ecg_id": str(ecg.pk),
                    "ecg_sop_instance_uid": ecg.sop_instance_uid,
                    "ecg_acquired_at": ecg.acquired_at.isoformat() if ecg.acquired_at else "",
                    "vessel": vessel,
                    "max_stenosis_percent": "" if value.percent is None else str(value.percent),
                    **labels,
                    "split": splits[ecg.patient_id],
                    "note": value.note,
                }
            )
    summary.rows = len(rows)
    return EcgPairs(rows=rows, summary=summary)


def ecg_pairs_export(*, project: Project) -> str:
    """Return the project's ECG ↔ per-vessel stenosis pairs as CSV text (columns: PAIR_COLUMNS)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PAIR_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(ecg_pairs(project=project).rows)
    return buffer.getvalue()
