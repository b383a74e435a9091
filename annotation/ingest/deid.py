"""De-identification on ingest: the DICOM Basic Application Confidentiality Profile, driven by its table.

The actions per attribute come from PS3.15 Table E.1-1 as published by the standard (edition 2026c, shipped
as data by `dicom-anonymizer`), applied at every nesting level. Two options of the profile are claimed and
recorded in the file (DeidentificationMethodCodeSequence):

- **Retain Longitudinal Temporal Information With Modified Dates** (113107): every date is moved back by a
  whole number of weeks that is the same for all of one patient's files (derived from a keyed hash, never
  stored), so intervals between a patient's studies survive while the calendar dates and the year do not.
  Times of day are kept; the patient's own dates (birth) follow the basic profile.
- **Clean Descriptors** (113105): study, series and protocol descriptions keep only words from a vocabulary
  of imaging terms (views, vessels, phases, modalities) and short numbers; everything else is dropped.

Patient name and ID become a stable pseudonym from a keyed hash of the original ID; instance UIDs are remapped
deterministically with a keyed hash (a re-import lands on the same UID and is found); private tags go.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as profile_table
from pydicom import DataElement, Dataset, Sequence

PROFILE_EDITION = "2026c"
# De-identification Method is LO (64 characters a value) and multi-valued: one clause per value.
METHOD = [
    f"Lumen: PS3.15 basic profile (table E.1-1, {PROFILE_EDITION})",
    "clean descriptors",
    "dates shifted per patient",
    "UIDs remapped",
]
# (code value, meaning) of the profile and the options applied, as DICOM's CID 7050 names them.
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113105", "Clean Descriptors Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)

# Descriptors the Clean Descriptors option rewrites instead of removing (the option's "C" attributes that
# imaging files of these modalities carry).
CLEANED_DESCRIPTORS = frozenset(
    {
        "StudyDescription",
        "SeriesDescription",
        "ProtocolName",
        "PerformedProcedureStepDescription",
        "RequestedProcedureDescription",
        "ScheduledProcedureStepDescription",
        "AcquisitionDeviceProcessingDescription",
        "DerivationDescription",
    }
)
# The words a cleaned descriptor may keep: imaging vocabulary that cannot name a person or a place.
DESCRIPTOR_VOCABULARY = frozenset(
    """
    AC AP ANGIO ANGIOGRAPHY ANTERIOR APEX APICAL AXIAL AXIS BASAL BASE BASELINE BRANCH BULLSEYE BYPASS CARDIAC
    CATH CAU CAUD CAUDAL CINE CIRCUMFLEX CORONARY CORRECTED CRA CRAN CRANIAL CT CX DESCENDING DIAGONAL DISTAL
    DOSE EXERCISE FLUORO FOLLOW FRAME FRAMES GATED GRAFT HEART HLA IMAGE IMAGES INFERIOR INTRAVASCULAR IVOCT
    LAD LAO LAT LATERAL LCA LCX LEFT LESION LIMA LM LOW LV MAIN MAP MARGINAL MID MPI MYOCARDIAL NC NM OCT
    OFDI OSTIAL PA PCI PDA PERFUSION PHASE PLA POLAR POST POSTERIOR PRE PROTOCOL PROXIMAL PULLBACK RAO RCA
    RECON REST RIGHT ROUTINE RUN RV SA SEPTAL SERIES SESTAMIBI SHORT SPECT STENT STRESS STUDY SUMMED SVG
    TETROFOSMIN THALLIUM TOMO UNGATED UP VIEW VLA WALL XA ADENOSINE REGADENOSON DIPYRIDAMOLE DOBUTAMINE
    """.split()
)
_WORDS = re.compile(r"[A-Za-z]+|\d+")
_DUMMY_TEXT = "ANONYMIZED"
# Whole weeks (weekdays survive) between one and about ten years back.
SHIFT_WEEKS = (52, 520)


@dataclass(frozen=True)
class PatientKey:
    """The original identity of a patient as found in a file, before it is replaced."""

    patient_id: str
    name: str
    birth_date: str
    issuer: str

    def identity_hash(self, key: str) -> str:
        """Return the keyed hash that finds this patient again."""
        message = f"{self.issuer}\x00{self.patient_id}".encode()
        return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()

    def pseudonym(self, key: str) -> str:
        """Return the stable, non-reversible pseudonym shown everywhere instead of the patient's identity."""
        digest = hmac.new(key.encode(), f"pseudonym\x00{self.identity_hash(key)}".encode(), hashlib.sha256).digest()
        return "P-" + base64.b32encode(digest[:8]).decode().rstrip("=")[:10]

    def date_shift(self, key: str) -> dt.timedelta:
        """Return how far back this patient's dates move: the same for every file of the patient, keyed."""
        digest = hmac.new(key.encode(), f"date-shift\x00{self.identity_hash(key)}".encode(), hashlib.sha256).digest()
        low, high = SHIFT_WEEKS
        return dt.timedelta(weeks=low + int.from_bytes(digest[:8], "big") % (high - low + 1))


def patient_key_from(ds: Dataset) -> PatientKey:
    """Read the identity of the patient a dataset belongs to; files with no ID fall back to their study."""
    patient_id = str(ds.get("PatientID", "") or "").strip()
    name = str(ds.get("PatientName", "") or "").strip()
    birth = str(ds.get("PatientBirthDate", "") or "").strip()
    issuer = str(ds.get("IssuerOfPatientID", "") or "").strip()
    if not patient_id:
        # Anonymous files: each study stands for its own unknown patient rather than merging strangers.
        patient_id = f"no-id:{name}:{birth}:{ds.get('StudyInstanceUID', '')}"
    return PatientKey(patient_id=patient_id, name=name, birth_date=birth, issuer=issuer)


def remap_uid(uid: str, key: str) -> str:
    """Map an original UID to a new 2.25 UID, the same every time for the same key (keyed, so not reversible)."""
    digest = hmac.new(key.encode(), f"uid\x00{uid}".encode(), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def clean_descriptor(text: str) -> str:
    """Keep the imaging words and short numbers of a free-text descriptor, in order; drop everything else."""
    words = [w.upper() for w in _WORDS.findall(text)]
    return " ".join(w for w in words if w in DESCRIPTOR_VOCABULARY or (w.isdigit() and len(w) <= 3))


def shift_date(value: str, shift: dt.timedelta) -> str:
    """Move a DA value (YYYYMMDD) back by `shift`; anything that is not a whole date becomes empty."""
    value = value.strip()
    try:
        day = dt.datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        return ""
    try:
        return (day - shift).strftime("%Y%m%d")
    except OverflowError:  # before year 1
        return ""


def shift_datetime(value: str, shift: dt.timedelta) -> str:
    """Move the date part of a DT value back by `shift`, keeping its time and offset; a partial DT becomes empty."""
    value = value.strip()
    if len(value) < 8:
        return ""
    date = shift_date(value[:8], shift)
    return date + value[8:] if date else ""


@dataclass(frozen=True)
class _Context:
    key: str
    shift: dt.timedelta


Action = Callable[[Dataset, DataElement, _Context], None]


def deidentify(ds: Dataset, *, patient: PatientKey, key: str) -> None:
    """Strip identifying data from `ds` in place, by the profile's table and the options above, and stamp it."""
    ds.remove_private_tags()
    _apply_profile(ds, _Context(key=key, shift=patient.date_shift(key)))
    pseudonym = patient.pseudonym(key)
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = METHOD
    ds.DeidentificationMethodCodeSequence = Sequence()
    for value, meaning in METHOD_CODES:
        add_method_code(ds, value, meaning)
    if hasattr(ds, "file_meta") and "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def add_method_code(ds: Dataset, value: str, meaning: str) -> None:
    """Record a de-identification profile or option (CID 7050) in the file, once."""
    codes = ds.get("DeidentificationMethodCodeSequence") or Sequence()
    if value not in [str(c.get("CodeValue", "")) for c in codes]:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = codes


def _apply_profile(ds: Dataset, context: _Context) -> None:
    """Apply the table to every element of `ds`, then to the items of the sequences that are left."""
    actions, masked = _profile_actions()
    for element in list(ds):
        tag = (element.tag.group, element.tag.element)
        action = actions.get(tag) or next((a for (g, e, gm, em), a in masked if _matches(tag, g, e, gm, em)), None)
        if element.keyword in CLEANED_DESCRIPTORS:
            action = _clean
        elif element.VR in ("DA", "DT", "TM") and element.tag.group != 0x0010 and action is not _remove:
            action = _shift  # the longitudinal option: dates move, times stay
        if action is not None:
            action(ds, element, context)
        if element.tag in ds and element.VR == "SQ":
            for item in ds[element.tag].value:
                _apply_profile(item, context)


def _matches(tag: tuple[int, int], group: int, element: int, group_mask: int, element_mask: int) -> bool:
    return tag[0] & group_mask == group & group_mask and tag[1] & element_mask == element & element_mask


@cache
def _profile_actions() -> tuple[dict[tuple[int, int], Action], list[tuple[tuple[int, int, int, int], Action]]]:
    """Map every attribute of Table E.1-1 to our action for its basic-profile code.

    Where the table leaves a choice by IOD type (Z/D, X/D, X/Z/D) the value is replaced by a dummy, so a stored
    file stays a valid instance of its IOD; X/Z empties; X/Z/U* (sequences of references) keeps the sequence
    and remaps the UIDs inside it.
    """
    by_code: dict[str, Action] = {
        "D_TAGS": _dummy,
        "Z_TAGS": _empty,
        "X_TAGS": _remove,
        "U_TAGS": _remap,
        "Z_D_TAGS": _dummy,
        "X_Z_TAGS": _empty,
        "X_D_TAGS": _dummy,
        "X_Z_D_TAGS": _dummy,
        "X_Z_U_STAR_TAGS": _references,
    }
    exact: dict[tuple[int, int], Action] = {}
    masked: list[tuple[tuple[int, int, int, int], Action]] = []
    for code, action in by_code.items():
        for tag in getattr(profile_table, code):
            if len(tag) == 2:
                exact[tag] = action
            else:
                masked.append((tag, action))
    return exact, masked


def _remove(ds: Dataset, element: DataElement, context: _Context) -> None:
    del ds[element.tag]


def _empty(ds: Dataset, element: DataElement, context: _Context) -> None:
    if element.VR == "SQ":
        element.value = Sequence()
    elif element.VR in ("US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        del ds[element.tag]  # binary values have no "empty" that means nothing
    else:
        element.value = ""


def _dummy(ds: Dataset, element: DataElement, context: _Context) -> None:
    """Replace with a value of the right VR that carries nothing (an empty sequence for sequences)."""
    if element.VR == "UI":
        _remap(ds, element, context)
    elif element.VR in ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"):
        element.value = _DUMMY_TEXT if element.VR != "AE" else "ANONYMOUS"
    elif element.VR in ("DS", "IS"):
        element.value = "0"
    elif element.VR == "AS":
        element.value = "000Y"
    elif element.VR == "UR":
        element.value = "http://anonymized.invalid"
    else:
        _empty(ds, element, context)


def _remap(ds: Dataset, element: DataElement, context: _Context) -> None:
    if element.VR != "UI" or not element.value:
        return
    if isinstance(element.value, str):
        element.value = remap_uid(element.value, context.key)
    else:
        element.value = [remap_uid(str(v), context.key) for v in element.value]


def _references(ds: Dataset, element: DataElement, context: _Context) -> None:
    """X/Z/U*: a sequence of references stays; the instance UIDs inside it are remapped as the table walks it."""
    if element.VR == "UI":
        _remap(ds, element, context)
    elif element.VR != "SQ":
        _empty(ds, element, context)


def _clean(ds: Dataset, element: DataElement, context: _Context) -> None:
    values = element.value if element.VM > 1 else [element.value]
    cleaned = [clean_descriptor(str(v or "")) for v in values]
    element.value = cleaned if element.VM > 1 else cleaned[0]


def _shift(ds: Dataset, element: DataElement, context: _Context) -> None:
    if element.VR == "TM" or not element.value:
        return
    shift = shift_date if element.VR == "DA" else shift_datetime
    if isinstance(element.value, str):
        element.value = shift(element.value, context.shift)
    else:
        element.value = [shift(str(v), context.shift) for v in element.value]
