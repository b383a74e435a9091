"""De-identification by the profile's table, with the dates shifted per patient and the descriptors cleaned."""

from __future__ import annotations

import datetime as dt

import pytest
from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table
from pydicom import Dataset, Sequence
from pydicom.datadict import dictionary_VR, keyword_for_tag

from annotation.ingest.deid import (
    CLEANED_DESCRIPTORS,
    PatientKey,
    clean_descriptor,
    deidentify,
    remap_uid,
    shift_date,
    shift_datetime,
)
from tests import dicom_samples as samples

KEY = "test-pseudonym-key"
JANE = PatientKey("MRN0001", "DOE^JANE", "19580312", "")
TEXT_VRS = {
    **{"AE": "SECRETAE", "CS": "SECRET", "LO": "Secret LO", "LT": "Secret LT", "PN": "SECRET^PN", "SH": "SECRET SH"},
    **{"ST": "Secret ST", "UC": "Secret UC", "UT": "Secret UT", "DS": "12.5", "IS": "77", "AS": "067Y"},
    **{"DA": "20240105", "DT": "20240105101500", "TM": "101500", "UI": "1.2.826.0.1.3680043.99.1"},
    "UR": "http://x.org/secret",
}


def _table_dataset() -> tuple[Dataset, dict[int, tuple[str, str]]]:
    """A dataset holding every attribute of Table E.1-1 with a text-like VR, each with a recognisable value."""
    ds = samples.dataset()
    planted = {}
    for code in ("D_TAGS", "Z_TAGS", "X_TAGS", "U_TAGS", "Z_D_TAGS", "X_Z_TAGS", "X_D_TAGS", "X_Z_D_TAGS"):
        for entry in getattr(table, code):
            if len(entry) != 2:
                continue  # repeating groups (overlays, curves): see the test below
            tag = entry[0] << 16 | entry[1]
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
            if vr in TEXT_VRS and entry[0] not in (0x0002, 0x0010) and keyword_for_tag(tag):
                ds.add_new(tag, vr, TEXT_VRS[vr])
                planted[tag] = (code, vr)
    return ds, planted


def test_every_attribute_of_the_profile_table_gets_its_action():
    ds, planted = _table_dataset()
    assert len(planted) > 300  # the table, not a hand list
    deidentify(ds, patient=JANE, key=KEY)
    shift = JANE.date_shift(KEY)
    for tag, (code, vr) in planted.items():
        keyword = keyword_for_tag(tag)
        original = TEXT_VRS[vr]
        if keyword in CLEANED_DESCRIPTORS:
            assert ds[tag].value == clean_descriptor(original), keyword
        elif vr in ("DA", "DT", "TM") and code != "X_TAGS":
            expected = {"DA": shift_date(original, shift), "DT": shift_datetime(original, shift), "TM": original}[vr]
            assert ds[tag].value == expected, keyword
        elif code == "X_TAGS":
            assert tag not in ds, keyword
        elif code == "U_TAGS" or vr == "UI":
            assert ds[tag].value == remap_uid(original, KEY), keyword
        elif code in ("Z_TAGS", "X_Z_TAGS"):
            assert ds[tag].value in ("", None), keyword
        else:  # D, Z/D, X/D, X/Z/D: a dummy of the right VR
            assert str(ds[tag].value) in ("ANONYMIZED", "ANONYMOUS", "0", "000Y", "http://anonymized.invalid"), keyword
    assert "SECRET" not in str(ds).upper().replace("SECRETS", "")


def test_dates_move_back_by_whole_weeks_the_same_for_every_file_of_a_patient():
    shift = JANE.date_shift(KEY)
    assert shift == JANE.date_shift(KEY) and shift.days % 7 == 0 and 364 <= shift.days <= 3640
    others = {PatientKey(f"MRN{i}", "", "", "").date_shift(KEY) for i in range(20)}
    assert len(others) > 15  # each patient has their own shift
    assert JANE.date_shift("another-key") != shift or JANE.date_shift("third-key") != shift
    first, second = samples.dataset(), samples.dataset()
    first.StudyDate, second.StudyDate = "20240105", "20240319"
    second.AcquisitionDateTime = "20240319081500.25+0100"
    second.StudyTime = "081500"
    for ds in (first, second):
        deidentify(ds, patient=JANE, key=KEY)
    dates = [dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date() for ds in (first, second)]
    assert dates[1] - dates[0] == dt.timedelta(days=74)  # intervals hold
    assert dates[0] == dt.date(2024, 1, 5) - shift and dates[0].weekday() == dt.date(2024, 1, 5).weekday()
    assert second.AcquisitionDateTime == (dt.date(2024, 3, 19) - shift).strftime("%Y%m%d") + "081500.25+0100"
    assert second.StudyTime == "081500"
    assert first.PatientBirthDate == ""  # the patient's own dates follow the basic profile
    assert first.LongitudinalTemporalInformationModified == "MODIFIED"
    assert [c.CodeValue for c in first.DeidentificationMethodCodeSequence] == ["113100", "113105", "113107"]
    # De-identification Method is LO: each of its values holds at most 64 characters (dciodvfy checks this).
    method = list(first.DeidentificationMethod)
    assert method[0].startswith("Lumen: PS3.15 basic profile") and all(len(value) <= 64 for value in method)


@pytest.mark.parametrize(
    ("value", "shifted"),
    [("20240105", "20231006"), ("2024", ""), ("20241301", ""), ("nonsense", ""), ("00010103", "")],
)
def test_a_date_that_is_not_a_whole_date_is_dropped_rather_than_kept(value, shifted):
    assert shift_date(value, dt.timedelta(weeks=13)) == shifted


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("LAO 30 / CRA 20", "LAO 30 CRA 20"),
        ("Dr. Smith's RCA run 2 - MRN 0012345678", "RCA RUN 2"),
        ("STRESS polar map (Jane Doe, 12.03.1958)", "STRESS POLAR MAP 12 03"),
        ("St. Example Hospital cath lab", "CATH"),
        ("", ""),
    ],
)
def test_descriptors_keep_only_imaging_words_and_short_numbers(text, cleaned):
    assert clean_descriptor(text) == cleaned


def test_the_profile_reaches_into_nested_sequences():
    ds = samples.dataset()
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.3.4.5"
    inner.ReferencedSOPClassUID = samples.XA_CLASS
    frame = Dataset()
    frame.FrameAcquisitionDateTime = "20240105101500"
    frame.OperatorsName = "NURSE^RATCHED"
    frame.ReferencedImageSequence = Sequence([inner])
    ds.PerFrameFunctionalGroupsSequence = Sequence([frame])
    deidentify(ds, patient=JANE, key=KEY)
    frame = ds.PerFrameFunctionalGroupsSequence[0]
    assert frame.OperatorsName == "ANONYMIZED"  # X/Z/D: a dummy keeps the IOD valid
    assert frame.FrameAcquisitionDateTime == shift_datetime("20240105101500", JANE.date_shift(KEY))
    assert frame.ReferencedImageSequence[0].ReferencedSOPInstanceUID == remap_uid("1.2.3.4.5", KEY)
    assert frame.ReferencedImageSequence[0].ReferencedSOPClassUID == samples.XA_CLASS


def test_overlays_and_curves_go_with_their_repeating_groups():
    ds = samples.dataset()
    ds.add_new(0x60003000, "OW", b"\x01\x00" * 8)  # overlay data: may hold burned text
    ds.add_new(0x60004000, "LT", "overlay comment")
    ds.add_new(0x50000010, "US", 3)
    deidentify(ds, patient=JANE, key=KEY)
    assert 0x60003000 not in ds and 0x60004000 not in ds and 0x50000010 not in ds
