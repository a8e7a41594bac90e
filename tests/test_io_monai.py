"""MedvlImageReader plugs medvl.io.load into MONAI's LoadImage with the same array and affine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage

from medvl.io import MedvlIOError, load
from medvl.io.dicom_writer import write_series
from medvl.io.monai_reader import MedvlImageReader

AFFINE = np.array([[0, 0, 2.0, -30], [-0.5, 0, 0, 40], [0, -0.6, 0, 12], [0, 0, 0, 1]])  # sagittal stack


@pytest.fixture
def series(tmp_path: Path) -> Path:
    volume = np.random.default_rng(4).integers(-1000, 1000, (12, 10, 5)).astype(np.float32)
    write_series(volume, AFFINE, tmp_path / "ct", attributes={"PatientName": "Secret^Name"})
    return tmp_path / "ct"


def test_load_image_gives_a_metatensor_with_medvl_geometry(series: Path) -> None:
    image = LoadImage(reader=MedvlImageReader(), image_only=True)(series)
    record = load(series)
    assert isinstance(image, MetaTensor)
    np.testing.assert_array_equal(image.numpy(), record.array)
    np.testing.assert_allclose(image.affine.numpy(), record.affine)
    np.testing.assert_allclose(image.affine.numpy(), AFFINE, atol=1e-6)
    assert image.meta["space"] == "RAS" and image.meta["modality"] == "CT"
    assert tuple(image.meta["spatial_shape"]) == (12, 10, 5)
    assert "patient_name" not in image.meta and "patient_id" not in image.meta


def test_channel_first_and_stacking_several_files(series: Path) -> None:
    loader = LoadImage(reader=MedvlImageReader(), image_only=True, ensure_channel_first=True)
    single = loader(series)
    assert single.shape == (1, 12, 10, 5)
    files = sorted(series.iterdir())[:2]
    first, second = (load(p).array for p in files)
    stacked = loader([files[0], files[0]])
    assert stacked.shape == (2, 12, 10)
    torch.testing.assert_close(stacked[1], torch.as_tensor(first))
    with pytest.raises(ValueError, match="shape or affine"):  # two slices: different affines
        loader(files)
    assert not np.array_equal(first, second)


def test_time_series_becomes_channels(tmp_path: Path) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 3, 2, 6), np.float32), np.eye(4)), tmp_path / "bold.nii.gz")
    image = LoadImage(reader=MedvlImageReader(), image_only=True, ensure_channel_first=True)(
        tmp_path / "bold.nii.gz"
    )
    assert image.shape == (6, 4, 3, 2)


def test_refusals_reach_the_caller(tmp_path: Path) -> None:
    (tmp_path / "bad.dcm").write_text("not dicom")
    with pytest.raises(MedvlIOError):  # a reader given per call raises as is
        LoadImage(image_only=True)(tmp_path / "bad.dcm", reader=MedvlImageReader())
    with pytest.raises(RuntimeError, match="not a DICOM, NIfTI, NRRD, PNG or JPEG"):  # MONAI wraps it
        LoadImage(reader=MedvlImageReader(), image_only=True)(tmp_path / "bad.dcm")


def test_verify_suffix(tmp_path: Path) -> None:
    reader = MedvlImageReader()
    assert reader.verify_suffix([tmp_path, "a.nii.gz", "IM0001", "b.NRRD", "c.dcm", "d.png"])
    assert not reader.verify_suffix(["table.csv"])
