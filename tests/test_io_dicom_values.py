"""DICOM loading gives the right values and geometry: order by position, rescale, MONOCHROME1, time series,
projection radiographs, multi-frame, compressed syntaxes, metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

from medvl.io import METADATA_KEYS, apply_voi_lut, load
from medvl.io import errors as E
from medvl.io.dicom_writer import write_image, write_series


def oblique_affine() -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = nib.eulerangles.euler2mat(0.4, -0.2, 0.3) @ np.diag([0.7, 0.9, 2.5])
    affine[:3, 3] = [-40.0, 12.5, 300.0]
    return affine


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(1).integers(-1024, 3000, (64, 40, 6)).astype(np.float32)


def edit(path: Path, **attributes: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


@pytest.mark.parametrize(
    "syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", RLELossless, JPEG2000Lossless]
)
def test_series_round_trip_is_exact(tmp_path: Path, volume: np.ndarray, syntax: str) -> None:
    affine = oblique_affine()
    write_series(volume, affine, tmp_path, transfer_syntax=syntax)
    record = load(tmp_path)
    assert record.array.dtype == np.float32
    np.testing.assert_array_equal(record.array, volume)
    np.testing.assert_allclose(record.affine, affine, atol=1e-6)
    assert record.modality == "CT" and record.is_volume and record.metadata["spacing_known"]
    assert record.metadata["transfer_syntax"] == str(syntax)
    np.testing.assert_allclose(np.diff(record.metadata["slice_positions_mm"]), 2.5, atol=1e-6)


def test_order_comes_from_positions_not_instance_numbers(tmp_path: Path, volume: np.ndarray) -> None:
    paths = write_series(volume, oblique_affine(), tmp_path / "in")
    rng = np.random.default_rng(0)
    for path, number in zip(paths, rng.permutation(len(paths)) + 1, strict=True):
        edit(path, InstanceNumber=int(number))
        shutil.move(path, tmp_path / "in" / f"{generate_uid()}.dcm")  # file names carry no order either
    np.testing.assert_array_equal(load(tmp_path / "in").array, volume)


def test_slices_stored_against_the_normal_are_reordered(tmp_path: Path, volume: np.ndarray) -> None:
    flipped = oblique_affine() @ np.diag([1, 1, -1, 1])  # third axis runs against row x column
    write_series(volume, flipped, tmp_path)
    record = load(tmp_path)
    np.testing.assert_array_equal(record.array, volume[:, :, ::-1])  # ascending along the normal...
    last = volume.shape[2] - 1
    np.testing.assert_allclose(
        record.affine @ [3, 4, 0, 1], flipped @ [3, 4, last, 1], atol=1e-6
    )  # ...same places
    assert np.all(np.diff(record.metadata["slice_positions_mm"]) > 0)


def test_ct_rescale_to_hounsfield(tmp_path: Path) -> None:
    volume = np.array([-1000.0, 0.0, 40.0]).reshape(1, 1, 3).repeat(4, axis=0)
    paths = write_series(volume, np.eye(4), tmp_path, rescale_slope=0.5, rescale_intercept=-1024)
    record = load(tmp_path)
    np.testing.assert_array_equal(record.array, volume)
    assert (record.metadata["rescale_slope"], record.metadata["rescale_intercept"]) == (0.5, -1024.0)
    assert pydicom.dcmread(paths[2]).pixel_array.max() == (40 + 1024) / 0.5


def test_monochrome1_is_inverted_and_its_window_follows(tmp_path: Path) -> None:
    image = np.array([[0, 100], [4000, 4095]])
    path = write_image(
        image,
        tmp_path / "cr.dcm",
        photometric="MONOCHROME1",
        attributes={"WindowCenter": 1000, "WindowWidth": 401},
    )
    record = load(path)
    np.testing.assert_array_equal(record.array, 4095 - image)
    assert record.photometric == "MONOCHROME1"
    assert record.metadata["window_center"] == 4095 - 1000
    display = apply_voi_lut(record)
    # In the file, stored 4000 is far above the window -> white in MONOCHROME1 terms = shown black.
    assert display[1, 0] == 0.0 and display[0, 0] == 1.0


def test_monochrome2_window_applies_unchanged(tmp_path: Path) -> None:
    path = write_image(
        np.array([[799, 1000, 1201]]),
        tmp_path / "dx.dcm",
        attributes={"WindowCenter": 1000, "WindowWidth": 401},
    )
    record = load(path)
    np.testing.assert_allclose(apply_voi_lut(record)[0], [0.0, 0.50125, 1.0], atol=1e-5)


def test_voi_lut_sequence_is_applied(tmp_path: Path) -> None:
    path = write_image(np.array([[0, 5, 9, 50]]), tmp_path / "lut.dcm")
    ds = pydicom.dcmread(path)
    item = pydicom.Dataset()
    item.LUTDescriptor = [10, 0, 8]
    item.add_new(0x00283006, "OW", np.array([0, 10, 20, 30, 40, 50, 60, 70, 80, 255], "<u2").tobytes())
    ds.VOILUTSequence = pydicom.Sequence([item])
    ds.save_as(path)
    np.testing.assert_allclose(apply_voi_lut(load(path))[0], [0, 50 / 255, 1, 1])


def test_voi_lut_of_a_monochrome1_image_keeps_the_intended_display(tmp_path: Path) -> None:
    stored = np.array([[0, 3, 9, 15]])
    path = write_image(stored, tmp_path / "m1.dcm", photometric="MONOCHROME1", bits_stored=4)
    ds = pydicom.dcmread(path)
    item = pydicom.Dataset()
    item.LUTDescriptor = [10, 0, 8]
    table = np.array([0, 20, 40, 60, 80, 100, 120, 140, 160, 200])
    item.add_new(0x00283006, "OW", table.astype("<u2").tobytes())
    ds.VOILUTSequence = pydicom.Sequence([item])
    ds.save_as(path)
    # MONOCHROME1 shows LUT output 0 as white: brightness = 1 - LUT(stored) / 255.
    expected = 1 - table[np.minimum(stored[0], 9)] / 255
    np.testing.assert_allclose(apply_voi_lut(load(path))[0], expected, atol=1e-6)


def test_projection_radiograph_spacing_and_orientation(tmp_path: Path) -> None:
    path = write_image(
        np.zeros((30, 20)),
        tmp_path / "dx.dcm",
        attributes={"ImagerPixelSpacing": [0.2, 0.15], "ViewPosition": "PA"},
    )
    record = load(path)
    assert record.spatial_shape == (30, 20) and not record.is_volume
    assert record.spacing == pytest.approx((0.15, 0.2))
    assert record.metadata["spacing_known"] and record.metadata["view_position"] == "PA"
    # Default: columns run to the patient's left (RAS -x), rows to the feet (RAS -z).
    np.testing.assert_allclose(record.affine[:3, 0], [-0.15, 0, 0])
    np.testing.assert_allclose(record.affine[:3, 1], [0, 0, -0.2])


def test_patient_orientation_sets_the_in_plane_axes(tmp_path: Path) -> None:
    path = write_image(
        np.zeros((4, 4)),
        tmp_path / "lat.dcm",
        pixel_spacing=(1, 1),
        attributes={"PatientOrientation": ["P", "F"]},
    )
    np.testing.assert_allclose(load(path).affine[:3, 0], [0, -1, 0])  # towards posterior = RAS -y


def test_image_without_spacing_says_so(tmp_path: Path) -> None:
    record = load(write_image(np.zeros((4, 4)), tmp_path / "sc.dcm"))
    assert record.metadata["spacing_known"] is False and record.spacing == (1.0, 1.0)


def _time_series(folder: Path, n_times: int, **per_time: object) -> np.ndarray:
    """n_times volumes of one series in sub-folders; ``per_time`` maps keywords to functions of t."""
    series_uid, study_uid = generate_uid(), generate_uid()
    volumes = np.random.default_rng(2).integers(0, 1000, (n_times, 6, 5, 4)).astype(np.float32)
    for t in range(n_times):
        attributes = {keyword: f(t) for keyword, f in per_time.items()}
        write_series(
            volumes[t],
            np.eye(4),
            folder / f"t{t}",
            modality="MR",
            series_uid=series_uid,
            study_uid=study_uid,
            attributes=attributes,
        )
    return volumes


def test_time_series_loads_as_4d(tmp_path: Path) -> None:
    volumes = _time_series(
        tmp_path,
        3,
        TemporalPositionIdentifier=lambda t: 3 - t,
        AcquisitionTime=lambda t: f"1200{30 - 10 * t:02d}",
    )
    record = load(tmp_path)
    assert (
        record.array.shape == (6, 5, 4, 3) and record.spatial_shape == (6, 5, 4) and record.n_timepoints == 3
    )
    np.testing.assert_array_equal(record.array, volumes[::-1].transpose(1, 2, 3, 0))  # ordered by identifier
    assert record.metadata["frame_times"] == [0.0, 10.0, 20.0]
    assert record.display_array().shape == (3, 4, 5, 6)


def test_time_series_ordered_by_instance_number_when_declared(tmp_path: Path) -> None:
    volumes = _time_series(tmp_path, 2, NumberOfTemporalPositions=lambda t: 2)
    for path in tmp_path.rglob("*.dcm"):  # time point from the folder, instance numbers in time order
        edit(path, InstanceNumber=int(path.parent.name[1]) * 100 + int(path.stem[-4:]))
    np.testing.assert_array_equal(load(tmp_path).array, volumes.transpose(1, 2, 3, 0))


def test_repeated_positions_without_time_are_refused(tmp_path: Path) -> None:
    _time_series(tmp_path, 2)
    with pytest.raises(E.DuplicateSliceError, match="no attribute tells them apart"):
        load(tmp_path)


def test_multi_echo_is_refused(tmp_path: Path) -> None:
    _time_series(tmp_path, 2, EchoTime=lambda t: 10 + 20 * t, AcquisitionNumber=lambda t: t + 1)
    with pytest.raises(E.DuplicateSliceError, match="EchoTime"):
        load(tmp_path)


def test_metadata_has_every_schema_key(tmp_path: Path, volume: np.ndarray) -> None:
    write_series(
        volume,
        np.eye(4),
        tmp_path,
        attributes={"PatientID": "P7", "AccessionNumber": "A1", "BodyPartExamined": "CHEST"},
    )
    metadata = load(tmp_path).metadata
    assert set(METADATA_KEYS) <= set(metadata)
    assert (
        metadata["patient_id"] == "P7" and metadata["accession"] == "A1" and metadata["body_part"] == "CHEST"
    )
    assert len(metadata["sop_uids"]) == 6 and len(set(metadata["sop_uids"])) == 6
    assert metadata["format"] == "dicom" and metadata["n_files"] == 6


def test_enhanced_multiframe_uses_per_frame_positions() -> None:
    from pydicom.data import get_testdata_file

    record = load(get_testdata_file("eCT_Supplemental.dcm"))
    ds = pydicom.dcmread(get_testdata_file("eCT_Supplemental.dcm"))
    frames = ds.PerFrameFunctionalGroupsSequence
    positions = np.array([f.PlanePositionSequence[0].ImagePositionPatient for f in frames], dtype=float)
    cosines = np.array(
        ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient, float
    )
    heights = positions @ np.cross(cosines[:3], cosines[3:])
    assert record.array.shape == (512, 512, 2)
    assert record.spacing == pytest.approx((0.388672, 0.388672, abs(heights[1] - heights[0])))
    assert record.metadata["rescale_intercept"] == -1024.0 and record.metadata["window_center"] == 49.0
    np.testing.assert_array_equal(record.array[:, :, 0], ds.pixel_array[np.argmin(heights)].T - 1024.0)
