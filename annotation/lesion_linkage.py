"""Reads behind lesion linkage: which runs of an exam show each reported lesion, and why some cannot be linked.

A run's vessel type is a human's when anyone holds a current label of it (an adjudicated label wins, then a lead's,
then the annotators' when they agree; annotators who disagree leave it untyped, the model does not break the tie),
else the champion model's class when its probability reaches the project's `lesion_link_confidence`. A lesion
links to the runs typed as one of `learning.domain.segment_arteries(segment, dominance)`; runs typed neither or
unusable, and runs a lead excluded, never link.

Exam flags: `dominance_unknown` (a PDA / PLA lesion and no recorded dominance), `no_run_of_artery` (a lesion none of
the exam's typed runs shows; under codominance either artery's runs suffice) and `untyped_runs` (runs still without
a usable type: they may link once typed). The first two make the exam ambiguous: its lesions are listed, but none of
its pairs is exported for training, since a missing artery often means a mistyped run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from annotation.models import (
    ExamReport,
    Item,
    ItemKind,
    Label,
    LabelSource,
    Lesion,
    ModelStatus,
    Prediction,
    Project,
    Role,
)
from annotation.project_settings import parse_settings
from learning.domain import CORONARY_ARTERIES, CORONARY_SEGMENT_NAMES, segment_arteries

# Exam flags: the first two make an exam ambiguous.
DOMINANCE_UNKNOWN = "dominance_unknown"
NO_RUN_OF_ARTERY = "no_run_of_artery"
UNTYPED_RUNS = "untyped_runs"
AMBIGUOUS_FLAGS = (DOMINANCE_UNKNOWN, NO_RUN_OF_ARTERY)
FLAGS = (*AMBIGUOUS_FLAGS, UNTYPED_RUNS)

# Where a run's vessel type came from; and, for a run without one, why (in words a lead reads).
BASIS_LABEL, BASIS_MODEL, BASIS_NONE = "label", "model", "none"
BASES = (BASIS_LABEL, BASIS_MODEL, BASIS_NONE)
PAIR_COLUMNS = (
    "patient_pseudonym",
    "study_instance_uid",
    "sop_instance_uid",
    "item_id",
    "lesion_id",
    "artery",
    "vessel_basis",
    "vessel_probability",
    "segment",
    "segment_name",
    "stenosis_percent",
    "dominance",
    "split",
)
NO_TYPE_REASONS = {
    "excluded": "excluded by a lead: excluded runs never link",
    "disputed": "its annotators disagree and nobody has settled it",
    "low_confidence": "the champion model is below the project's lesion-link confidence",
    "untyped": "no label and no prediction of the champion model yet",
}


@dataclass(frozen=True)
class RunType:
    """A cine run of an exam and the vessel type lesion linkage uses for it."""

    item_id: int
    title: str
    sop_instance_uid: str
    split: str
    excluded: bool
    vessel: str | None  # LCA, RCA, neither or unusable; None without a usable type
    basis: str  # BASES
    probability: float | None  # the model's probability of `vessel` (basis model, or a model below the bar)
    reason: str  # a NO_TYPE_REASONS key when the run has no usable type, else ""

    @property
    def artery(self) -> str | None:
        """The coronary artery the run shows, if it counts as showing one."""
        return self.vessel if self.vessel in CORONARY_ARTERIES and not self.excluded else None


@dataclass(frozen=True)
class LesionLink:
    lesion: Lesion
    arteries: tuple[str, ...]  # the arteries whose runs show the lesion (empty: dominance unknown at PDA / PLA)
    runs: tuple[int, ...]  # item ids
    problem: str  # "", DOMINANCE_UNKNOWN or NO_RUN_OF_ARTERY

    @property
    def segment_name(self) -> str:
        return CORONARY_SEGMENT_NAMES[self.lesion.segment]


@dataclass(frozen=True)
class ExamLinkage:
    report: ExamReport
    runs: tuple[RunType, ...]
    lesions: tuple[LesionLink, ...]
    flags: tuple[str, ...]

    @property
    def ambiguous(self) -> bool:
        return any(flag in AMBIGUOUS_FLAGS for flag in self.flags)

    def run(self, item_id: int) -> RunType | None:
        return next((run for run in self.runs if run.item_id == item_id), None)

    def lesions_of(self, item_id: int) -> list[LesionLink]:
        return [link for link in self.lesions if item_id in link.runs]


def current_reports(project: Project) -> QuerySet[ExamReport]:
    """Return the project's current reports (one per exam), each with `superseded_reports`, by patient and date."""
    older = (
        ExamReport.objects.filter(study=OuterRef("study"), superseded_at__isnull=False)
        .order_by()
        .values("study")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    return (
        ExamReport.objects.filter(project=project, superseded_at__isnull=True)
        .select_related("study__patient", "imported_by")
        .annotate(superseded_reports=Coalesce(Subquery(older, output_field=IntegerField()), 0))
        .order_by("study__patient__pseudonym", "study__study_date", "study_id")
    )


def run_types(project: Project, items: Sequence[Item]) -> dict[int, RunType]:
    """Return each run's vessel type for linkage (the rule in the module docstring), by item id."""
    ids = [item.pk for item in items]
    leads = set(project.memberships.filter(role=Role.LEAD).values_list("user_id", flat=True))
    labels: dict[int, list[Label]] = defaultdict(list)
    for label in Label.objects.current().filter(item_id__in=ids).order_by("created_at", "pk"):
        labels[label.item_id].append(label)
    predictions = {
        prediction.item_id: prediction
        for prediction in Prediction.objects.filter(item_id__in=ids, model_version__status=ModelStatus.CHAMPION)
    }
    threshold = parse_settings(project.task_type, project.settings).lesion_link_confidence
    out = {}
    for item in items:
        facts: dict[str, Any] = {"vessel": None, "basis": BASIS_NONE, "probability": None, "reason": ""}
        human = _human_vessel(labels[item.pk], leads) if labels[item.pk] else None
        prediction = predictions.get(item.pk)
        if item.excluded_at is not None:
            facts["reason"] = "excluded"
        elif human is not None:
            facts |= {"vessel": human, "basis": BASIS_LABEL} if human != "disputed" else {"reason": "disputed"}
        elif prediction is not None and (vessel := prediction.output.get("vessel")):
            probability = _probability(prediction, vessel)
            facts["probability"] = probability
            if probability is not None and probability >= threshold:
                facts |= {"vessel": vessel, "basis": BASIS_MODEL}
            else:
                facts["reason"] = "low_confidence"
        else:
            facts["reason"] = "untyped"
        out[item.pk] = RunType(
            item_id=item.pk,
            title=item.title,
            sop_instance_uid=item.instance.sop_instance_uid if item.instance else "",
            split=item.split or "unassigned",
            excluded=item.excluded_at is not None,
            **facts,
        )
    return out


def _human_vessel(labels: list[Label], leads: set[int]) -> str:
    """The vessel the current labels settle on (newest last), or "disputed" when annotators disagree."""
    for settles in (lambda lb: lb.source == LabelSource.ADJUDICATION, lambda lb: lb.author_id in leads):
        settled = [label for label in labels if settles(label)]
        if settled:
            return str(settled[-1].payload.get("vessel"))
    vessels = {label.payload.get("vessel") for label in labels}
    return str(vessels.pop()) if len(vessels) == 1 else "disputed"


def _probability(prediction: Prediction, vessel: str) -> float | None:
    probabilities = prediction.output.get("probabilities")
    value = probabilities.get(vessel) if isinstance(probabilities, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return prediction.confidence


def exam_linkages(project: Project, reports: Sequence[ExamReport]) -> list[ExamLinkage]:
    """Return the linkage of each report's exam, in the reports' order (a few queries for all of them)."""
    study_ids = [report.study_id for report in reports]
    items = list(
        Item.objects.filter(project=project, kind=ItemKind.CINE_RUN, instance__series__study_id__in=study_ids)
        .select_related("instance__series")
        .order_by("pk")
    )
    types = run_types(project, items)
    runs_of: dict[int, list[RunType]] = defaultdict(list)
    for item in items:
        assert item.instance is not None  # a cine run always shows its DICOM file
        runs_of[item.instance.series.study_id].append(types[item.pk])
    lesions_of: dict[int, list[Lesion]] = defaultdict(list)
    for lesion in Lesion.objects.filter(report__in=[report.pk for report in reports]):
        lesions_of[lesion.report_id].append(lesion)
    out = []
    for report in reports:
        runs = runs_of[report.study_id]
        links = [_link(lesion, report.dominance, runs) for lesion in lesions_of[report.pk]]
        flags = {link.problem for link in links if link.problem}
        if any(run.reason and run.reason != "excluded" for run in runs):
            flags.add(UNTYPED_RUNS)
        out.append(
            ExamLinkage(
                report=report, runs=tuple(runs), lesions=tuple(links), flags=tuple(f for f in FLAGS if f in flags)
            )
        )
    return out


def _link(lesion: Lesion, dominance: str, runs: Sequence[RunType]) -> LesionLink:
    arteries = segment_arteries(lesion.segment, dominance)
    linked = tuple(run.item_id for run in runs if run.artery is not None and run.artery in arteries)
    problem = DOMINANCE_UNKNOWN if not arteries else NO_RUN_OF_ARTERY if not linked else ""
    return LesionLink(lesion=lesion, arteries=arteries, runs=linked, problem=problem)


def item_lesions(project: Project, item: Item) -> dict[str, Any]:
    """Return what the run's page shows: its exam's report, its vessel type, the lesions linked to it, and in
    words why none is, when none is."""
    out: dict[str, Any] = {"item": item.pk, "report": None, "run": None, "lesions": [], "flags": [], "ambiguous": False}
    if item.kind != ItemKind.CINE_RUN or item.instance is None:
        return out | {"explanation": "lesion reports link to cine runs only"}
    report = current_reports(project).filter(study_id=item.instance.series.study_id).first()
    if report is None:
        return out | {"explanation": "no lesion report has been imported for this run's exam"}
    linkage = exam_linkages(project, [report])[0]
    run = linkage.run(item.pk)
    assert run is not None
    links = linkage.lesions_of(item.pk)
    out |= {
        "report": report,
        "run": run,
        "lesions": links,
        "flags": list(linkage.flags),
        "ambiguous": linkage.ambiguous,
        "explanation": "" if links else _why_unlinked(linkage, run),
    }
    return out


def _why_unlinked(linkage: ExamLinkage, run: RunType) -> str:
    if run.reason:
        return f"no usable vessel type: {NO_TYPE_REASONS[run.reason]}"
    if run.artery is None:
        return f"typed {run.vessel} ({run.basis}): it shows no coronary artery, so no lesion links to it"
    if not linkage.lesions:
        return "the report lists no significant lesion"
    unknown = [link.lesion.segment for link in linkage.lesions if link.problem == DOMINANCE_UNKNOWN]
    why = f"the report lists no lesion of the {run.artery}"
    if unknown:
        segments = ", ".join(str(s) for s in sorted(set(unknown)))
        why += f"; segment {segments} cannot be placed: the report records no dominance"
    return why


def lesion_pairs(project: Project, *, batch: int = 200) -> Iterator[dict[str, Any]]:
    """Yield the run ↔ lesion pairs of the project's unambiguous exams (PAIR_COLUMNS), by exam, lesion and run."""
    reports = current_reports(project)
    total = reports.count()
    for start in range(0, total, batch):
        for linkage in exam_linkages(project, list(reports[start : start + batch])):
            if linkage.ambiguous:
                continue
            report = linkage.report
            runs = {run.item_id: run for run in linkage.runs}
            for link in linkage.lesions:
                for item_id in link.runs:
                    run = runs[item_id]
                    yield {
                        "patient_pseudonym": report.study.patient.pseudonym,
                        "study_instance_uid": report.study.study_instance_uid,
                        "sop_instance_uid": run.sop_instance_uid,
                        "item_id": run.item_id,
                        "lesion_id": link.lesion.pk,
                        "artery": run.artery,
                        "vessel_basis": run.basis,
                        "vessel_probability": "" if run.basis != BASIS_MODEL else f"{run.probability:.4f}",
                        "segment": link.lesion.segment,
                        "segment_name": link.segment_name,
                        "stenosis_percent": link.lesion.stenosis_percent,
                        "dominance": report.dominance,
                        "split": run.split,
                    }
