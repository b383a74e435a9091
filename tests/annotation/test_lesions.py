"""Lesion reports: the CSV import (every bad row named, all or nothing, re-import supersedes), linkage of each lesion
to the runs that show its artery on hand-built exams (ambiguous ones included), the run ↔ lesion pair export, the
API's permissions and the import_reports command. Original UIDs never reach the database, the export or a log."""

from __future__ import annotations

import csv
import io
import itertools
import logging

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from annotation.ingest.deid import remap_uid
from annotation.lesion_linkage import current_reports, exam_linkages, item_lesions
from annotation.models import (
    ExamReport,
    Instance,
    Item,
    ItemKind,
    LabelSource,
    Lesion,
    ModelStatus,
    ModelVersion,
    Patient,
    Prediction,
    Series,
    Study,
)
from annotation.project_settings import SettingsError, parse_settings
from annotation.services import label_submit, project_update
from annotation.services.lesions import ReportImportError, lesion_pairs_export, reports_import
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

_serial = itertools.count(1)


def exam(project, runs, *, original=None):
    """Hand-build an exam: a study (its UID remapped from `original`, as the ingest stores it) with one cine run
    per entry of `runs`; return (original study UID, [items])."""
    n = next(_serial)
    original = original or f"1.2.826.0.1.3680043.9.7777.{n}"
    patient = Patient.objects.create(pseudonym=f"PSN{n:04d}", identity_hash=f"hash-{n}")
    study = Study.objects.create(
        project=project, patient=patient, study_instance_uid=remap_uid(original, settings.PSEUDONYM_KEY)
    )
    series = Series.objects.create(study=study, series_instance_uid=f"2.25.9{n}", modality="XA")
    items = []
    for i, _ in enumerate(runs):
        instance = Instance.objects.create(
            project=project,
            series=series,
            sop_instance_uid=f"2.25.{n}0{i}",
            sop_class_uid=samples.XA_CLASS,
            modality="XA",
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            rows=16,
            columns=16,
            number_of_frames=4,
            photometric_interpretation="MONOCHROME2",
            file_path=f"dicom/{n}-{i}.dcm",
            file_size=1,
            sha256=f"{n:032d}{i:032d}",
            frames_dir=f"frames/{n}-{i}",
        )
        items.append(
            Item.objects.create(
                project=project, kind=ItemKind.CINE_RUN, patient=patient, instance=instance, title=f"Run {n}-{i}"
            )
        )
    return original, items


def vessel(item, author, value, **extra):
    payload = {"vessel": value, **({"unusable_reason": "no contrast"} if value == "unusable" else {}), **extra}
    return label_submit(item=item, author=author, payload=payload, base_version=None)


def typed_exam(project, author, vessels, **kwargs):
    """An exam whose runs carry these human labels (None: unlabelled)."""
    original, items = exam(project, vessels, **kwargs)
    for item, value in zip(items, vessels, strict=True):
        if value:
            vessel(item, author, value)
    return original, items


def report_csv(*rows, header="study_instance_uid,segment,stenosis_percent,dominance,note"):
    return "\n".join([header, *[",".join(str(c) for c in row) for row in rows]]) + "\n"


def linkage_of(project, original):
    stored = remap_uid(original, settings.PSEUDONYM_KEY)
    report = current_reports(project).get(study__study_instance_uid=stored)
    return exam_linkages(project, [report])[0]


def linked(linkage):
    """{segment: set of linked item ids} of an exam's linkage."""
    return {link.lesion.segment: set(link.runs) for link in linkage.lesions}


def champion(project, number=1, status=ModelStatus.CHAMPION):
    return ModelVersion.objects.create(project=project, number=number, family="contrast_logreg", status=status)


def predict(version, item, value, probability):
    rest = (1 - probability) / 2
    probabilities = {"LCA": rest, "RCA": rest, "neither": rest} | {value: probability}
    return Prediction.objects.create(
        item=item,
        model_version=version,
        output={"vessel": value, "probabilities": probabilities},
        confidence=probability,
    )


# ------------------------------------------------------------------------------------------------ linkage
@pytest.mark.parametrize(("segment", "artery"), [(s, "RCA") for s in (1, 2, 3)] + [(s, "LCA") for s in range(5, 16)])
def test_a_lesion_links_to_the_runs_of_its_artery_only(vessel_project, lead, annotator, segment, artery):
    original, items = typed_exam(vessel_project, annotator, ["RCA", "LCA", "RCA", "LCA"])
    reports_import(
        project=vessel_project, user=lead, data=report_csv((original, segment, 70, "right", "")), source_name="r.csv"
    )
    linkage = linkage_of(vessel_project, original)
    expected = {item.pk for item in items if item.labels.get().payload["vessel"] == artery}
    assert len(expected) == 2
    assert linked(linkage) == {segment: expected}
    assert linkage.flags == () and not linkage.ambiguous


@pytest.mark.parametrize(
    ("dominance", "arteries"),
    [("right", {"RCA"}), ("left", {"LCA"}), ("codominant", {"LCA", "RCA"}), ("", set())],
)
@pytest.mark.parametrize("segment", [4, 16])
def test_pda_and_pla_follow_the_recorded_dominance(vessel_project, lead, annotator, segment, dominance, arteries):
    original, items = typed_exam(vessel_project, annotator, ["RCA", "LCA", "neither"])
    data = report_csv((original, segment, 90, dominance, ""), (original, 7, 50, "", ""))
    reports_import(project=vessel_project, user=lead, data=data, source_name="r.csv")
    linkage = linkage_of(vessel_project, original)
    by_artery = {"RCA": items[0].pk, "LCA": items[1].pk}
    assert linked(linkage) == {segment: {by_artery[a] for a in arteries}, 7: {items[1].pk}}
    if dominance:
        assert linkage.flags == () and not linkage.ambiguous
    else:
        assert linkage.flags == ("dominance_unknown",) and linkage.ambiguous
        problem = {link.lesion.segment: link.problem for link in linkage.lesions}
        assert problem == {segment: "dominance_unknown", 7: ""}


def test_a_lesion_of_an_artery_no_run_shows_flags_the_exam(vessel_project, lead, annotator):
    original, items = typed_exam(vessel_project, annotator, ["LCA", "LCA", None])
    data = report_csv((original, 2, 80, "right", ""), (original, 6, 60, "", ""))
    reports_import(project=vessel_project, user=lead, data=data, source_name="r.csv")
    linkage = linkage_of(vessel_project, original)
    assert linked(linkage) == {2: set(), 6: {items[0].pk, items[1].pk}}
    assert linkage.flags == ("no_run_of_artery", "untyped_runs") and linkage.ambiguous
    assert [run.reason for run in linkage.runs] == ["", "", "untyped"]


def test_an_exam_with_every_lesion_linked_but_an_untyped_run_is_not_ambiguous(vessel_project, lead, annotator):
    original, items = typed_exam(vessel_project, annotator, ["RCA", None])
    reports_import(project=vessel_project, user=lead, data=report_csv((original, 1, 40, "", "")), source_name="r")
    linkage = linkage_of(vessel_project, original)
    assert linked(linkage) == {1: {items[0].pk}}
    assert linkage.flags == ("untyped_runs",) and not linkage.ambiguous


def test_the_model_types_a_run_only_at_the_projects_confidence(vessel_project, lead, annotator):
    original, items = exam(vessel_project, [None, None, None])
    version = champion(vessel_project)
    predict(version, items[0], "RCA", 0.95)
    predict(version, items[1], "RCA", 0.85)
    retired = champion(vessel_project, number=2, status=ModelStatus.RETIRED)
    predict(retired, items[2], "RCA", 0.99)  # not the champion: never counts
    reports_import(project=vessel_project, user=lead, data=report_csv((original, 3, 75, "", "")), source_name="r")

    linkage = linkage_of(vessel_project, original)
    assert linked(linkage) == {3: {items[0].pk}}
    runs = {run.item_id: run for run in linkage.runs}
    assert (runs[items[0].pk].basis, runs[items[0].pk].probability) == ("model", pytest.approx(0.95))
    assert (runs[items[1].pk].basis, runs[items[1].pk].reason) == ("none", "low_confidence")
    assert runs[items[1].pk].probability == pytest.approx(0.85)
    assert runs[items[2].pk].reason == "untyped"
    assert linkage.flags == ("untyped_runs",)

    project_update(project=vessel_project, settings={"lesion_link_confidence": 0.8})
    vessel_project.refresh_from_db()
    assert linked(linkage_of(vessel_project, original)) == {3: {items[0].pk, items[1].pk}}


def test_a_human_label_beats_a_confident_model(vessel_project, lead, annotator):
    original, items = exam(vessel_project, [None, None])
    version = champion(vessel_project)
    predict(version, items[0], "RCA", 0.99)
    predict(version, items[1], "RCA", 0.99)
    vessel(items[0], annotator, "LCA")
    reports_import(project=vessel_project, user=lead, data=report_csv((original, 1, 70, "", "")), source_name="r")
    linkage = linkage_of(vessel_project, original)
    assert linked(linkage) == {1: {items[1].pk}}
    first = linkage.run(items[0].pk)
    assert (first.vessel, first.basis, first.probability) == ("LCA", "label", None)


def test_disagreeing_annotators_leave_a_run_untyped_until_a_lead_or_adjudication_settles(
    vessel_project, lead, annotator, second_annotator
):
    original, items = exam(vessel_project, [None, None])
    predict(champion(vessel_project), items[0], "RCA", 0.99)  # the model does not break a human tie
    vessel(items[0], annotator, "RCA")
    vessel(items[0], second_annotator, "LCA")
    vessel(items[1], annotator, "RCA")
    vessel(items[1], second_annotator, "LCA")
    reports_import(project=vessel_project, user=lead, data=report_csv((original, 2, 70, "", "")), source_name="r")
    linkage = linkage_of(vessel_project, original)
    assert [run.reason for run in linkage.runs] == ["disputed", "disputed"]
    assert linkage.flags == ("no_run_of_artery", "untyped_runs")

    vessel(items[0], lead, "RCA")
    label_submit(
        item=items[1], author=lead, payload={"vessel": "RCA"}, base_version=None, source=LabelSource.ADJUDICATION
    )
    linkage = linkage_of(vessel_project, original)
    assert linked(linkage) == {2: {items[0].pk, items[1].pk}} and linkage.flags == ()


def test_neither_unusable_and_excluded_runs_never_link(vessel_project, lead, annotator):
    original, items = typed_exam(vessel_project, annotator, ["RCA", "neither", "unusable", "RCA", None])
    Item.objects.filter(pk=items[3].pk).update(excluded_at=timezone.now(), excluded_by=lead)
    predict(champion(vessel_project), items[4], "neither", 0.99)
    data = report_csv((original, 1, 70, "codominant", ""), (original, 4, 50, "", ""))
    reports_import(project=vessel_project, user=lead, data=data, source_name="r")
    linkage = linkage_of(vessel_project, original)
    assert linked(linkage) == {1: {items[0].pk}, 4: {items[0].pk}}
    assert linkage.flags == ()  # neither / unusable are settled types, an excluded run is no untyped run
    excluded = linkage.run(items[3].pk)
    assert (excluded.vessel, excluded.basis, excluded.reason) == (None, "none", "excluded")
    assert linkage.run(items[4].pk).vessel == "neither"


def test_the_item_endpoint_shows_a_runs_lesions_or_why_none(vessel_project, lead, annotator, client_for):
    original, items = typed_exam(vessel_project, annotator, ["RCA", "LCA", "neither", None])
    data = report_csv((original, 1, 70, "", "ostial"), (original, 16, 40, "", ""), (original, 3, 90, "", ""))
    reports_import(project=vessel_project, user=lead, data=data, source_name="r")
    client = client_for(lead)
    body = client.get(f"/api/items/{items[0].pk}/lesions/").json()
    assert [(x["segment"], x["segment_name"], x["stenosis_percent"], x["note"]) for x in body["lesions"]] == [
        (1, "proximal RCA", 70, "ostial"),
        (3, "distal RCA", 90, ""),
    ]
    assert body["run"]["vessel"] == "RCA" and body["run"]["basis"] == "label" and body["explanation"] == ""
    assert body["flags"] == ["dominance_unknown", "untyped_runs"] and body["ambiguous"] is True
    why = {i: client.get(f"/api/items/{items[i].pk}/lesions/").json()["explanation"] for i in (1, 2, 3)}
    assert why[1] == (
        "the report lists no lesion of the LCA; segment 16 cannot be placed: the report records no dominance"
    )
    assert why[2].startswith("typed neither (label): it shows no coronary artery")
    assert why[3] == "no usable vessel type: no label and no prediction of the champion model yet"
    _, other = typed_exam(vessel_project, annotator, ["RCA"])
    body = client.get(f"/api/items/{other[0].pk}/lesions/").json()
    assert body["report"] is None and body["explanation"] == "no lesion report has been imported for this run's exam"


def test_an_exam_reported_without_lesions(vessel_project, lead, annotator):
    original, items = typed_exam(vessel_project, annotator, ["RCA"])
    result = reports_import(
        project=vessel_project, user=lead, data=report_csv((original, "", "", "left", "")), source_name="r"
    )
    assert (result.exams, result.lesions, result.exams_without_lesions) == (1, 0, 1)
    linkage = linkage_of(vessel_project, original)
    assert linkage.report.dominance == "left" and linkage.lesions == () and not linkage.ambiguous
    assert item_lesions(vessel_project, items[0])["explanation"] == "the report lists no significant lesion"
    with pytest.raises(ReportImportError) as refused:
        data = report_csv((original, "", "", "", ""), (original, 2, 50, "", ""))
        reports_import(project=vessel_project, user=lead, data=data, source_name="r")
    assert [(e.row, e.column) for e in refused.value.errors] == [(2, "segment")]


# ------------------------------------------------------------------------------------------------ import
def test_reimport_supersedes_the_current_report_and_keeps_history(vessel_project, lead, annotator, client_for):
    original, items = typed_exam(vessel_project, annotator, ["RCA", "LCA"])
    first = reports_import(
        project=vessel_project, user=lead, data=report_csv((original, 2, 50, "", "")), source_name="a.csv"
    )
    assert first.superseded == 0
    second = reports_import(
        project=vessel_project,
        user=lead,
        data=report_csv((original, 2, 90, "", ""), (original, 7, 40, "", "")),
        source_name="b.csv",
    )
    assert (second.exams, second.lesions, second.superseded) == (1, 2, 1)
    reports = list(
        ExamReport.objects.filter(study__study_instance_uid=remap_uid(original, settings.PSEUDONYM_KEY)).order_by("pk")
    )
    assert [r.source_name for r in reports] == ["a.csv", "b.csv"]
    assert reports[0].superseded_at is not None and reports[1].superseded_at is None
    assert [(x.segment, x.stenosis_percent) for x in reports[0].lesions.all()] == [(2, 50)]  # history kept
    assert [(x.segment, x.stenosis_percent, x.row_number) for x in reports[1].lesions.all()] == [(2, 90, 2), (7, 40, 3)]
    body = client_for(lead).get(f"/api/projects/{vessel_project.slug}/reports/").json()
    assert body["count"] == 1
    [row] = body["results"]
    assert row["report"]["source_name"] == "b.csv" and row["superseded_reports"] == 1
    assert [(x["segment"], x["runs"]) for x in row["lesions"]] == [(2, [items[0].pk]), (7, [items[1].pk])]


def test_a_real_import_is_found_by_its_original_and_by_its_stored_uid(vessel_project, lead, caplog):
    ds = samples.dataset(seed=3)
    original = "1.2.826.0.1.3680043.8.498.123456789"
    ds.StudyInstanceUID = original
    assert run(vessel_project, ("run.dcm", samples.to_bytes(ds))).summary()["stored"] == 1
    study = Study.objects.get(project=vessel_project)
    assert study.study_instance_uid != original
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    data = "\ufeffStudy_Instance_UID;Segment;Stenosis_Percent\n" + f"{original};2;70 %\n"
    result = reports_import(project=vessel_project, user=lead, data=data.encode("utf-8"), source_name="bom.csv")
    assert (result.exams, result.lesions) == (1, 1)
    assert ExamReport.objects.get(superseded_at__isnull=True).study == study
    result = reports_import(
        project=vessel_project,
        user=lead,
        data=report_csv((study.study_instance_uid, 5, "99%", "", "")),
        source_name="s",
    )
    assert (result.exams, result.superseded) == (1, 1)
    assert Lesion.objects.get(report__superseded_at__isnull=True).stenosis_percent == 99
    with pytest.raises(ReportImportError) as refused:
        reports_import(
            project=vessel_project, user=lead, data=report_csv((original + "1", 2, 70, "", "")), source_name="x"
        )
    [error] = refused.value.errors
    assert str(error) == "row 2: study_instance_uid: no exam of this project has that study_instance_uid"
    assert original not in caplog.text
    assert "lesion reports imported" in caplog.text


GOOD = "VALID"  # replaced by a valid study UID


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([(GOOD, 0, 50, "", "")], [(2, "segment")]),
        ([(GOOD, 17, 50, "", "")], [(2, "segment")]),
        ([(GOOD, "x", 50, "", "")], [(2, "segment")]),
        ([(GOOD, 4.5, 50, "", "")], [(2, "segment")]),
        ([(GOOD, 2, 101, "", "")], [(2, "stenosis_percent")]),
        ([(GOOD, 2, -1, "", "")], [(2, "stenosis_percent")]),
        ([(GOOD, 2, "", "", "")], [(2, "stenosis_percent")]),
        ([(GOOD, "", 50, "", "")], [(2, "segment")]),
        ([("1.2.3.999", 2, 50, "", "")], [(2, "study_instance_uid")]),
        ([("ACC998877X", 2, 50, "", "")], [(2, "study_instance_uid")]),
        ([("", 2, 50, "", "")], [(2, "study_instance_uid")]),
        ([(GOOD, 2, 50, "sideways", "")], [(2, "dominance")]),
        ([(GOOD, 2, 50, "right", ""), (GOOD, 6, 50, "", ""), (GOOD, 4, 50, "left", "")], [(4, "dominance")]),
        ([(GOOD, 2, 50, "", "n" * 256)], [(2, "note")]),
        ([(GOOD, 2, 50, "", "", "extra")], [(2, None)]),
        (
            [(GOOD, 0, 101, "up", ""), ("1.2.3", 20, 50, "", "")],
            [(2, "segment"), (2, "stenosis_percent"), (2, "dominance"), (3, "study_instance_uid"), (3, "segment")],
        ),
    ],
)
def test_every_bad_row_is_named_and_nothing_is_imported(vessel_project, lead, annotator, rows, expected):
    original, _ = typed_exam(vessel_project, annotator, ["RCA"])
    good = (original, 1, 60, "", "")  # a valid row beside the bad ones: it is not imported either
    data = report_csv(good, *[tuple(original if c == GOOD else c for c in row) for row in rows])
    with pytest.raises(ReportImportError) as refused:
        reports_import(project=vessel_project, user=lead, data=data, source_name="bad.csv")
    assert [(e.row - 1 if e.row else e.row, e.column) for e in refused.value.errors] == expected
    assert all(original not in str(e) for e in refused.value.errors)
    assert not ExamReport.objects.exists() and not Lesion.objects.exists()


@pytest.mark.parametrize(
    ("data", "expected", "words"),
    [
        (b"", [(None, None)], "the file is empty"),
        (b"\n\n", [(None, None)], "the file is empty"),
        (b"study_instance_uid,segment,stenosis_percent\n", [(None, None)], "header but no rows"),
        (b"study_instance_uid,segment\n1.2.3,2\n", [(1, "stenosis_percent")], "required column missing"),
        (b"study_instance_uid,segment,stenosis_percent,patient_name\n", [(1, "patient_name")], "unknown column"),
        (b"study_instance_uid,segment,segment,stenosis_percent\n", [(1, "segment")], "more than once"),
        (
            "study_instance_uid,segment,stenosis_percent,note\n1.2,2,50,Müller\n".encode("latin-1"),
            [(None, None)],
            "not UTF-8",
        ),
        (b'study_instance_uid,segment,stenosis_percent\n"1.2,2,50\n', [(None, None)], "not a readable CSV"),
    ],
)
def test_a_file_that_is_not_a_report_is_refused_with_the_reason(vessel_project, lead, data, expected, words):
    with pytest.raises(ReportImportError) as refused:
        reports_import(project=vessel_project, user=lead, data=data, source_name="bad.csv")
    assert [(e.row, e.column) for e in refused.value.errors] == expected
    assert words in str(refused.value)
    assert not ExamReport.objects.exists()


def test_a_file_over_the_size_limit_is_refused(vessel_project, lead, client_for, monkeypatch):
    from annotation.services import lesions

    monkeypatch.setattr(lesions, "REPORT_MAX_BYTES", 100)
    with pytest.raises(ReportImportError, match="at most 100"):
        reports_import(project=vessel_project, user=lead, data=b"x" * 101, source_name="big.csv")
    monkeypatch.setattr("annotation.api.lesion_views.REPORT_MAX_BYTES", 100)
    upload = io.BytesIO(b"study_instance_uid,segment,stenosis_percent\n" + b"1.2.3,2,50\n" * 20)
    upload.name = "big.csv"
    response = client_for(lead).post(
        f"/api/projects/{vessel_project.slug}/reports/", {"file": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert "at most 100" in response.json()["errors"][0]["message"]


def test_reports_are_refused_for_a_task_without_vessel_types(oct_project, lead):
    with pytest.raises(ReportImportError, match="does not type runs as LCA / RCA"):
        reports_import(project=oct_project, user=lead, data=report_csv(("1.2.3", 2, 50, "", "")), source_name="r")


# ------------------------------------------------------------------------------------------------ export
def test_the_pairs_export_row_by_row(vessel_project, lead, annotator, caplog):
    caplog.set_level(logging.DEBUG)
    a_uid, a = typed_exam(vessel_project, annotator, ["RCA", "LCA", None])
    version = champion(vessel_project)
    predict(version, a[2], "RCA", 0.93)
    Item.objects.filter(pk=a[1].pk).update(split="test")
    Item.objects.filter(pk=a[0].pk).update(split="train")
    b_uid, b = typed_exam(vessel_project, annotator, ["LCA"])  # RCA lesion, no RCA run: ambiguous, not exported
    c_uid, c = typed_exam(vessel_project, annotator, ["RCA"])  # PDA, dominance unknown: ambiguous
    data = report_csv(
        (a_uid, 16, 45, "codominant", ""),
        (a_uid, 11, 80, "", "note stays out"),
        (b_uid, 1, 70, "", ""),
        (b_uid, 6, 70, "", ""),
        (c_uid, 4, 99, "", ""),
    )
    reports_import(project=vessel_project, user=lead, data=data, source_name="r.csv")
    text = lesion_pairs_export(project=vessel_project)
    rows = list(csv.DictReader(io.StringIO(text)))
    study = Study.objects.get(study_instance_uid=remap_uid(a_uid, settings.PSEUDONYM_KEY))
    lesion = {x.segment: x.pk for x in Lesion.objects.filter(report__study=study)}
    sop = {item.pk: item.instance.sop_instance_uid for item in a}

    def pair(item, artery, basis, probability, segment, name, stenosis, split):
        return {
            "patient_pseudonym": study.patient.pseudonym,
            "study_instance_uid": study.study_instance_uid,
            "sop_instance_uid": sop[item.pk],
            "item_id": str(item.pk),
            "lesion_id": str(lesion[segment]),
            "artery": artery,
            "vessel_basis": basis,
            "vessel_probability": probability,
            "segment": str(segment),
            "segment_name": name,
            "stenosis_percent": str(stenosis),
            "dominance": "codominant",
            "split": split,
        }

    assert rows == [
        pair(a[1], "LCA", "label", "", 11, "proximal LCX", 80, "test"),
        pair(a[0], "RCA", "label", "", 16, "PLA", 45, "train"),
        pair(a[1], "LCA", "label", "", 16, "PLA", 45, "test"),
        pair(a[2], "RCA", "model", "0.9300", 16, "PLA", 45, "unassigned"),
    ]
    for original in (a_uid, b_uid, c_uid):
        assert original not in text and original not in caplog.text
    assert "note stays out" not in text


# ------------------------------------------------------------------------------------ API, settings, command
def test_leads_only_annotators_get_403_and_strangers_404(vessel_project, lead, annotator, stranger, client_for):
    original, items = typed_exam(vessel_project, annotator, ["RCA"])
    urls = [
        f"/api/projects/{vessel_project.slug}/reports/",
        f"/api/projects/{vessel_project.slug}/reports/pairs.csv",
        f"/api/items/{items[0].pk}/lesions/",
    ]
    upload = report_csv((original, 2, 50, "", ""))
    for user, code in ((annotator, 403), (stranger, 404)):
        client = client_for(user)
        assert [client.get(url).status_code for url in urls] == [code] * 3
        file = io.BytesIO(upload.encode())
        file.name = "r.csv"
        assert client.post(urls[0], {"file": file}, format="multipart").status_code == code
    assert client_for().get(urls[0]).status_code == 401
    assert not ExamReport.objects.exists()
    lead_client = client_for(lead)
    file = io.BytesIO(upload.encode())
    file.name = "r.csv"
    response = lead_client.post(urls[0], {"file": file}, format="multipart")
    assert response.status_code == 201
    assert response.json() == {
        "source_name": "r.csv",
        "exams": 1,
        "lesions": 1,
        "exams_without_lesions": 0,
        "superseded": 0,
    }
    pairs = lead_client.get(urls[1])
    assert pairs.status_code == 200 and pairs["Content-Type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(pairs.content.decode())))) == 1


def test_the_upload_answers_every_row_error(vessel_project, lead, annotator, client_for):
    original, _ = typed_exam(vessel_project, annotator, ["RCA"])
    file = io.BytesIO(report_csv((original, 0, 50, "", ""), ("1.2.3", 2, 50, "", "")).encode())
    file.name = "bad.csv"
    response = client_for(lead).post(
        f"/api/projects/{vessel_project.slug}/reports/", {"file": file}, format="multipart"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "report file refused, nothing imported: 2 problems"
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(2, "segment"), (3, "study_instance_uid")]
    missing = client_for(lead).post(f"/api/projects/{vessel_project.slug}/reports/", {}, format="multipart")
    assert missing.status_code == 400 and "file" in missing.json()


def test_the_link_confidence_setting_is_checked_by_name(vessel_project, lead, client_for):
    assert parse_settings("vessel_type", {}).lesion_link_confidence == 0.9
    assert parse_settings("vessel_type", {"lesion_link_confidence": 0.5}).lesion_link_confidence == 0.5
    for bad in (0.49, 1.01, True, "0.9", None):
        with pytest.raises(SettingsError) as error:
            parse_settings("vessel_type", {"lesion_link_confidence": bad})
        assert error.value.field == "lesion_link_confidence"
    response = client_for(lead).patch(
        f"/api/projects/{vessel_project.slug}/", {"settings": {"lesion_link_confidence": 0.3}}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == "settings.lesion_link_confidence"


def test_the_import_reports_command(vessel_project, lead, annotator, tmp_path):
    original, _ = typed_exam(vessel_project, annotator, ["RCA"])
    good = tmp_path / "good.csv"
    good.write_text(report_csv((original, 2, 50, "right", ""), (original, 3, 30, "", "")))
    out = io.StringIO()
    call_command("import_reports", vessel_project.slug, str(good), "--user", lead.username, stdout=out)
    assert (
        "good.csv: 1 exam(s) reported, 2 lesion(s), 0 without lesions, 0 earlier report(s) superseded" in out.getvalue()
    )
    assert ExamReport.objects.get().imported_by == lead
    bad = tmp_path / "bad.csv"
    bad.write_text(report_csv((original, 17, 50, "", "")))
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 problem"):
        call_command("import_reports", vessel_project.slug, str(bad), stderr=err)
    assert "row 2: segment: must be a whole number from 1 to 16 (got '17')" in err.getvalue()
    assert ExamReport.objects.count() == 1


def test_a_member_of_another_project_cannot_read_its_runs_lesions(vessel_project, lead, annotator, client_for):
    original, items = typed_exam(vessel_project, annotator, ["RCA"])
    reports_import(project=vessel_project, user=lead, data=report_csv((original, 2, 50, "", "")), source_name="r")
    other_lead = UserFactory(username="other-lead")
    MembershipFactory(user=other_lead, role="lead")  # leads a project of their own
    assert client_for(other_lead).get(f"/api/items/{items[0].pk}/lesions/").status_code == 404


def test_the_annotators_workspace_never_shows_lesions(vessel_project, lead, annotator, client):
    original, items = exam(vessel_project, [None])
    reports_import(project=vessel_project, user=lead, data=report_csv((original, 2, 95, "", "")), source_name="r")
    client.force_login(annotator)
    page = client.get(f"/projects/{vessel_project.slug}/label/?item={items[0].pk}")
    item = client.get(f"/api/items/{items[0].pk}/")
    assert page.status_code == 200 and item.status_code == 200 and item.json()["id"] == items[0].pk
    for content in (page.content, item.content):
        assert b"lesion" not in content.lower() and b"mid RCA" not in content
    client.force_login(lead)
    assert b'id="lesion-reports"' in client.get(f"/projects/{vessel_project.slug}/").content
