"""NIfTI, NRRD, PNG and JPEG: values, geometry and refusals, with files written by nibabel, pynrrd, Pillow."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
from PIL import Image

from medvl.io import METADATA_KEYS, load
from medvl.io import errors as E
from medvl.io.dicom_writer import write_image

RNG = np.random.default_rng(3)


def nifti_affine() -> np.ndarray:
    affine = np.diag([-0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = [50, -60, 10]
    return affine


@pytest.mark.parametrize("name", ["vol.nii", "vol.nii.gz"])
def test_nifti_volume(tmp_path: Path, name: str) -> None:
    data = RNG.integers(-100, 100, (7, 6, 5)).astype(np.int16)
    image = nib.Nifti1Image(data, nifti_affine())
    image.header.set_slope_inter(0.5, 10)
    nib.save(image, tmp_path / name)
    record = load(tmp_path / name)
    np.testing.assert_array_equal(record.array, data * 0.5 + 10)
    np.testing.assert_allclose(record.affine, nifti_affine(), atol=1e-6)  # stored as float32
    assert record.metadata["format"] == "nifti" and record.metadata["spacing_known"]
    assert set(METADATA_KEYS) <= set(record.metadata)


def test_nifti_time_series(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.zeros((4, 4, 3, 5), np.float32), np.eye(4))
    image.header.set_xyzt_units("mm", "msec")
    image.header.set_zooms((1, 1, 1, 2000))
    nib.save(image, tmp_path / "bold.nii")
    record = load(tmp_path / "bold.nii")
    assert record.spatial_shape == (4, 4, 3) and record.n_timepoints == 5
    assert record.metadata["frame_times"] == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_nifti_rgb_voxels(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 255, (5, 4, 3, 3)).astype(np.uint8)
    voxels = np.zeros((5, 4, 3), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    for i, band in enumerate("RGB"):
        voxels[band] = rgb[..., i]
    nib.save(nib.Nifti1Image(voxels, np.eye(4)), tmp_path / "rgb.nii")
    record = load(tmp_path / "rgb.nii")
    assert record.channels == 3 and record.spatial_shape == (5, 4, 3)
    np.testing.assert_array_equal(record.array, rgb)


def test_nifti_truncated_data(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.ones((20, 20, 20), np.float32), np.eye(4)), tmp_path / "v.nii")
    data = (tmp_path / "v.nii").read_bytes()
    (tmp_path / "v.nii").write_bytes(data[: len(data) // 2])
    with pytest.raises(E.CorruptPixelDataError, match="truncated"):
        load(tmp_path / "v.nii")


def test_nifti_truncated_gzip(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(RNG.random((30, 30, 30)).astype(np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    data = (tmp_path / "v.nii.gz").read_bytes()
    (tmp_path / "v.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises((E.CorruptPixelDataError, E.CorruptFileError)):
        load(tmp_path / "v.nii.gz")


def test_nifti_five_axes_refused(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2, 2), np.float32), np.eye(4)), tmp_path / "v.nii")
    with pytest.raises(E.UnsupportedLayoutError, match="5 axes"):
        load(tmp_path / "v.nii")


def test_nifti_singular_affine_refused(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.eye(4)), tmp_path / "v.nii")
    header = nib.load(tmp_path / "v.nii").header.copy()
    header["srow_z"] = 0  # a zero slice axis, as a broken converter writes it
    header["qform_code"] = 0
    data = (tmp_path / "v.nii").read_bytes()
    (tmp_path / "v.nii").write_bytes(header.binaryblock + data[len(header.binaryblock) :])
    with pytest.raises(E.MetadataError, match="singular"):
        load(tmp_path / "v.nii")


def test_nifti_content_without_nifti_name(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.float32), np.eye(4)), tmp_path / "v.nii")
    (tmp_path / "v.nii").rename(tmp_path / "volume.dat")
    with pytest.raises(E.NotAnImageError, match="rename"):
        load(tmp_path / "volume.dat")


def test_gzip_that_is_not_nifti(tmp_path: Path) -> None:
    (tmp_path / "x.nii.gz").write_bytes(gzip.compress(b"hello" * 200))
    with pytest.raises(E.NotAnImageError, match="gzip"):
        load(tmp_path / "x.nii.gz")


def test_nrrd_lps_volume(tmp_path: Path) -> None:
    data = RNG.integers(0, 500, (6, 5, 4)).astype(np.int16)
    header = {
        "space": "left-posterior-superior",
        "space directions": np.diag([0.7, 0.8, 3.0]),
        "space origin": np.array([10.0, 20.0, 30.0]),
        "kinds": ["domain"] * 3,
    }
    nrrd.write(str(tmp_path / "v.nrrd"), data, header)
    record = load(tmp_path / "v.nrrd")
    np.testing.assert_array_equal(record.array, data)
    expected = np.diag([-0.7, -0.8, 3.0, 1.0])
    expected[:3, 3] = [-10, -20, 30]
    np.testing.assert_allclose(record.affine, expected)


def test_nrrd_colour_axis_moves_last(tmp_path: Path) -> None:
    data = RNG.integers(0, 255, (3, 6, 5)).astype(np.uint8)
    header = {
        "space": "right-anterior-superior",
        "space directions": np.array([[np.nan] * 3, [1.0, 0, 0], [0, 1.0, 0]]),  # "none" for the colour axis
        "kinds": ["RGB-color", "domain", "domain"],
    }
    nrrd.write(str(tmp_path / "c.nrrd"), data, header)
    record = load(tmp_path / "c.nrrd")
    assert record.channels == 3 and record.spatial_shape == (6, 5)
    np.testing.assert_array_equal(record.array, np.moveaxis(data, 0, -1))


def test_nrrd_without_space_uses_spacings(tmp_path: Path) -> None:
    nrrd.write(str(tmp_path / "s.nrrd"), np.zeros((4, 3, 2), np.float32), {"spacings": [0.5, 0.25, 2.0]})
    record = load(tmp_path / "s.nrrd")
    assert record.spacing == (0.5, 0.25, 2.0) and record.metadata["spacing_known"]


def test_nrrd_unknown_space_refused(tmp_path: Path) -> None:
    header = {"space": "scanner-xyz", "space directions": np.eye(3)}
    nrrd.write(str(tmp_path / "s.nrrd"), np.zeros((4, 3, 2), np.float32), header)
    with pytest.raises(E.MetadataError, match="not patient-based"):
        load(tmp_path / "s.nrrd")


def test_png_grayscale_8_and_16_bit(tmp_path: Path) -> None:
    for dtype in (np.uint8, np.uint16):
        pixels = RNG.integers(0, np.iinfo(dtype).max, (9, 13)).astype(dtype)  # (rows, cols)
        Image.fromarray(pixels).save(tmp_path / "g.png")
        record = load(tmp_path / "g.png")
        np.testing.assert_array_equal(record.array, pixels.T)
        assert record.metadata["bits_stored"] == 8 * pixels.itemsize
        assert record.metadata["spacing_known"] is False and record.spacing == (1.0, 1.0)


def test_png_rgb_keeps_three_channels(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 255, (9, 13, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "c.png")
    record = load(tmp_path / "c.png")
    assert record.channels == 3 and record.photometric == "RGB" and record.spatial_shape == (13, 9)
    np.testing.assert_array_equal(record.display_array(), pixels)


def test_png_opaque_alpha_dropped_transparent_refused(tmp_path: Path) -> None:
    pixels = np.full((4, 4, 4), 200, np.uint8)
    pixels[..., 3] = 255
    Image.fromarray(pixels, "RGBA").save(tmp_path / "opaque.png")
    assert load(tmp_path / "opaque.png").channels == 3
    pixels[0, 0, 3] = 10
    Image.fromarray(pixels, "RGBA").save(tmp_path / "see_through.png")
    with pytest.raises(E.UnsupportedLayoutError, match="transparent"):
        load(tmp_path / "see_through.png")


def test_jpeg_grayscale(tmp_path: Path) -> None:
    pixels = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (16, 1))
    Image.fromarray(pixels).save(tmp_path / "x.jpg", quality=100)
    record = load(tmp_path / "x.jpg")
    assert record.metadata["format"] == "jpeg" and record.channels == 1
    np.testing.assert_allclose(record.array, pixels.T, atol=3)  # lossy, but close


def test_truncated_png(tmp_path: Path) -> None:
    Image.fromarray(RNG.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(E.CorruptPixelDataError, match="truncated"):
        load(tmp_path / "t.png")


def test_dicom_without_suffix_is_sniffed(tmp_path: Path) -> None:
    write_image(np.ones((4, 4)), tmp_path / "IM0001")
    assert load(tmp_path / "IM0001").metadata["format"] == "dicom"


def test_series_uid_must_match_a_single_file(tmp_path: Path) -> None:
    path = write_image(np.ones((4, 4)), tmp_path / "a.dcm", attributes={"SeriesInstanceUID": "1.2.3"})
    assert load(path, series_uid="1.2.3").metadata["series_uid"] == "1.2.3"
    with pytest.raises(E.NotAnImageError, match="belongs to series '1.2.3'"):
        load(path, series_uid="9.9")
