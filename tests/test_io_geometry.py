"""Geometry that cannot be trusted is never reported as real: NIfTI without qform/sform, contradicting qform
and sform, slice positions drifting off the affine's grid, slices behind symbolic links, rescaling beyond
float32; series refusals name the offending files."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from medvl.io import errors as E
from medvl.io import load
from medvl.io.dicom_frames import FramePose
from medvl.io.dicom_writer import write_image, write_series
from medvl.io.stacking import plan_stack
from medvl.io.validation import require_known_orientation

AXIAL = np.diag([0.5, 0.5, 2.0, 1.0])


def nifti(
    path: Path,
    affine: np.ndarray,
    *,
    sform_code: int = 1,
    qform: np.ndarray | None = None,
    qform_code: int = 1,
) -> Path:
    image = nib.Nifti1Image(np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4), None)
    image.set_sform(affine, code=sform_code)
    image.set_qform(affine if qform is None else qform, code=qform_code)
    nib.save(image, path)
    return path


def series(folder: Path, n: int = 6) -> list[Path]:
    volume = np.arange(4 * 3 * n, dtype=np.float32).reshape(4, 3, n)
    return write_series(volume, AXIAL, folder)


def test_nifti_without_qform_and_sform_has_unknown_geometry(tmp_path: Path) -> None:
    path = nifti(tmp_path / "analyze_like.nii", np.diag([2.0, 3.0, 4.0, 1.0]), sform_code=0, qform_code=0)
    record = load(path)
    assert record.metadata["geometry_known"] is False and record.metadata["spacing_known"] is False
    assert record.spacing == (2.0, 3.0, 4.0)  # nibabel's nominal affine from pixdim
    with pytest.raises(E.MetadataError) as info:  # the cache's policy: never train on a maybe-mirrored volume
        require_known_orientation(record)
    assert info.value.path == str(path) and "qform_code = sform_code = 0" in info.value.reason
    known = load(nifti(tmp_path / "scanner.nii", np.diag([2.0, 3.0, 4.0, 1.0])))
    assert known.metadata["geometry_known"] and known.metadata["spacing_known"]
    require_known_orientation(known)


def test_qform_alone_is_real_geometry(tmp_path: Path) -> None:
    record = load(nifti(tmp_path / "q.nii", np.diag([-1.0, 1.0, 2.0, 1.0]), sform_code=0))
    assert record.metadata["geometry_known"] and record.affine[0, 0] == -1.0


def test_sform_and_qform_flipped_against_each_other_are_refused(tmp_path: Path) -> None:
    flipped = np.diag([-1.0, 1.0, 2.0, 1.0])
    flipped[0, 3] = 5.0  # the same field of view mirrored left-right
    path = nifti(tmp_path / "flip.nii", np.diag([1.0, 1.0, 2.0, 1.0]), qform=flipped)
    with pytest.raises(E.MetadataError) as info:
        load(path)
    assert (
        "axes RAS" in info.value.reason
        and "axes LAS" in info.value.reason
        and "disagree" in info.value.reason
    )


def test_sform_and_qform_differing_in_place_use_the_sform_with_a_warning(tmp_path: Path) -> None:
    moved = np.diag([1.0, 1.0, 2.0, 1.0])
    moved[:3, 3] = [0.0, 5.0, 0.0]  # a registration stored in the sform, 5 mm from the scanner's qform
    path = nifti(tmp_path / "registered.nii", moved, sform_code=2, qform=np.diag([1.0, 1.0, 2.0, 1.0]))
    with pytest.warns(UserWarning, match="up to 5 mm apart .* using the sform"):
        record = load(path)
    np.testing.assert_allclose(record.affine, moved)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # equal forms (stored as float32 and quaternion): no warning
        load(nifti(tmp_path / "same.nii", np.diag([0.7, 0.7, 1.3, 1.0])))


def test_nifti_out_of_memory_is_a_typed_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = nifti(tmp_path / "big.nii", np.eye(4))

    def no_memory(*args: object, **kwargs: object) -> np.ndarray:
        raise MemoryError()

    monkeypatch.setattr(nib.arrayproxy.ArrayProxy, "__array__", no_memory)
    with pytest.raises(E.MedvlIOError) as info:
        load(path)
    assert type(info.value).__name__ == "DecodedSizeError" and "not enough memory" in info.value.reason


def test_slice_positions_drifting_off_the_grid_are_refused() -> None:
    heights = np.concatenate([np.arange(201) * 1.0, 200 + np.arange(1, 201) * 1.0099])  # every gap within 1%
    poses = [
        FramePose(np.array([0.0, 0.0, z]), np.eye(3)[0], np.eye(3)[1], (0.5, 0.5), True) for z in heights
    ]
    names = [f"IM{k:04d}.dcm" for k in range(len(poses))]
    with pytest.raises(E.NonUniformSpacingError) as info:
        plan_stack(poses, Path("series"), names=names)
    assert "drift from a uniform grid" in info.value.reason and "IM0200.dcm" in info.value.reason
    assert "0.990 mm from where" in info.value.reason
    jitter = np.arange(50) * 1.0 + np.random.default_rng(0).uniform(-0.004, 0.004, 50)  # rounding: kept
    poses = [FramePose(np.array([0.0, 0.0, z]), np.eye(3)[0], np.eye(3)[1], (0.5, 0.5), True) for z in jitter]
    assert plan_stack(poses, Path("series")).n_slices == 50


def test_slices_behind_a_symlinked_folder_are_loaded(tmp_path: Path) -> None:
    files = series(tmp_path / "export", n=10)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for path in files[5:]:
        shutil.move(path, elsewhere / path.name)
    os.symlink(elsewhere, tmp_path / "export" / "more")
    os.symlink(tmp_path / "export", tmp_path / "export" / "more" / "loop")  # a cycle: visited once
    record = load(tmp_path / "export")
    assert record.spatial_shape == (4, 3, 10) and record.metadata["n_files"] == 10


def test_rescale_slope_beyond_float32_is_refused(tmp_path: Path) -> None:
    path = write_image(np.full((8, 8), 100), tmp_path / "huge.dcm")
    ds = pydicom.dcmread(path)
    ds.RescaleSlope, ds.RescaleIntercept = "1e39", "0"
    ds.save_as(path)
    with pytest.raises(E.MetadataError) as info:
        load(path)
    assert "slope 1e+39" in info.value.reason and "float32" in info.value.reason


def test_nifti_scaling_beyond_float32_is_refused(tmp_path: Path) -> None:
    image = nib.Nifti2Image(np.full((3, 3, 3), 1000, np.int16), np.eye(4))
    image.header.set_slope_inter(1e38, 0)  # float64 in NIfTI-2: finite, 1e41 after scaling
    nib.save(image, tmp_path / "huge.nii")
    with pytest.raises(E.MetadataError, match="beyond the float32 range"):
        load(tmp_path / "huge.nii")


def test_duplicate_of_one_slice_in_a_two_slice_series(tmp_path: Path) -> None:
    files = series(tmp_path / "two", n=2)
    copy = files[0].with_name("copy.dcm")
    shutil.copy(files[0], copy)
    ds = pydicom.dcmread(copy)
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(copy)
    with pytest.raises(E.DuplicateSliceError) as info:
        load(tmp_path / "two")
    assert "duplicate slices" in info.value.reason and "incomplete time series" not in info.value.reason
    assert "copy.dcm" in info.value.reason and "slice_0000.dcm" in info.value.reason


def test_series_refusals_name_the_files(tmp_path: Path) -> None:
    files = series(tmp_path / "s", n=6)
    files[2].unlink()
    with pytest.raises(E.MissingSliceError) as info:
        load(tmp_path / "s")
    assert (
        info.value.path == str(tmp_path / "s") and "(slice_0001.dcm and slice_0003.dcm)" in info.value.reason
    )
    ds = pydicom.dcmread(files[4])
    ds.ImagePositionPatient = [3.0, 0.0, 8.0]
    ds.save_as(files[4])
    shutil.copy(
        files[1], files[2]
    )  # the missing slice is back (a copy of its SOP instance refused otherwise)
    ds = pydicom.dcmread(files[2])
    ds.SOPInstanceUID, ds.ImagePositionPatient = generate_uid(), [0.0, 0.0, 4.0]
    ds.save_as(files[2])
    with pytest.raises(E.GantryTiltError, match="at slice_0004.dcm"):
        load(tmp_path / "s")


def _rotation_z(degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    affine = np.eye(4)
    affine[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return affine


def test_oblique_forms_a_few_degrees_apart_across_an_axis_label_are_kept(tmp_path: Path) -> None:
    # 44 and 46 degrees about z: the axis labels of nibabel's aff2axcodes differ, the directions hardly do
    path = nifti(tmp_path / "oblique.nii", _rotation_z(44.0), sform_code=2, qform=_rotation_z(46.0))
    with pytest.warns(UserWarning, match="using the sform"):
        record = load(path)
    np.testing.assert_allclose(record.affine, _rotation_z(44.0), atol=1e-5)
