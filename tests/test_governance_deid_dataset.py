"""De-identified DICOM keeps no listed attribute value, no private tag, and keeps pixels, geometry and links.

Checked on a sample of pydicom's test files (compressed syntaxes, big endian, deflate, private tags, overlays,
enhanced multi-frame, SEG, SR, RT) and on synthetic datasets for the rules that the sample does not exercise.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from governance.deid.dataset import DUMMY_TEXT, deidentify_dataset, patient_identity
from governance.deid.errors import DeidFileError
from governance.deid.files import process_file
from governance.deid.keys import KeyedHasher
from governance.deid.outcome import DEIDENTIFIED
from governance.deid.profile import Action, Profile, Rule, load_profile
from governance.deid.tree import deidentify_tree
from medvl.io.phi_check import dicom_phi_findings

KEY = b"test-key-0123456789abcdef"
HASHER = KeyedHasher(KEY)
PROFILE = load_profile()

SAMPLE = [
    "CT_small.dcm",  # 179 private elements
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "JPEG2000.dcm",  # JPEG 2000, private tags, sequences
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "emri_small_jpeg_ls_lossless.dcm",  # JPEG-LS multi-frame
    "image_dfl.dcm",  # deflated
    "MR-SIEMENS-DICOM-WithOverlays.dcm",  # overlays, private tags
    "eCT_Supplemental.dcm",  # enhanced CT, functional groups
    "liver.dcm",  # SEG referencing its source images
    "rtplan.dcm",  # no pixels, nested sequences
    "test-SR.dcm",  # structured report content
    "waveform_ecg.dcm",
]

GEOMETRY = frozenset({
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "SpacingBetweenSlices",
    "Rows", "Columns", "NumberOfFrames", "SliceLocation", "BitsAllocated", "BitsStored", "PixelRepresentation",
    "PhotometricInterpretation", "SamplesPerPixel", "RescaleSlope", "RescaleIntercept", "PlanarConfiguration",
})


def _values(elem) -> list[str]:
    if elem.VR == "SQ" or elem.value is None:
        return []
    values = elem.value if isinstance(elem.value, MultiValue) else [elem.value]
    return [str(v).strip() for v in values if str(v).strip()]


def _acted_on(elem) -> bool:
    rule = PROFILE.rule_for(elem.tag)
    return rule is not None and rule.action(elem.VR) is not Action.KEEP


def listed_values(ds: Dataset) -> dict[int, set[str]]:
    """Values of every element (any depth) that the profile does not keep; times of day under the Modified
    Dates option are kept by design and so are not collected."""
    found: dict[int, set[str]] = defaultdict(set)
    for elem in ds.iterall():
        if _acted_on(elem):
            found[elem.tag].update(_values(elem))
    return found


def all_values(ds: Dataset) -> dict[int, set[str]]:
    found: dict[int, set[str]] = defaultdict(set)
    for elem in [*ds.iterall(), *ds.file_meta]:
        found[elem.tag].update(_values(elem))
    return found


def elements_by_path(ds: Dataset, prefix: tuple = ()) -> dict[tuple, pydicom.DataElement]:
    found = {}
    for elem in ds:
        path = (*prefix, int(elem.tag))
        found[path] = elem
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value or ()):
                found.update(elements_by_path(item, (*path, index)))
    return found


def geometry(ds: Dataset) -> list[tuple[str, str]]:
    """Geometry of the image and of each frame (top level and functional groups)."""
    elements = list(ds)
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(groups, ()):
            elements.extend(item.iterall())
    return [(e.keyword, str(e.value)) for e in elements if e.keyword in GEOMETRY]


def assert_deidentified(original: Dataset, result: Dataset) -> None:
    """Every check that a de-identified dataset must pass against its original."""
    after = all_values(result)
    for tag, values in listed_values(original).items():
        assert not values & after.get(tag, set()), f"{tag:08X} keeps {values & after[tag]}"
    original_uids = {v for e in original.iterall() if e.VR == "UI" and _acted_on(e) for v in _values(e)}
    new_uids = {v for e in [*result.iterall(), *result.file_meta] if e.VR == "UI" for v in _values(e)}
    assert not original_uids & new_uids
    assert not [e.tag for e in result.iterall() if e.tag.is_private]
    before_paths, after_paths = elements_by_path(original), elements_by_path(result)
    for path, elem in before_paths.items():
        rule = PROFILE.rule_for(elem.tag)
        if elem.VR == "UI" and rule and rule.action("UI") is Action.REMAP_UID and path in after_paths:
            assert _values(after_paths[path]) == [HASHER.uid(v) for v in _values(elem)], "reference not remapped"
    assert geometry(result) == geometry(original)
    if "PixelData" in original:
        assert result.PixelData == original.PixelData
    assert result.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    instance = original.SOPInstanceUID or original.file_meta.MediaStorageSOPInstanceUID
    assert result.file_meta.MediaStorageSOPInstanceUID == HASHER.uid(instance)
    assert result.SOPInstanceUID == (HASHER.uid(instance) if original.SOPInstanceUID else "")
    assert result.PatientIdentityRemoved == "YES" and result.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = {item.CodeValue for item in result.DeidentificationMethodCodeSequence}
    assert {"113100", "113107"} <= codes
    assert dicom_phi_findings(result) == []


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    """The sample files, side by side (pydicom's data live in two folders)."""
    folder = tmp_path_factory.mktemp("sample")
    for name in SAMPLE:
        (folder / name).symlink_to(get_testdata_file(name))
    return folder


@pytest.mark.parametrize("name", SAMPLE)
def test_pydicom_files(name, sample_dir, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = pydicom.dcmread(sample_dir / name)
        outcome = process_file(sample_dir, tmp_path, name, HASHER, allow_burned_in=True)
        assert outcome.status == DEIDENTIFIED, outcome.reason
        result = pydicom.dcmread(tmp_path / outcome.output)
    assert_deidentified(original, result)
    pseudonym = HASHER.pseudonym(patient_identity(original))
    assert result.PatientID == str(result.PatientName) == pseudonym
    if original.get("StudyDate"):
        assert result.StudyDate == _shift(original.StudyDate, HASHER.day_shift(patient_identity(original)))


def _shift(value: str, days: int) -> str:
    from datetime import date, timedelta

    shifted = date(int(value[:4]), int(value[4:6]), int(value[6:8])) + timedelta(days=days)
    return shifted.strftime("%Y%m%d")


def test_private_elements_are_counted(sample_dir, tmp_path):
    outcome = process_file(sample_dir, tmp_path, "CT_small.dcm", HASHER, allow_burned_in=False)
    assert outcome.counts["private_removed"] == 179 and outcome.counts["pseudonymised"] == 2


def test_preamble_is_zeroed(tmp_path):
    ds = _study("P1", "20200101")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"II*\x00" + b"patient Jane Doe, MRN 123456".ljust(124, b"\x01")  # a TIFF header + text
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "a.dcm", enforce_file_format=True)
    outcome = process_file(tmp_path / "in", tmp_path / "out", "a.dcm", HASHER, allow_burned_in=False)
    written = (tmp_path / "out" / outcome.output).read_bytes()
    assert outcome.status == DEIDENTIFIED and written[:132] == bytes(128) + b"DICM"


def _study(patient_id: str, study_date: str, **extra) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = "Doe^Jane"
    ds.StudyDate = study_date
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def test_dates_move_together_per_patient():
    first, second, other = _study("P1", "20200101"), _study("P1", "20200315"), _study("P2", "20200101")
    for ds in (first, second, other):
        deidentify_dataset(ds, HASHER)
    assert first.PatientID == second.PatientID != other.PatientID
    from datetime import datetime

    def day(ds):
        return datetime.strptime(ds.StudyDate, "%Y%m%d")

    assert (day(second) - day(first)).days == 74
    assert day(first) != datetime(2020, 1, 1) and (day(other) != day(first))


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
def test_nested_rules():
    ds = _study("P1", "20200101", StudyTime="101500", AcquisitionDateTime="20200101101530.5+0100")
    ds.add_new(0x00090010, "LO", "VENDOR")
    ds.add_new(0x00091001, "LO", "secret")
    ds.add_new(0x00080000, "UL", 1234)  # group length
    source = Dataset()
    source.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    source.ReferencedSOPInstanceUID = "1.2.3.4.5"
    source.add_new(0x00110010, "LO", "VENDOR")
    ds.ReferencedImageSequence = Sequence([source])
    ds.ContentSequence = Sequence([Dataset()])
    ds.ContentSequence[0].TextValue = "Jane Doe was seen on 2020-01-01"
    item = Dataset()
    item.PersonName = "Smith^John"
    item.ExpiryDate = "20200110"
    item.InstitutionName = "General Hospital"
    ds.ReferencedSeriesSequence = Sequence([item])
    ds.PatientBirthDate = "2020"
    ds.OtherPatientIDs = "X1"
    counts = deidentify_dataset(ds, HASHER)
    assert 0x00090010 not in ds and 0x00091001 not in ds and 0x00080000 not in ds
    assert 0x00110010 not in ds.ReferencedImageSequence[0]
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == HASHER.uid("1.2.3.4.5")
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert len(ds.ContentSequence) == 1 and len(ds.ContentSequence[0]) == 0  # D on a sequence: one empty item
    nested = ds.ReferencedSeriesSequence[0]
    assert nested.PersonName == DUMMY_TEXT and nested.InstitutionName == DUMMY_TEXT
    days = HASHER.day_shift("id:|P1")
    assert nested.ExpiryDate == _shift("20200110", days)  # unlisted dates are shifted too
    assert ds.AcquisitionDateTime == _shift("20200101", days) + "101530.5"
    assert ds.StudyTime == "101500"
    assert ds.PatientBirthDate in ("", None) and "OtherPatientIDs" not in ds
    assert counts.private_removed == 3 and counts.uids_remapped == 3 and counts.pseudonymised == 2


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
def test_unshiftable_date_is_emptied():
    ds = _study("P1", "2020.01.01")
    counts = deidentify_dataset(ds, HASHER)
    assert ds.StudyDate in ("", None) and counts.emptied >= 1


def test_identity_fallbacks_and_refusal():
    by_name = _study("", "20200101")
    deidentify_dataset(by_name, HASHER)
    assert by_name.PatientID == HASHER.pseudonym("name:Doe^Jane")
    empty = Dataset()
    empty.Modality = "CT"
    with pytest.raises(DeidFileError, match="no PatientID, PatientName, study"):
        deidentify_dataset(empty, HASHER)


def test_leftover_identifier_is_refused():
    leaky = Profile([r if r.tag != "(0010,0030)" else Rule(r.tag, r.name, "K", "") for r in PROFILE.rules])
    ds = _study("P1", "20200101", PatientBirthDate="19700101")
    with pytest.raises(DeidFileError, match="identifiers left after de-identification: PatientBirthDate"):
        deidentify_dataset(ds, HASHER, leaky)


def test_file_without_meta_gets_a_complete_one(tmp_path):
    ds = _study("P1", "20200101")
    ds.Modality = "CT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(tmp_path / "in.dcm", enforce_file_format=False)  # no preamble, no media storage UIDs
    (tmp_path / "out").mkdir()
    outcome = process_file(tmp_path, tmp_path / "out", "in.dcm", HASHER, allow_burned_in=False)
    assert outcome.status == DEIDENTIFIED
    result = pydicom.dcmread(tmp_path / "out" / "in.dcm")
    assert result.preamble is not None and result.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert result.file_meta.MediaStorageSOPInstanceUID == HASHER.uid(ds.SOPInstanceUID)


REAL_TREES = ("dicom/dicom2nifti", "dicom/dcm_qa_ts/In", "volumes/totalsegmentator/example_ct_dicom",
              "volumes/dcm_qa_nih/In")
REAL_SERIES = ("volumes/totalsegmentator/example_ct_dicom", "volumes/dcm_qa_nih/In/20180918GE/mr_0004",
               "dicom/dicom2nifti/generic/compressed_jpegls/001",
               "dicom/dicom2nifti/hitachi/anatomical/001")
SIEMENS_MOSAICS = ("volumes/dcm_qa_nih/In/20180918Si/mr_0003", "dicom/dcm_qa_ts/In/5.dcm")


@pytest.fixture(scope="module")
def real_run(realdata, tmp_path_factory) -> tuple[Path, int]:
    """The real DICOM trees of the shared bundle, de-identified (burned-in images allowed, to check them too),
    and the number of DICOM files written."""
    out = tmp_path_factory.mktemp("real")
    written = 0
    for tree in REAL_TREES:
        summary = deidentify_tree(realdata / tree, out / tree, KEY, allow_burned_in=True, progress=False)
        assert summary.failed == 0
        written += summary.statuses["deidentified"]
    return out, written


@pytest.fixture(scope="module")
def real_deid(real_run) -> Path:
    return real_run[0]


def test_real_trees(realdata, real_run):
    real_deid, written = real_run
    series_map: dict[str, set[str]] = defaultdict(set)
    checked = 0
    for tree in REAL_TREES:
        for path in sorted((real_deid / tree).rglob("*")):
            relative = path.relative_to(real_deid / tree)
            if not path.is_file() or relative.parts[0].startswith("deid_") or path.suffix in (".txt", ".csv"):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                original = pydicom.dcmread(realdata / tree / relative)
                result = pydicom.dcmread(path)
            assert_deidentified(original, result)
            series_map[original.SeriesInstanceUID].add(result.SeriesInstanceUID)
            checked += 1
    assert checked == written > 200
    assert all(len(new) == 1 for new in series_map.values())
    assert len({next(iter(new)) for new in series_map.values()}) == len(series_map)


@pytest.mark.parametrize("series", REAL_SERIES)
def test_real_series_load_identically(realdata, real_deid, series):
    from medvl.io import load

    tree = next(t for t in REAL_TREES if series.startswith(t))
    original = load(realdata / series)
    result = load(real_deid / tree / Path(series).relative_to(tree))
    assert np.array_equal(result.array, original.array)
    assert np.array_equal(result.affine, original.affine)
    study = original.metadata["study_uid"]
    assert result.metadata["study_uid"] == (HASHER.uid(study) if study else study)


@pytest.mark.parametrize("series", SIEMENS_MOSAICS)
def test_real_siemens_mosaic_loses_its_private_slice_header(realdata, real_deid, series):
    """Private tags are dropped, the Siemens CSA header with them: the mosaic is refused, never mis-sliced."""
    from medvl.io import MedvlIOError, load

    tree = next(t for t in REAL_TREES if series.startswith(t))
    assert load(realdata / series).array.ndim >= 3
    with pytest.raises(MedvlIOError, match="CSA"):
        load(real_deid / tree / Path(series).relative_to(tree))
