"""Settings validation, de-identification details, and the consumer/command edges."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.core.management import CommandError, call_command

from annotation.consumers import ProjectEventsConsumer
from annotation.ingest.deid import PatientKey, deidentify, remap_uid
from annotation.models import Instance, TaskType
from annotation.project_settings import SettingsError, default_settings, parse_settings
from annotation.services.events import members_event_send
from tests import dicom_samples as samples


def test_defaults_differ_by_task():
    assert default_settings(TaskType.OCT_CALCIUM).show_predictions_to_annotators is True
    assert default_settings(TaskType.VESSEL_TYPE).show_predictions_to_annotators is False
    assert default_settings(TaskType.SPECT_TERRITORY).accepted_modalities == ("NM", "OT")


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"colour": 1}, "colour"),
        ({"lease_minutes": 0}, "lease_minutes"),
        ({"lease_minutes": "30"}, "lease_minutes"),
        ({"overlap_rate": 1.5}, "overlap_rate"),
        ({"gold_rate": True}, "gold_rate"),
        ({"pseudo_label_threshold": 0.2}, "pseudo_label_threshold"),
        ({"accepted_modalities": []}, "accepted_modalities"),
        ({"accepted_modalities": ["XX"]}, "accepted_modalities"),
        ({"spect_reference": "gut"}, "spect_reference"),
        ({"test_handout_rate": 1.2}, "test_handout_rate"),
        ({"test_handout_rate": "0.2"}, "test_handout_rate"),
        ({"promotion_min_test_items": 1}, "promotion_min_test_items"),
        ({"promotion_min_test_items": 5.5}, "promotion_min_test_items"),
        ({"promotion_refresh_growth": 0}, "promotion_refresh_growth"),
        ({"promotion_refresh_growth": True}, "promotion_refresh_growth"),
        ({"training_seed": "0"}, "training_seed"),
        ({"training_hparams": {"classes": "LCA,PDA"}}, "training_hparams.classes"),
        ({"training_hparams": {"classes": ""}}, "training_hparams.classes"),
        ({"training_hparams": {"ensemble": 0}}, "training_hparams.ensemble"),
        ({"training_hparams": {"min_validation": 1}}, "training_hparams.min_validation"),
    ],
)
def test_bad_settings_name_their_field(raw, field):
    with pytest.raises(SettingsError) as error:
        parse_settings(TaskType.VESSEL_TYPE, raw)
    assert error.value.field == field


def test_good_settings_merge_over_defaults():
    parsed = parse_settings(TaskType.VESSEL_TYPE, {"overlap_rate": 0.25, "pseudo_label_threshold": 0.95})
    assert (parsed.overlap_rate, parsed.pseudo_label_threshold, parsed.accepted_modalities) == (0.25, 0.95, ("XA",))


def test_pseudonyms_and_uids_are_stable_keyed_and_distinct():
    key = PatientKey(patient_id="MRN1", name="", birth_date="", issuer="")
    assert key.pseudonym("k1") == key.pseudonym("k1") != key.pseudonym("k2")
    assert key.pseudonym("k1") != PatientKey("MRN2", "", "", "").pseudonym("k1")
    assert remap_uid("1.2.3", "k") == remap_uid("1.2.3", "k") != remap_uid("1.2.4", "k")
    assert remap_uid("1.2.3", "k").startswith("2.25.") and len(remap_uid("1.2.3", "k")) <= 64


def test_deidentify_scrubs_names_dates_and_nested_uids_but_keeps_class_uids():
    from pydicom import Dataset, Sequence

    ds = samples.dataset()
    ref = Dataset()
    ref.ReferencedSOPClassUID = samples.XA_CLASS
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.PerformingPhysicianName = "WHO^DR"
    ds.add_new(0x00091001, "LO", "private vendor data")
    deidentify(ds, patient=PatientKey("MRN1", "", "", ""), key="k")
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == samples.XA_CLASS
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == remap_uid("1.2.3.4.5", "k")
    assert "PerformingPhysicianName" not in ds and ds.SOPClassUID == samples.XA_CLASS
    assert 0x00091001 not in ds
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


@pytest.mark.django_db
def test_import_command_reports_each_file(vessel_project, tmp_path, capsys):
    (tmp_path / "a.dcm").write_bytes(samples.xa_bytes(seed=1))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.dcm").write_bytes(samples.xa_bytes(seed=2)[:500])
    call_command("import_dicom", str(tmp_path), "--project", vessel_project.slug)
    out = capsys.readouterr().out
    assert "stored    a.dcm" in out and "rejected  sub/b.dcm: truncated" in out
    assert "1 stored, 0 duplicate, 1 rejected, 1 item(s) created" in out
    assert "[1/2] " in out and "[2/2] " in out  # each file's line says how far the import has got
    assert Instance.objects.count() == 1
    with pytest.raises(CommandError, match="no project with slug"):
        call_command("import_dicom", str(tmp_path), "--project", "nope")
    with pytest.raises(CommandError, match="nothing could be stored"):
        call_command("import_dicom", str(tmp_path / "sub"), "--project", vessel_project.slug)


def _connect(user, slug):
    communicator = WebsocketCommunicator(ProjectEventsConsumer.as_asgi(), f"/ws/projects/{slug}/")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": {"slug": slug}}
    return communicator


@pytest.mark.django_db(transaction=True)
def test_project_websocket_admits_members_and_relays_their_events(vessel_project, annotator, stranger):
    async def scenario():
        member = _connect(annotator, vessel_project.slug)
        connected, _ = await member.connect()
        assert connected
        await database_sync_to_async(members_event_send)(vessel_project.pk, {"event": "ping", "n": 1})
        heard = await member.receive_json_from(timeout=5)
        assert heard["event"] == "ping" and heard["n"] == 1 and heard["id"] > 0
        await member.disconnect()
        for user, code in ((stranger, 4404), (AnonymousUser(), 4401)):
            outsider = _connect(user, vessel_project.slug)
            connected, close_code = await outsider.connect()
            await outsider.disconnect()  # nothing of the refused socket is left running when the loop closes
            assert (connected, close_code) == (False, code)

    async_to_sync(scenario)()
