"""12-lead ECGs: imported through the real pipeline (de-identified, with the image's patient), the signal served
exactly as the source holds it, bad files refused with a reason, and the ECG ↔ stenosis pairs on a hand-built case."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from pydicom.data import get_testdata_file

from annotation.ingest.deid import remap_uid
from annotation.ingest.store import orphaned_files
from annotation.models import (
    Ecg,
    ExamReport,
    Instance,
    Item,
    ItemKind,
    Lesion,
    Patient,
    PatientIdentity,
    Split,
    Study,
)
from annotation.project_settings import parse_settings
from annotation.services.ecg import PAIR_COLUMNS, ecg_pairs, patient_split
from tests import dicom_samples as samples
from tests.annotation.test_ingest import media_files, run

pytestmark = pytest.mark.django_db
SOURCE = Path(get_testdata_file("waveform_ecg.dcm"))  # a real 12-lead ECG (Mortara el250)
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def source_dataset() -> pydicom.Dataset:
    return pydicom.dcmread(SOURCE)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def to_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_import_dicom_stores_the_ecg_deidentified_with_the_patient_of_the_same_id(vessel_project, settings):
    original = source_dataset()
    image = samples.xa_bytes(patient_id=str(original.PatientID), patient_name="ROSSI^MARIA")
    assert run(vessel_project, ("run.dcm", image)).summary()["stored"] == 1
    out = io.StringIO()
    call_command("import_dicom", str(SOURCE), project=vessel_project.slug, stdout=out)
    assert "1 stored" in out.getvalue() and "stored as ECG" in out.getvalue()

    ecg = Ecg.objects.get(project=vessel_project)
    image_patient = Instance.objects.get().series.study.patient
    assert ecg.patient == image_patient and Patient.objects.count() == 1
    assert PatientIdentity.objects.get(patient=ecg.patient).original_patient_id == "642341"  # leads-only table
    assert ecg.leads == LEADS
    assert (ecg.sampling_frequency, ecg.sample_count) == (1000.0, 10000)  # the rhythm strip, not the median beat
    assert ecg.sop_class_uid == pydicom.uid.TwelveLeadECGWaveformStorage
    assert ecg.sop_instance_uid == remap_uid(str(original.SOPInstanceUID), settings.PSEUDONYM_KEY)
    assert ecg.acquired_at is not None and ecg.acquired_at.year < 2013  # 2013-01-25, moved back by whole weeks
    assert ecg.acquired_at.strftime("%H:%M:%S") == "10:59:19" and ecg.acquired_at.weekday() == 4  # a Friday

    path = Path(settings.MEDIA_ROOT) / ecg.file_path
    assert path.stat().st_size == ecg.file_size
    stored = pydicom.dcmread(path)
    assert str(stored.PatientName) == str(stored.PatientID) == ecg.patient.pseudonym
    assert not stored.get("PatientBirthDate") and not stored.get("AccessionNumber")
    assert stored.get("InstitutionName") != original.InstitutionName
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        assert str(stored.get(keyword)) == remap_uid(str(original.get(keyword)), settings.PSEUDONYM_KEY)
    assert str(stored.file_meta.MediaStorageSOPInstanceUID) == ecg.sop_instance_uid
    assert str(stored.StudyDate) != str(original.StudyDate)
    assert not any(element.tag.is_private for element in stored.iterall())
    raw = path.read_bytes()
    for identifier in (
        "642341",  # PatientID
        "19710123",  # birth date
        "03028041970546",  # accession number
        "13002689",  # admission ID
        "Galliera",  # institution
        str(original.SOPInstanceUID),
        str(original.StudyInstanceUID),
        str(original.SeriesInstanceUID),
    ):
        assert identifier.encode() not in raw, identifier
    assert stored.PatientIdentityRemoved == "YES"


def test_the_signal_api_serves_every_lead_exactly_as_the_source_holds_it(vessel_project, lead, client_for):
    report = run(vessel_project, ("ecg.dcm", SOURCE.read_bytes()))
    [result] = report.files
    assert (result.outcome, result.reason, result.items_created) == ("stored", "ecg", 0)
    ecg = Ecg.objects.get()
    original = source_dataset()
    expected = original.waveform_array(0)
    meanings = [c.ChannelSourceSequence[0].CodeMeaning for c in original.WaveformSequence[0].ChannelDefinitionSequence]

    body = client_for(lead).get(f"/api/ecgs/{ecg.pk}/signal/").json()
    assert body["leads"] == LEADS
    assert [f"Lead {lead_name}" for lead_name in LEADS] == [m.split(" (")[0] for m in meanings]  # channel order
    assert body["units"] == ["uV"] * 12
    assert (body["sampling_frequency"], body["total_samples"], body["start_sample"]) == (1000.0, 10000, 0)
    assert body["duration_s"] == 10.0
    assert len(body["samples"]) == 12
    for channel in range(12):
        assert body["samples"][channel] == expected[:, channel].tolist(), LEADS[channel]

    window = client_for(lead).get(f"/api/ecgs/{ecg.pk}/signal/?start=2&seconds=1.5").json()
    assert window["start_sample"] == 2000
    assert np.array_equal(np.array(window["samples"]).T, expected[2000:3500])

    too_long = client_for(lead).get(f"/api/ecgs/{ecg.pk}/signal/?seconds=61")
    assert too_long.status_code == 400 and "seconds" in too_long.json()
    past_end = client_for(lead).get(f"/api/ecgs/{ecg.pk}/signal/?start=10")
    assert past_end.status_code == 400 and past_end.json()["field"] == "start"

    detail = client_for(lead).get(f"/api/ecgs/{ecg.pk}/").json()
    assert (detail["patient"], detail["leads"], detail["duration_s"]) == (ecg.patient.pseudonym, LEADS, 10.0)
    listing = client_for(lead).get(f"/api/projects/{vessel_project.slug}/ecgs/").json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == ecg.pk


def test_the_same_file_again_is_a_duplicate_and_changed_content_a_uid_conflict(vessel_project):
    run(vessel_project, ("ecg.dcm", SOURCE.read_bytes()))
    files_before = media_files()
    [again] = run(vessel_project, ("again.dcm", SOURCE.read_bytes())).files
    assert again.outcome == "duplicate" and f"ECG {Ecg.objects.get().pk}" in again.message
    changed = source_dataset()
    changed.InstanceNumber = 2
    [conflict] = run(vessel_project, ("changed.dcm", to_bytes(changed))).files
    assert (conflict.outcome, conflict.reason) == ("rejected", "uid_conflict")
    assert Ecg.objects.count() == 1 and media_files() == files_before


def _three_lead_only() -> bytes:
    ds = source_dataset()
    group = ds.WaveformSequence[0]
    data = np.frombuffer(group.WaveformData, dtype="<i2").reshape(10000, 12)[:, :3]
    group.WaveformData = np.ascontiguousarray(data).tobytes()
    group.NumberOfWaveformChannels = 3
    group.ChannelDefinitionSequence = pydicom.Sequence(list(group.ChannelDefinitionSequence)[:3])
    del ds.WaveformSequence[1]
    return to_bytes(ds)


def _short_waveform_data() -> bytes:
    ds = source_dataset()
    ds.WaveformSequence[0].WaveformData = ds.WaveformSequence[0].WaveformData[:-6]
    return to_bytes(ds)


def _no_waveform() -> bytes:
    ds = source_dataset()
    del ds.WaveformSequence
    return to_bytes(ds)


@pytest.mark.parametrize(
    ("make", "reason", "words"),
    [
        (lambda: SOURCE.read_bytes()[: len(SOURCE.read_bytes()) * 2 // 3], "truncated", "truncated"),
        (_three_lead_only, "no_12_lead_group", "group 1: 3 channel(s) (I, II, III)"),
        (_short_waveform_data, "bad_waveform", "holds 239994 bytes of Waveform Data"),
        (_no_waveform, "no_waveform", "no Waveform Sequence"),
    ],
    ids=["truncated", "no-12-lead-group", "short-waveform-data", "no-waveform"],
)
def test_a_bad_ecg_file_is_rejected_with_its_reason_and_leaves_nothing(vessel_project, make, reason, words):
    [result] = run(vessel_project, ("bad.dcm", make())).files
    assert (result.outcome, result.reason) == ("rejected", reason), result.message
    assert words in result.message
    assert Ecg.objects.count() == 0 and Patient.objects.count() == 0
    assert media_files() == set()


def test_a_project_without_angiography_refuses_ecgs_and_has_no_ecg_link(oct_project, lead):
    [result] = run(oct_project, ("ecg.dcm", SOURCE.read_bytes())).files
    assert (result.outcome, result.reason) == ("rejected", "modality_mismatch")
    assert "coronary angiography (XA)" in result.message and Ecg.objects.count() == 0
    page = signed_in(lead).get(f"/projects/{oct_project.slug}/")
    assert page.status_code == 200 and 'id="ecgs-link"' not in page.content.decode()


def test_ecg_endpoints_and_pages_are_for_leads(vessel_project, lead, annotator, stranger, client_for):
    run(vessel_project, ("ecg.dcm", SOURCE.read_bytes()))
    ecg = Ecg.objects.get()
    urls = [
        f"/api/projects/{vessel_project.slug}/ecgs/",
        f"/api/projects/{vessel_project.slug}/ecgs/pairs.csv",
        f"/api/ecgs/{ecg.pk}/",
        f"/api/ecgs/{ecg.pk}/signal/?seconds=0.5",
    ]
    for url in urls:
        assert client_for(lead).get(url).status_code == 200, url
        assert client_for(annotator).get(url).status_code == 403, url
        assert client_for(stranger).get(url).status_code == 404, url
        assert client_for().get(url).status_code == 401, url
    pages = [f"/projects/{vessel_project.slug}/ecgs/", f"/projects/{vessel_project.slug}/ecgs/{ecg.pk}/"]
    for url in pages:
        assert signed_in(lead).get(url).status_code == 200, url
        assert signed_in(annotator).get(url).status_code == 403, url
        assert signed_in(stranger).get(url).status_code == 404, url
    page = signed_in(lead).get(pages[0]).content.decode()
    assert ecg.patient.pseudonym in page and "642341" not in page
    project_page = f"/projects/{vessel_project.slug}/"
    assert 'id="ecgs-link"' in signed_in(lead).get(project_page).content.decode()
    assert 'id="ecgs-link"' not in signed_in(annotator).get(project_page).content.decode()
    schema = client_for(lead).get("/api/schema/").content.decode()
    for path in ("/api/projects/{project_slug}/ecgs/", "/api/ecgs/{id}/signal/", "pairs.csv"):
        assert path in schema or path.replace("{id}", "{pk}") in schema, path


# --- Pairs on a hand-built case -----------------------------------------------------------------------------------


def _patient(pseudonym: str) -> Patient:
    return Patient.objects.create(pseudonym=pseudonym, identity_hash=pseudonym.lower().ljust(64, "0"))


def _ecg(project, patient: Patient, number: int) -> Ecg:
    return Ecg.objects.create(
        project=project,
        patient=patient,
        sop_instance_uid=f"2.25.{number}",
        sop_class_uid=pydicom.uid.TwelveLeadECGWaveformStorage,
        acquired_at=timezone.now() - timezone.timedelta(days=number),
        sampling_frequency=500,
        sample_count=5000,
        leads=LEADS,
        file_path=f"dicom/{project.pk}/ecg{number}.dcm",
        file_size=1,
        sha256="0" * 64,
    )


def _report(project, patient: Patient, study_uid: str, dominance: str, lesions, superseded: bool = False):
    study, _ = Study.objects.get_or_create(project=project, study_instance_uid=study_uid, defaults={"patient": patient})
    report = ExamReport.objects.create(
        project=project, study=study, dominance=dominance, superseded_at=timezone.now() if superseded else None
    )
    for row, (segment, percent) in enumerate(lesions, start=2):
        Lesion.objects.create(report=report, segment=segment, stenosis_percent=percent, row_number=row)
    return report


def test_pairs_export_matches_a_hand_computed_case(vessel_project, lead, client_for):
    project = vessel_project
    alpha, bravo, charlie = _patient("P-ALPHA"), _patient("P-BRAVO"), _patient("P-CHARLIE")
    # ALPHA, right dominant: RCA 100 (seg 1), LAD 95 (seg 7) and 70 (seg 6), LCX 50 (seg 12); a second exam, left
    # dominant, has a PDA lesion of 80 % that goes to the LCX. An older report of the first exam says LM 90: it is
    # superseded and ignored. → LM 0, LAD 95, LCX 80, RCA 100.
    _report(project, alpha, "1.1", "", [(5, 90)], superseded=True)
    _report(project, alpha, "1.1", "right", [(1, 100), (7, 95), (6, 70), (12, 50)])
    _report(project, alpha, "1.2", "left", [(4, 80)])
    # BRAVO, dominance not recorded: a PLA lesion of 60 % (seg 16) may be the RCA's or the LCX's. RCA already has 70 %
    # (seg 2), so it stays 70; LCX has only a 0 % lesion (seg 13), so the LCX is unknown. LM 100 (seg 5), LAD 0.
    _report(project, bravo, "2.1", "", [(16, 60), (2, 70), (13, 0), (5, 100)])
    # CHARLIE has only a superseded report: no pairs.
    _report(project, charlie, "3.1", "right", [(1, 100)], superseded=True)
    Item.objects.create(project=project, kind=ItemKind.CINE_RUN, patient=alpha, title="run", split=Split.TEST)
    ecg_a1, ecg_a2 = _ecg(project, alpha, 2), _ecg(project, alpha, 1)  # a1 recorded first
    ecg_b, _ = _ecg(project, bravo, 3), _ecg(project, charlie, 4)

    response = client_for(lead).get(f"/api/projects/{project.slug}/ecgs/pairs.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == PAIR_COLUMNS
    settings = parse_settings(project.task_type, project.settings)
    bravo_split = patient_split("P-BRAVO", settings)
    got = [
        (
            r["patient"],
            r["ecg_id"],
            r["vessel"],
            r["max_stenosis_percent"],
            r["label_0_vs_100"],
            r["label_0_vs_ge90"],
            r["label_lt70_vs_ge70"],
            r["split"],
        )
        for r in rows
    ]
    alpha_rows = [
        ("LM", "0", "0", "0", "0"),
        ("LAD", "95", "", "1", "1"),
        ("LCX", "80", "", "", "1"),
        ("RCA", "100", "1", "1", "1"),
    ]
    expected = [("P-ALPHA", str(ecg.pk), *row, "test") for ecg in (ecg_a1, ecg_a2) for row in alpha_rows] + [
        ("P-BRAVO", str(ecg_b.pk), *row, bravo_split)
        for row in [
            ("LM", "100", "1", "1", "1"),
            ("LAD", "0", "0", "0", "0"),
            ("LCX", "", "", "", ""),
            ("RCA", "70", "", "", "1"),
        ]
    ]
    assert got == expected
    assert rows[10]["note"].startswith("unknown: a PDA/PLA lesion of 60 %") and "(otherwise 0 %)" in rows[10]["note"]
    assert all(r["note"] == "" for i, r in enumerate(rows) if i != 10)
    assert rows[0]["ecg_sop_instance_uid"] == ecg_a1.sop_instance_uid
    splits_by_patient: dict[str, set[str]] = {}
    for r in rows:
        splits_by_patient.setdefault(r["patient"], set()).add(r["split"])
    assert all(len(splits) == 1 for splits in splits_by_patient.values())

    summary = ecg_pairs(project=project).summary
    assert (summary.ecgs, summary.ecgs_paired, summary.ecgs_without_report, summary.rows, summary.unknown_values) == (
        4,
        3,
        1,
        12,
        1,
    )
    assert summary.positives == {"label_0_vs_100": 3, "label_0_vs_ge90": 5, "label_lt70_vs_ge70": 8}
    assert summary.negatives == {"label_0_vs_100": 3, "label_0_vs_ge90": 3, "label_lt70_vs_ge70": 3}
    page = signed_in(lead).get(f"/projects/{project.slug}/ecgs/").content.decode()
    assert "3 of 4 ECGs paired (12 rows)" in page and "1 vessel value unknown" in page


def test_a_patient_without_items_gets_the_keyed_hash_split_and_a_locked_test_set_takes_no_one(vessel_project):
    project = vessel_project
    patients = [_patient(f"P-{n:04d}") for n in range(40)]
    for number, patient in enumerate(patients):
        _report(project, patient, f"9.{number}", "right", [(1, 75)])
        _ecg(project, patient, number)
    settings = parse_settings(project.task_type, project.settings)
    splits = {r["patient"]: r["split"] for r in ecg_pairs(project=project).rows}
    assert splits == {p.pseudonym: patient_split(p.pseudonym, settings) for p in patients}
    assert {"train", "validation", "test"} <= set(splits.values())  # 40 patients reach every split
    project.settings = {**project.settings, "test_set_locked": True}
    project.save(update_fields=["settings"])
    locked = {r["patient"]: r["split"] for r in ecg_pairs(project=project).rows}
    assert "test" not in locked.values()


def test_the_media_sweep_keeps_stored_ecgs_and_takes_those_no_row_refers_to(vessel_project):
    run(vessel_project, ("ecg.dcm", SOURCE.read_bytes()))
    ecg = Ecg.objects.get()
    assert orphaned_files(older_than=timedelta(0)) == []
    ecg.delete()
    assert orphaned_files(older_than=timedelta(0)) == [ecg.file_path]
