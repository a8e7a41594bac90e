"""pydicom's and pydicom-data's edge-case files: each decodes or raises a typed MedvlIOError, never anything
else; lossless re-encodings of one image decode to identical values; nibabel's NIfTI test files too."""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel
import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.data.data_manager import external_data_sources

from medvl.io import MedvlIOError, load
from medvl.io import errors as E

LOCAL = Path(get_testdata_file("CT_small.dcm")).parent
HAS_PYDICOM_DATA = "pydicom-data" in external_data_sources()

DECODES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEG2000.dcm",
    "JPGExtended.dcm",
    "JPEGLSNearLossless_16.dcm",
    "image_dfl.dcm",
    "SC_rgb_rle_16bit_2frame.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "rtdose.dcm",
    "liver_1frame.dcm",
    "693_J2KR.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm",
    "RG1_UNCR.dcm",
    "RG3_J2KI.dcm",
    "emri_small.dcm",
    "emri_small_RLE.dcm",
    "eCT_Supplemental.dcm",
    "OT-PAL-8-face.dcm",
    "US1_J2KR.dcm",
    "vlut_04.dcm",
    "mlut_18.dcm",
    "bad_sequence.dcm",
    "explicit_VR-UN.dcm",
    "gdcm-US-ALOKA-16.dcm",
]
REFUSES = {
    "MR_truncated.dcm": E.CorruptPixelDataError,
    "badVR.dcm": E.MetadataError,
    "no_meta.dcm": E.NotAnImageError,
    "ExplVR_LitEndNoMeta.dcm": E.NoPixelDataError,
    "ExplVR_BigEndNoMeta.dcm": E.NoPixelDataError,
    "meta_missing_tsyntax.dcm": E.MetadataError,
    "test-SR.dcm": E.NoPixelDataError,
    "reportsi.dcm": E.NoPixelDataError,
    "rtplan.dcm": E.NoPixelDataError,
    "rtstruct.dcm": E.NoPixelDataError,
    "waveform_ecg.dcm": E.NoPixelDataError,
    "JPEG-lossy.dcm": E.CorruptPixelDataError,
    "emri_small_jpeg_2k_lossless_too_short.dcm": E.CorruptPixelDataError,
}
SAME_PIXELS = [
    (
        "MR_small.dcm",
        [
            "MR_small_RLE.dcm",
            "MR_small_bigendian.dcm",
            "MR_small_jp2klossless.dcm",
            "MR_small_implicit.dcm",
            "MR_small_jpeg_ls_lossless.dcm",
        ],
    ),
    (
        "emri_small.dcm",
        [
            "emri_small_RLE.dcm",
            "emri_small_big_endian.dcm",
            "emri_small_jpeg_2k_lossless.dcm",
            "emri_small_jpeg_ls_lossless.dcm",
        ],
    ),
    ("RG1_UNCR.dcm", ["RG1_J2KR.dcm"]),
    ("SC_rgb.dcm", ["SC_rgb_rle.dcm", "SC_rgb_expb.dcm", "SC_rgb_gdcm2k_uncompressed.dcm"]),
    ("rtdose.dcm", ["rtdose_rle.dcm", "rtdose_expb.dcm"]),
]


def pydicom_file(name: str) -> Path:
    """A pydicom test file; pydicom-data files skip when that package is not installed (no downloads)."""
    if not (LOCAL / name).exists() and not HAS_PYDICOM_DATA:
        pytest.skip("pydicom-data is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(get_testdata_file(name))


@pytest.mark.parametrize("name", DECODES)
def test_edge_case_files_decode(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = load(pydicom_file(name))
    assert record.array.dtype == np.float32 and np.isfinite(record.array).all()
    assert np.linalg.det(record.affine[:3, :3]) != 0
    assert record.metadata["format"] == "dicom"


@pytest.mark.parametrize(("name", "error"), REFUSES.items())
def test_edge_case_files_are_refused_with_a_typed_error(name: str, error: type[MedvlIOError]) -> None:
    path = pydicom_file(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error) as info:
            load(path)
    assert info.value.path == str(path) and info.value.reason


@pytest.mark.parametrize(("reference", "others"), SAME_PIXELS)
def test_lossless_encodings_decode_identically(reference: str, others: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = load(pydicom_file(reference))
        for name in others:
            record = load(pydicom_file(name))
            np.testing.assert_array_equal(record.array, expected.array, err_msg=name)
            np.testing.assert_allclose(record.affine, expected.affine, err_msg=name)


def test_known_values() -> None:
    ct = load(pydicom_file("CT_small.dcm"))
    assert ct.metadata["rescale_intercept"] == -1024.0 and ct.array.min() >= -1024
    radiograph = load(pydicom_file("RG1_UNCR.dcm"))  # CR, MONOCHROME1, PixelSpacing 0\0 (no usable spacing)
    assert radiograph.photometric == "MONOCHROME1" and radiograph.metadata["spacing_known"] is False
    assert radiograph.array.max() <= 2**15 - 1
    dose = load(pydicom_file("rtdose.dcm"))  # frames placed by GridFrameOffsetVector, scaled to Gy
    assert dose.spatial_shape == (10, 10, 15) and dose.spacing == pytest.approx((10.0, 10.0, 5.0))
    assert 0.5 < dose.array.max() < 2.0
    palette = load(pydicom_file("OT-PAL-8-face.dcm"))  # no preamble, palette colour -> RGB
    assert palette.channels == 3 and palette.photometric == "PALETTE COLOR"


NIBABEL_DATA = Path(nibabel.__file__).parent / "tests" / "data"
NIBABEL_FILES = sorted(p.name for p in NIBABEL_DATA.glob("*.nii*"))


@pytest.mark.parametrize("name", NIBABEL_FILES)
def test_nibabel_test_volumes_load_or_refuse(name: str) -> None:
    path = NIBABEL_DATA / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            record = load(path)
        except MedvlIOError as error:
            assert error.path == str(path) and error.reason
            return
        expected = np.asanyarray(nibabel.load(path).dataobj)
    if not expected.dtype.names:
        np.testing.assert_allclose(
            record.array, np.squeeze(expected) if record.array.ndim < expected.ndim else expected, rtol=1e-6
        )
