"""De-identification on ingest, after the DICOM basic confidentiality profile (no retained dates or names).

Patient name and ID become a stable pseudonym derived from a keyed hash of the original ID; every
instance-level UID is remapped deterministically (so a re-import lands on the same UID and is
detected); person names, dates, times, institution and device identifiers and private tags are removed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from pydicom import Dataset, Sequence
from pydicom._uid_dict import UID_dictionary

# Removed outright (basic profile "X"); PN, DA, DT and TM values are blanked everywhere besides.
REMOVED_KEYWORDS = (
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientBirthName",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientMotherBirthName",
    "MedicalRecordLocator",
    "EthnicGroup",
    "Occupation",
    "AdditionalPatientHistory",
    "PatientComments",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "PatientInsurancePlanCodeSequence",
    "MilitaryRank",
    "BranchOfService",
    "CountryOfResidence",
    "RegionOfResidence",
    "PatientReligiousPreference",
    "PatientState",
    "MedicalAlerts",
    "Allergies",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "InstitutionCodeSequence",
    "StationName",
    "DeviceSerialNumber",
    "DetectorID",
    "PlateID",
    "RequestAttributesSequence",
    "ReferencedPatientSequence",
    "PerformedProcedureStepID",
    "ScheduledProcedureStepID",
    "RequestedProcedureID",
    "AdmissionID",
    "AdmittingDiagnosesDescription",
    "ImageComments",
    "StudyComments",
    "TextComments",
    "ContentCreatorName",
    "PersonName",
    "PersonAddress",
    "PersonTelephoneNumbers",
    "ResponsibleOrganization",
    "ResponsiblePerson",
    "CurrentPatientLocation",
    "PatientInstitutionResidence",
    "VisitComments",
    "PhysiciansOfRecordIdentificationSequence",
    "PerformingPhysicianIdentificationSequence",
    "OperatorIdentificationSequence",
    "ReferringPhysicianIdentificationSequence",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
)
# Type 2 attributes that must stay present but empty (basic profile "Z").
EMPTIED_KEYWORDS = ("AccessionNumber", "StudyID", "ReferringPhysicianName", "PatientSex")
KEEP_UIDS_KEYWORDS = frozenset({"SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID"})
BLANKED_VRS = frozenset({"PN", "DA", "DT", "TM"})


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


def deidentify(ds: Dataset, *, pseudonym: str, key: str) -> None:
    """Strip identifying data from `ds` in place and stamp it as de-identified."""
    ds.remove_private_tags()
    for keyword in REMOVED_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    _scrub(ds, key)
    for keyword in EMPTIED_KEYWORDS:
        if keyword in ds:
            setattr(ds, keyword, "")
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Lumen basic profile: names, IDs, dates removed; UIDs remapped"
    code = Dataset()
    code.CodeValue = "113100"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    if hasattr(ds, "file_meta") and "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _scrub(ds: Dataset, key: str) -> None:
    for element in list(ds.iterall()):
        if element.VR in BLANKED_VRS:
            element.value = ""
        elif element.VR == "UI" and element.value and element.keyword not in KEEP_UIDS_KEYWORDS:
            if isinstance(element.value, str):
                if element.value not in UID_dictionary:
                    element.value = remap_uid(element.value, key)
            else:
                element.value = [v if v in UID_dictionary else remap_uid(v, key) for v in element.value]
