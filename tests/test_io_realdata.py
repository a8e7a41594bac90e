"""medvl.io.load against independent references on the shared real-data bundle (skipped without it).

DICOM series are compared with the NIfTI files dcm2niix / dicom2nifti wrote from them: both are put in RAS
axis order with nibabel's orientation tools, then voxel values must be equal (float tolerance after
rescale) and affines agree to 1e-3 mm.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medvl.io import errors as E
from medvl.io import load

DICOM2NIFTI_SERIES = [
    "generic/anatomical/001",
    "generic/anatomical/001_implicit",
    "generic/anatomical/002_non_isotropic",
    "generic/compressed/001",
    "generic/compressed_j2k/001",
    "generic/compressed_jpeg/001",
    "generic/compressed_jpegls/001",
    "generic/compressed_rle/001",
    "generic/rgb/001",
    "hitachi/anatomical/001",
    "hitachi/anatomical/001_implicit",
]


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Array and affine in RAS axis order (nibabel), trailing time/colour axes kept."""
    ornt = nib.orientations.io_orientation(affine)
    return (
        nib.orientations.apply_orientation(array, ornt),
        affine @ nib.orientations.inv_ornt_aff(ornt, array.shape[:3]),
    )


def reference(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Voxels (RGB structs as a trailing axis of 3) and affine of a reference NIfTI, in RAS order."""
    image = nib.load(path)
    voxels = np.asanyarray(image.dataobj)
    if voxels.dtype.names:
        voxels = np.stack([voxels[band] for band in "RGB"], axis=-1)
    return to_ras(voxels.astype(np.float64), image.affine)


def assert_matches(source: Path, ref: Path, **kwargs: object) -> None:
    record = load(source, **kwargs)
    actual, actual_affine = to_ras(record.array, record.affine)
    expected, expected_affine = reference(ref)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual_affine, expected_affine, atol=1e-3)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-4)


def test_nine_transfer_syntaxes_decode_identically(realdata: Path) -> None:
    folder = realdata / "dicom" / "dcm_qa_ts" / "In"
    records = [load(folder / f"{k}.dcm") for k in range(1, 10)]
    syntaxes = {r.metadata["transfer_syntax"] for r in records}
    assert len(syntaxes) == 7  # 5 and 6 are both JPEG lossless, 7 and 8 both JPEG-LS, from different encoders
    for record in records[1:]:
        np.testing.assert_array_equal(record.array, records[0].array)
        np.testing.assert_array_equal(record.affine, records[0].affine)


def test_siemens_mosaic_matches_dcm2niix(realdata: Path) -> None:
    qa = realdata / "dicom" / "dcm_qa_ts"
    assert_matches(qa / "In" / "1.dcm", qa / "Ref" / "1.nii")
    assert load(qa / "In" / "1.dcm").spatial_shape == (64, 64, 35)


def test_the_nine_copies_in_one_folder_are_duplicates(realdata: Path) -> None:
    with pytest.raises(E.DuplicateSliceError, match="9 frames at each of 35 positions"):
        load(realdata / "dicom" / "dcm_qa_ts" / "In")


def test_ge_fmri_series_is_4d_like_dcm2niix(realdata: Path) -> None:
    nih = realdata / "volumes" / "dcm_qa_nih"
    folder = nih / "In" / "20180918GE" / "mr_0004"
    assert (folder / "README-Series.txt").exists()  # a non-DICOM file in the folder, skipped
    assert_matches(folder, nih / "Ref" / "DCM2NIIX_regression_test_4.nii")
    record = load(folder)
    assert record.array.shape == (64, 64, 15, 10) and record.metadata["n_files"] == 150
    np.testing.assert_allclose(np.diff(record.metadata["slice_positions_mm"]), 5.0, atol=1e-3)


def test_siemens_mosaic_time_series_matches_dcm2niix(realdata: Path) -> None:
    nih = realdata / "volumes" / "dcm_qa_nih"
    assert_matches(nih / "In" / "20180918Si" / "mr_0003", nih / "Ref" / "EPI_PE=AP_3.nii")


@pytest.mark.parametrize("series", DICOM2NIFTI_SERIES)
def test_dicom2nifti_series_match_their_ground_truth(realdata: Path, series: str) -> None:
    folder = realdata / "dicom" / "dicom2nifti" / series
    assert_matches(folder, folder.with_name(folder.name + "_ground_truth.nii.gz"))


def test_totalsegmentator_ct_lies_under_its_segmentation(realdata: Path) -> None:
    ts = realdata / "volumes" / "totalsegmentator"
    record = load(ts / "example_ct_dicom")
    assert record.modality == "CT" and record.metadata["rescale_intercept"] == -1024.0
    hu, affine = to_ras(record.array, record.affine)
    labels, label_affine = reference(ts / "example_seg_dicom.nii.gz")
    assert hu.shape == labels.shape == (512, 512, 20)
    np.testing.assert_allclose(affine, label_affine, atol=1e-3)
    organs = labels > 0
    assert np.median(hu[~organs]) < -900  # air around the body
    assert (hu[organs] > -200).mean() > 0.95  # labelled organs are soft tissue or bone...
    assert (hu[organs[:, ::-1]] > -200).mean() < 0.8  # ...which a front-back flip would break


def test_totalsegmentator_nifti_volumes(realdata: Path) -> None:
    ts = realdata / "volumes" / "totalsegmentator"
    for image_name, label_name in (("example_ct_sm", "example_seg"), ("example_mr_sm", "example_seg_mr")):
        image, labels = load(ts / f"{image_name}.nii.gz"), load(ts / f"{label_name}.nii.gz")
        reference_image = nib.load(ts / f"{image_name}.nii.gz")
        np.testing.assert_array_equal(image.array, reference_image.get_fdata(dtype=np.float32))
        np.testing.assert_array_equal(image.affine, reference_image.affine)
        assert image.spatial_shape == labels.spatial_shape
        np.testing.assert_allclose(image.affine, labels.affine)
        assert labels.array.max() > 1 and np.array_equal(labels.array, np.round(labels.array))


@pytest.mark.parametrize("case", ["brain1", "breast1"])
def test_pyradiomics_nrrd_image_and_label_align(realdata: Path, case: str) -> None:
    folder = realdata / "volumes" / "pyradiomics"
    image, label = load(folder / f"{case}_image.nrrd"), load(folder / f"{case}_label.nrrd")
    assert image.metadata["format"] == "nrrd" and image.is_volume
    assert image.array.shape == label.array.shape
    np.testing.assert_allclose(image.affine, label.affine)
    tumour = label.array > 0
    assert 0 < tumour.mean() < 0.2
    assert np.median(image.array[tumour]) > np.median(image.array[~tumour])  # enhancing lesion
