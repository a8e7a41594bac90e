"""The building blocks of de-identification: the profile table, keys, date shifts, burned-in and PHI checks."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from governance.deid.burned_in import burned_in_reason
from governance.deid.dates import shift_date, shift_datetime
from governance.deid.errors import DeidConfigError
from governance.deid.keys import KEY_ENV, KEY_FILE_ENV, KeyedHasher, load_key
from governance.deid.profile import Action, Profile, Rule, load_profile
from medvl.io.phi_check import dicom_phi_findings

KEY = b"test-key-0123456789abcdef"


def test_table_holds_the_basic_profile():
    profile = load_profile()
    assert len(profile) > 600
    expected = {
        0x00100010: ("Patient's Name", "Z", ""),
        0x00100020: ("Patient ID", "Z/D", ""),
        0x00100030: ("Patient's Birth Date", "Z", ""),
        0x0020000D: ("Study Instance UID", "U", ""),
        0x00080018: ("SOP Instance UID", "U", ""),
        0x00081140: ("Referenced Image Sequence", "X/Z/U*", ""),
        0x00080020: ("Study Date", "Z", "C"),
        0x00080080: ("Institution Name", "X/Z/D", ""),
        0x00080050: ("Accession Number", "Z", ""),
    }
    for tag, (name, basic, modified) in expected.items():
        rule = profile.rule_for(tag)
        assert (rule.name, rule.basic, rule.modified_dates) == (name, basic, modified)
    for tag in (0x00200032, 0x00200037, 0x00280030, 0x00180050, 0x7FE00010, 0x00080060):
        assert profile.rule_for(tag) is None  # geometry, modality and pixels are not listed: kept


def test_repeating_group_masks():
    profile = load_profile()
    assert profile.rule_for(0x60023000).name == "Overlay Data"
    assert profile.rule_for(0x601E4000).name == "Overlay Comments"
    assert profile.rule_for(0x50021234).name == "Curve Data"
    assert profile.rule_for(0x60000010) is None  # overlay rows: not listed


@pytest.mark.parametrize(
    ("basic", "modified", "vr", "action"),
    [
        ("X", "", "LO", Action.REMOVE),
        ("Z", "", "PN", Action.EMPTY),
        ("D", "", "LO", Action.DUMMY),
        ("U", "", "UI", Action.REMAP_UID),
        ("X/Z", "", "LO", Action.EMPTY),
        ("X/D", "", "SQ", Action.DUMMY),
        ("Z/D", "", "PN", Action.DUMMY),
        ("X/Z/D", "", "SH", Action.DUMMY),
        ("X/Z/U*", "", "SQ", Action.CLEAN_ITEMS),
        ("Z", "C", "DA", Action.SHIFT_DATE),
        ("X/Z/D", "C", "DT", Action.SHIFT_DATE),
        ("Z", "C", "TM", Action.KEEP),
        ("X", "C", "SH", Action.REMOVE),
        ("D", "C", "OB", Action.DUMMY),
    ],
)
def test_action_resolution(basic, modified, vr, action):
    assert Rule("(0008,0050)", "n", basic, modified).action(vr) is action


def test_malformed_table_is_refused(tmp_path):
    table = tmp_path / "profile.csv"
    table.write_text('# comment\ntag,name,basic,modified_dates\n"(0010,0010)",Patient\'s Name,Z,\n"(0010,0020)",ID,Q,\n')
    with pytest.raises(DeidConfigError, match="data row 2: unknown action code 'Q'"):
        load_profile(table)
    table.write_text('tag,name,basic,modified_dates\n"(0010,0010)",a,Z,\n"(0010,0010)",b,X,\n')
    with pytest.raises(DeidConfigError, match="listed twice"):
        load_profile(table)
    with pytest.raises(DeidConfigError, match="cannot read"):
        load_profile(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="bad tag"):
        Profile([Rule("0010,0010", "x", "X", "")])


def test_load_key_sources(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(DeidConfigError, match="no de-identification key.*secrets.token_hex"):
        load_key()
    key_file = tmp_path / "deid.key"
    key_file.write_text("ab" * 16 + "\n")
    assert load_key(key_file) == b"ab" * 16
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    assert load_key() == b"ab" * 16
    monkeypatch.delenv(KEY_FILE_ENV)
    monkeypatch.setenv(KEY_ENV, "x" * 20)
    assert load_key() == b"x" * 20
    key_file.write_text("short")
    with pytest.raises(DeidConfigError, match="5 bytes, at least 16"):
        load_key(key_file)
    with pytest.raises(DeidConfigError, match="cannot read the key file"):
        load_key(tmp_path / "absent.key")


def test_keyed_uids_are_valid_stable_and_key_dependent():
    hasher = KeyedHasher(KEY)
    original = "1.2.840.113619.2.55.3.604688119.868.1234567890.123"
    new = hasher.uid(original)
    assert new.startswith("2.25.") and len(new) <= 64 and UID(new).is_valid
    assert hasher.uid(original) == new == hasher.uid(original + "\0")
    assert hasher.uid(original + "4") != new
    assert KeyedHasher(b"another-key-0123456789").uid(original) != new
    with pytest.raises(ValueError):
        KeyedHasher(b"short")


def test_pseudonyms_and_day_shifts():
    hasher = KeyedHasher(KEY)
    pseudonym = hasher.pseudonym("id:|12345")
    assert pseudonym == hasher.pseudonym("id:|12345") and len(pseudonym) == 21 and pseudonym.startswith("ANON-")
    assert hasher.pseudonym("id:|12346") != pseudonym
    shifts = {hasher.day_shift(f"id:|{i}") for i in range(200)}
    assert all(-3650 <= s <= -365 for s in shifts) and len(shifts) > 150
    assert len(hasher.fingerprint) == 16 and KEY.hex() not in hasher.fingerprint


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20200301", -1, "20200229"),
        ("20210301", -1, "20210228"),
        ("20200115", -400, "20181211"),
        (" 19991231 ", 1, "20000101"),
        ("2020", -1, None),
        ("20200230", -1, None),
        ("2020.03.01", -1, None),
        ("00010101", -1, None),
    ],
)
def test_shift_date(value, days, expected):
    assert shift_date(value, days) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200301101530.123456", "20200229101530.123456"),
        ("20200301101530+0100", "20200229101530"),
        ("20200301-0500", "20200229"),
        ("2020030110", "2020022910"),
        ("202003", None),
        ("20200301ab", None),
    ],
)
def test_shift_datetime(value, expected):
    assert shift_datetime(value, -1) == expected


def _image(**attributes) -> Dataset:
    ds = Dataset()
    ds.PixelData = b"\0\0"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    ("attributes", "suspect"),
    [
        ({"Modality": "CT"}, False),
        ({"Modality": "CT", "BurnedInAnnotation": "YES"}, True),
        ({"Modality": "US"}, True),
        ({"Modality": "US", "BurnedInAnnotation": "NO"}, False),
        ({"Modality": "XC", "BurnedInAnnotation": ""}, True),
        ({"Modality": "OT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, True),
        ({"Modality": "OT", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "BurnedInAnnotation": "NO"}, False),
    ],
)
def test_burned_in_reason(attributes, suspect):
    assert (burned_in_reason(_image(**attributes)) is not None) is suspect


def test_objects_without_pixels_are_never_suspect():
    ds = Dataset()
    ds.Modality = "US"
    ds.BurnedInAnnotation = "YES"
    assert burned_in_reason(ds) is None


def test_phi_findings():
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "12345"
    ds.PatientBirthDate = "19700101"
    ds.AccessionNumber = ""
    ds.OtherPatientIDsSequence = Sequence()
    ds.Modality = "CT"
    assert dicom_phi_findings(ds) == ["PatientName", "PatientID", "PatientBirthDate", "PatientIdentityRemoved"]
    ds.PatientIdentityRemoved = "YES"
    assert dicom_phi_findings(ds) == ["PatientBirthDate"]
    del ds.PatientBirthDate
    assert dicom_phi_findings(ds) == []
    ds.PatientIdentityRemoved = "NO"
    assert dicom_phi_findings(ds) == ["PatientName", "PatientID", "PatientIdentityRemoved"]


def test_method_codes_match_the_dicom_code_dictionary():
    from pydicom.sr.codedict import codes

    from governance.deid.dataset import METHOD_CODES

    expected = (codes.DCM.BasicApplicationConfidentialityProfile,
                codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption)
    assert METHOD_CODES == tuple((c.value, c.scheme_designator, c.meaning) for c in expected)
