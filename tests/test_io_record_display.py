"""ImageRecord axes, windowing (DICOM formulas and presets) and reorientation (array and affine together)."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest

from medvl.io import WINDOW_PRESETS, ImageRecord, apply_voi_lut, apply_window, axis_codes, reorient
from medvl.io.errors import MetadataError
from medvl.io.metadata import empty_metadata


def oblique_record(shape: tuple[int, ...] = (5, 4, 3), channels: int = 1) -> ImageRecord:
    affine = np.eye(4)
    affine[:3, :3] = nib.eulerangles.euler2mat(2.5, 0.3, -0.2) @ np.diag([0.9, 1.1, 2.0])
    affine[:3, 3] = [10, -5, 3]
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    metadata = empty_metadata(slice_positions_mm=[0.0, 2.0, 4.0] if len(shape) >= 3 else None)
    return ImageRecord(array, affine, metadata=metadata, channels=channels)


def test_record_axes_for_every_layout() -> None:
    assert oblique_record((5, 4)).spatial_shape == (5, 4)
    volume = oblique_record((5, 4, 3))
    assert volume.is_volume and volume.n_timepoints == 1 and volume.display_array().shape == (3, 4, 5)
    series = oblique_record((5, 4, 3, 7))
    assert series.spatial_shape == (5, 4, 3) and series.n_timepoints == 7 and len(series.spacing) == 3
    assert series.display_array().shape == (7, 3, 4, 5)
    rgb = oblique_record((5, 4, 3), channels=3)
    assert rgb.spatial_shape == (5, 4) and rgb.display_array().shape == (4, 5, 3)
    assert rgb.spacing == pytest.approx((0.9, 1.1))


@pytest.mark.parametrize(
    ("shape", "channels", "affine_shape"),
    [((5, 4), 1, (3, 3)), ((5,), 1, (4, 4)), ((5, 4, 2), 3, (4, 4)), ((5, 4, 3, 2, 3), 3, (4, 4))],
)
def test_record_rejects_impossible_layouts(shape, channels, affine_shape) -> None:
    with pytest.raises(ValueError):
        ImageRecord(
            np.zeros(shape, np.float32), np.eye(4)[: affine_shape[0], : affine_shape[1]], channels=channels
        )


def test_linear_window_follows_dicom() -> None:
    # PS3.3 C.11.2.1.2.1, center 40 width 400: 0 at or below -160, 1 above 239, linear between.
    values = np.array([-1000, -160, -159.5, 40, 239, 239.5, 3000], dtype=np.float32)
    out = apply_window(values, 40, 400)
    expected = np.clip((values - 39.5) / 399 + 0.5, 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out[1] == pytest.approx(0.0, abs=2e-3) and out[-1] == 1.0 and out.dtype == np.float32


def test_linear_exact_and_sigmoid_windows() -> None:
    values = np.array([-200.0, 40.0, 240.0])
    np.testing.assert_allclose(apply_window(values, 40, 400, function="LINEAR_EXACT"), [0.0, 0.5, 1.0])
    sigmoid = apply_window(values, 40, 400, function="sigmoid")
    assert sigmoid[1] == pytest.approx(0.5) and 0 < sigmoid[0] < 0.5 < sigmoid[2] < 1


def test_width_one_is_a_threshold() -> None:
    np.testing.assert_array_equal(apply_window(np.array([9.0, 9.6, 11.0]), 10, 1), [0.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("width", "function"), [(0.5, "LINEAR"), (0, "SIGMOID"), (float("nan"), "LINEAR"), (10, "GAMMA")]
)
def test_invalid_windows_are_refused(width: float, function: str) -> None:
    with pytest.raises(ValueError):
        apply_window(np.zeros(3), 0, width, function=function)


def test_presets_are_the_documented_ct_windows() -> None:
    assert WINDOW_PRESETS == {
        "lung": (-600, 1500),
        "mediastinum": (50, 350),
        "bone": (400, 1800),
        "brain": (40, 80),
    }
    lung = apply_window(np.array([-1000.0, -600.0, 200.0]), *WINDOW_PRESETS["lung"])
    assert lung[0] < 0.25 and lung[1] == pytest.approx(0.5, abs=1e-3) and lung[2] == 1.0


def test_voi_lut_without_window_says_what_to_do() -> None:
    with pytest.raises(MetadataError, match="WINDOW_PRESETS"):
        apply_voi_lut(oblique_record())


def world(record: ImageRecord, index: tuple[int, ...]) -> np.ndarray:
    full = list(index) + [0] * (3 - len(index)) + [1]
    return (record.affine @ full)[:3]


@pytest.mark.parametrize("code", ["".join(p) for p in itertools.product("LR", "AP", "SI")] + ["PIL", "SRA"])
def test_reorient_keeps_every_voxel_in_place(code: str) -> None:
    record = oblique_record()
    result = reorient(record, code)
    assert axis_codes(result) == code
    for old_index in itertools.product(*(range(n) for n in record.array.shape)):
        new_index = np.rint(np.linalg.solve(result.affine, [*world(record, old_index), 1])[:3]).astype(int)
        assert result.array[tuple(new_index)] == record.array[old_index]


def test_reorient_time_series_keeps_time_last_and_tracks_slice_positions() -> None:
    array = np.arange(5 * 4 * 3 * 2, dtype=np.float32).reshape(5, 4, 3, 2)
    record = ImageRecord(
        array, np.diag([1.0, 1.0, -2.0, 1.0]), metadata=empty_metadata(slice_positions_mm=[0.0, 2.0, 4.0])
    )
    flipped = reorient(record, "RAS")
    np.testing.assert_array_equal(flipped.array, array[:, :, ::-1, :])
    assert flipped.metadata["slice_positions_mm"] == [4.0, 2.0, 0.0]
    moved = reorient(record, "RSA")
    assert moved.array.shape == (5, 3, 4, 2) and moved.metadata["slice_positions_mm"] is None
    assert record.metadata["slice_positions_mm"] == [0.0, 2.0, 4.0]  # the input is untouched


def test_reorient_2d_orders_the_two_in_plane_axes() -> None:
    affine = np.eye(4)
    affine[:3, 0] = [-0.2, 0, 0]  # columns towards patient left
    affine[:3, 1] = [0, 0, -0.3]  # rows towards the feet
    record = ImageRecord(np.arange(12, dtype=np.float32).reshape(4, 3), affine)
    result = reorient(record, "RAS")
    assert axis_codes(result) == "RS" and result.array.shape == (4, 3)
    np.testing.assert_array_equal(result.array, record.array[::-1, ::-1])
    np.testing.assert_allclose(world(result, (0, 0)), world(record, (3, 2)))


def test_reorient_rejects_bad_codes() -> None:
    for code in ("RAX", "RRS", "RA"):
        with pytest.raises(ValueError, match="orientation code"):
            reorient(oblique_record(), code)


def test_lps_display_is_radiological() -> None:
    affine = np.diag([1.0, 1.0, 1.0, 1.0])  # RAS-ordered axial volume
    array = np.zeros((4, 3, 2), np.float32)
    array[3, 2, 0] = 1  # patient right (RAS x largest), anterior, inferior
    shown = reorient(ImageRecord(array, affine), "LPS").display_array()
    # Radiological: patient right on the viewer's left, anterior at the top, first slice inferior.
    assert shown[0, 0, 0] == 1
