"""De-identifying one DICOM dataset in place with the Basic Profile and the Modified Dates option.

Every element, at every depth of nested sequences, gets the action its table row resolves to (see
:mod:`governance.deid.profile`); elements the table does not list are kept, except private elements (removed),
stale group lengths (removed), dates and date-times (shifted) and sequences (their items are cleaned the same
way). ``PatientID`` and ``PatientName`` become a keyed pseudonym of the patient; every date of the patient moves
by the same keyed number of days. Pixel data is never touched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from governance.deid.dates import shift_date, shift_datetime
from governance.deid.errors import DeidFileError
from governance.deid.keys import KeyedHasher
from governance.deid.profile import Action, Profile, load_profile
from medvl.io.phi_check import dicom_phi_findings

DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: dict[str, Any] = {"AS": "000D", "DA": "19000101", "DT": "19000101000000", "TM": "000000", "DS": "0", "IS": "0"}
_NUMBER_VRS = frozenset({"AT", "FL", "FD", "SL", "SS", "SV", "UL", "US", "UV"})
_BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})

PSEUDONYMISED_TAGS = (Tag("PatientID"), Tag("PatientName"))
METHOD_CODES = (  # (CodeValue, CodingSchemeDesignator, CodeMeaning) from PS3.16 CID 7050
    ("113100", "DCM", "Basic Application Confidentiality Profile"),
    ("113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
METHOD_TEXT = (
    "DICOM PS3.15 Basic Application Confidentiality Profile",
    "Retain Longitudinal Temporal Information Modified Dates",
    "medvl deid: keyed UIDs, pseudonyms and date shifts",
)


@dataclass
class DeidCounts:
    """How many data elements each kind of action changed in one dataset."""

    removed: int = 0
    emptied: int = 0
    dummied: int = 0
    uids_remapped: int = 0
    dates_shifted: int = 0
    private_removed: int = 0
    pseudonymised: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for reports)."""
        return asdict(self)


COUNT_FIELDS = tuple(DeidCounts().as_dict())


def _dummy_value(vr: str) -> Any:
    if vr in _DUMMY_BY_VR:
        return _DUMMY_BY_VR[vr]
    if vr in _NUMBER_VRS:
        return 0
    if vr in _BYTES_VRS:
        return b"\0\0"
    return DUMMY_TEXT


def _values(elem: DataElement) -> list[str]:
    if elem.value is None:
        return []
    return [str(v) for v in elem.value] if isinstance(elem.value, MultiValue) else [str(elem.value)]


def _vr(elem: DataElement | RawDataElement, tag: BaseTag) -> str:
    """The element's VR without decoding its value (implicit VR and UN fall back to the dictionary)."""
    if elem.VR and elem.VR != "UN":
        return elem.VR
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _unlisted_action(vr: str) -> Action:
    if vr in ("DA", "DT"):
        return Action.SHIFT_DATE
    if vr == "SQ":
        return Action.CLEAN_ITEMS
    return Action.KEEP


class _Cleaner:
    """Applies the profile to a dataset and, recursively, to the items of its sequences."""

    def __init__(self, profile: Profile, hasher: KeyedHasher, days: int) -> None:
        self.profile = profile
        self.hasher = hasher
        self.days = days
        self.counts = DeidCounts()

    def clean(self, ds: Dataset, skip: tuple[int, ...] = ()) -> None:
        """Apply the profile to every element of ``ds`` except the tags in ``skip``."""
        for tag in list(ds.keys()):
            if tag in skip:
                continue
            if tag.is_private:
                del ds[tag]
                self.counts.private_removed += 1
            elif tag.element == 0:
                del ds[tag]  # group length: retired, and wrong once the group changes
            else:
                vr = _vr(ds.get_item(tag), tag)
                rule = self.profile.rule_for(tag)
                action = rule.action(vr) if rule else _unlisted_action(vr)
                if action is not Action.KEEP:  # kept elements stay raw: never decoded, written back as read
                    self._apply(ds, ds[tag], action)

    def _apply(self, ds: Dataset, elem: DataElement, action: Action) -> None:
        if action is Action.REMOVE:
            del ds[elem.tag]
            self.counts.removed += 1
        elif action is Action.EMPTY:
            elem.value = Sequence() if elem.VR == "SQ" else None
            self.counts.emptied += 1
        elif action is Action.DUMMY:
            self._dummy(elem)
        elif action is Action.REMAP_UID:
            self._remap(elem)
        elif action is Action.SHIFT_DATE:
            self._shift(elem)
        elif action is Action.CLEAN_ITEMS:
            for item in elem.value or ():
                self.clean(item)

    def _dummy(self, elem: DataElement) -> None:
        if elem.VR == "UI":
            self._remap(elem)
            return
        elem.value = Sequence([Dataset()]) if elem.VR == "SQ" else _dummy_value(elem.VR)
        self.counts.dummied += 1

    def _remap(self, elem: DataElement) -> None:
        values = [v for v in _values(elem) if v.strip("\0 ")]
        if not values:
            return
        remapped = [self.hasher.uid(v) for v in values]
        elem.value = remapped if len(remapped) > 1 else remapped[0]
        self.counts.uids_remapped += 1

    def _shift(self, elem: DataElement) -> None:
        values = [v for v in _values(elem) if v.strip()]
        if not values:
            return
        shift = shift_date if elem.VR == "DA" else shift_datetime
        shifted = [shift(v, self.days) for v in values]
        if any(v is None for v in shifted):
            elem.value = None
            self.counts.emptied += 1
        else:
            elem.value = shifted if len(shifted) > 1 else shifted[0]
            self.counts.dates_shifted += 1


_IDENTITY_FALLBACKS = (
    ("PatientName", "name"),
    ("StudyInstanceUID", "study"),
    ("SeriesInstanceUID", "series"),
    ("FrameOfReferenceUID", "frame"),
    ("SOPInstanceUID", "instance"),
)


def patient_identity(ds: Dataset) -> str:
    """The text the pseudonym and the date shift are derived from: the patient ID (qualified by its issuer);
    for a header already stripped of it, the first non-empty of the patient name, study, series, frame of
    reference, instance (then each study, series... stands alone, but its files stay consistent).

    Raises:
        DeidFileError: the header holds none of these.
    """
    patient_id = str(ds.get("PatientID", "") or "").strip()
    if patient_id:
        return f"id:{str(ds.get('IssuerOfPatientID', '') or '').strip()}|{patient_id}"
    for keyword, label in _IDENTITY_FALLBACKS:
        value = str(ds.get(keyword, "") or "").strip()
        if value:
            return f"{label}:{value}"
    meta_instance = str(getattr(ds, "file_meta", {}).get("MediaStorageSOPInstanceUID", "") or "").strip()
    if meta_instance:
        return f"instance:{meta_instance}"
    raise DeidFileError(
        getattr(ds, "filename", None) or "<dataset>",
        "no PatientID, PatientName, study, series, frame of reference or instance UID to derive a pseudonym from",
    )


def _mark_deidentified(ds: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    previous = [v for v in _values(ds["DeidentificationMethod"]) if v not in METHOD_TEXT] if "DeidentificationMethod" in ds else []
    ds.DeidentificationMethod = previous + list(METHOD_TEXT)
    sequence = ds.get("DeidentificationMethodCodeSequence") or Sequence()
    present = {(item.get("CodingSchemeDesignator"), item.get("CodeValue")) for item in sequence}
    for value, scheme, meaning in METHOD_CODES:
        if (scheme, value) not in present:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = scheme
            item.CodeMeaning = meaning
            sequence.append(item)
    ds.DeidentificationMethodCodeSequence = sequence
    ds.LongitudinalTemporalInformationModified = "MODIFIED"


def deidentify_dataset(ds: Dataset, hasher: KeyedHasher, profile: Profile | None = None) -> DeidCounts:
    """De-identify ``ds`` in place and return what changed.

    Args:
        ds: the dataset (its ``file_meta`` is left to the caller, see :mod:`governance.deid.files`).
        hasher: keyed replacements (UIDs, pseudonym, date shift).
        profile: the confidentiality profile; the PS3.15 basic profile table by default.

    Raises:
        DeidFileError: no identity to derive a pseudonym from, or a direct identifier survived the profile
            (checked with :func:`medvl.io.phi_check.dicom_phi_findings`, so an edited table cannot leak silently).
    """
    identity = patient_identity(ds)
    cleaner = _Cleaner(profile or load_profile(), hasher, hasher.day_shift(identity))
    cleaner.clean(ds, skip=PSEUDONYMISED_TAGS)
    pseudonym = hasher.pseudonym(identity)
    ds.PatientID = pseudonym
    ds.PatientName = pseudonym
    cleaner.counts.pseudonymised = len(PSEUDONYMISED_TAGS)
    _mark_deidentified(ds)
    leftover = dicom_phi_findings(ds)
    if leftover:
        raise DeidFileError(
            getattr(ds, "filename", None) or "<dataset>",
            f"identifiers left after de-identification: {', '.join(leftover)}; check the profile table",
        )
    return cleaner.counts
