"""A small detector of direct patient identifiers left in a DICOM header, for ingestion policies.

``medvl ingest`` uses it to warn about, or by policy refuse, sources that still carry PHI; the de-identifier uses it
to check its own output. It looks at the top-level header only (where the Patient, Visit and Study modules live)
and does not judge dates, free text or pixels.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

DIRECT_IDENTIFIERS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientTelecomInformation",
    "MedicalRecordLocator",
    "PatientInsurancePlanCodeSequence",
    "InsurancePlanIdentification",
    "ReferencedPatientPhotoSequence",
    "ResponsiblePerson",
    "AccessionNumber",
    "AdmissionID",
    "ServiceEpisodeID",
)
"""Attributes that identify a patient directly (names, record numbers, contact details, birth date)."""

PSEUDONYM_CARRIERS = ("PatientName", "PatientID")
"""Identifiers a de-identified header may hold as pseudonyms once ``PatientIdentityRemoved`` is ``YES``."""

IDENTITY_FLAG = "PatientIdentityRemoved"


def _has_value(ds: Dataset, keyword: str) -> bool:
    if keyword not in ds:
        return False
    elem = ds[keyword]
    if elem.value is None:
        return False
    if elem.VR == "SQ":
        return len(elem.value) > 0
    return str(elem.value).strip("\0 ") != ""


def dicom_phi_findings(ds: Dataset) -> list[str]:
    """The direct identifiers a DICOM header still carries.

    Args:
        ds: a dataset as read by ``pydicom.dcmread`` (``stop_before_pixels=True`` is enough).

    Returns:
        Keywords of the identifiers in :data:`DIRECT_IDENTIFIERS` that are present with a non-empty value, in
        that order, followed by ``"PatientIdentityRemoved"`` when that flag is not ``YES``. When the flag is
        ``YES``, a non-empty ``PatientName`` / ``PatientID`` is taken to be a pseudonym and not reported. An empty
        list means no direct identifier was found and the header declares itself de-identified.
    """
    identity_removed = str(ds.get(IDENTITY_FLAG, "") or "").strip().upper() == "YES"
    findings = [
        keyword
        for keyword in DIRECT_IDENTIFIERS
        if _has_value(ds, keyword) and not (identity_removed and keyword in PSEUDONYM_CARRIERS)
    ]
    if not identity_removed:
        findings.append(IDENTITY_FLAG)
    return findings
