"""Every kind of bad DICOM input is refused with the right typed error, naming the file and the reason.

Each test builds its bad input from real DICOM files written by pydicom (medvl.io.dicom_writer) and then
broken the way real data breaks: truncated bytes, deleted or duplicated slices, tilted positions...
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from medvl.io import MedvlIOError, list_series, load
from medvl.io import errors as E
from medvl.io.dicom_writer import write_image, write_series

AXIAL = np.diag([0.5, 0.5, 2.0, 1.0])


@pytest.fixture
def series(tmp_path: Path) -> list[Path]:
    """Six 16x12 CT slices, 2 mm apart, in tmp_path/series."""
    volume = np.arange(16 * 12 * 6, dtype=np.float32).reshape(16, 12, 6) - 500
    return write_series(volume, AXIAL, tmp_path / "series", attributes={"SeriesDescription": "axial"})


def edit(path: Path, **attributes: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def refused(path: Path, error: type[MedvlIOError], *words: str) -> MedvlIOError:
    with pytest.raises(error) as info:
        load(path)
    assert info.value.path == str(path)
    for word in words:
        assert word in info.value.reason
    return info.value


def test_missing_path_is_a_file_not_found(tmp_path: Path) -> None:
    error = refused(tmp_path / "nope.dcm", E.MissingFileError, "no such file")
    assert isinstance(error, FileNotFoundError)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    refused(tmp_path / "empty.dcm", E.NotAnImageError, "empty")


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.dcm").write_text("patient notes, not DICOM\n" * 20)
    refused(tmp_path / "notes.dcm", E.NotAnImageError, "not a DICOM")


def test_truncated_pixel_data(series: list[Path]) -> None:
    data = series[0].read_bytes()
    series[0].write_bytes(data[:-100])
    refused(series[0], E.CorruptPixelDataError, "less than expected")


def test_corrupt_compressed_pixel_data(tmp_path: Path) -> None:
    path = write_image(np.full((32, 32), 7), tmp_path / "rle.dcm", transfer_syntax=RLELossless)
    ds = pydicom.dcmread(path)
    data = bytearray(ds.PixelData)
    data[-40:] = b"\xff" * 40
    ds.PixelData = bytes(data)
    ds.save_as(path)
    refused(path, E.CorruptPixelDataError, "RLE Lossless")


def test_file_cut_before_pixel_data(series: list[Path]) -> None:
    data = series[0].read_bytes()
    series[0].write_bytes(data[: data.index(b"\xe0\x7f\x10\x00")])  # the (7FE0,0010) Pixel Data tag
    refused(series[0], E.NoPixelDataError, "CT Image Storage object without pixel data", "ends just before")


def test_file_cut_inside_file_meta(series: list[Path]) -> None:
    series[0].write_bytes(series[0].read_bytes()[:200])
    refused(series[0], E.CorruptFileError, "truncated or corrupt")


def test_truncated_file_in_a_folder_is_refused_not_skipped(series: list[Path]) -> None:
    data = series[5].read_bytes()
    series[5].write_bytes(data[: data.index(b"\xe0\x7f\x10\x00")])
    with pytest.raises(E.NoPixelDataError) as info:
        load(series[0].parent)
    assert info.value.path == str(series[5])


def _structured_report(path: Path) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.SeriesInstanceUID = "SR", generate_uid()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_structured_report_has_no_pixels(tmp_path: Path) -> None:
    refused(_structured_report(tmp_path / "sr.dcm"), E.NoPixelDataError, "Basic Text SR", "not an image")


def test_undecodable_transfer_syntax(tmp_path: Path) -> None:
    path = write_image(np.zeros((8, 8)), tmp_path / "x.dcm", transfer_syntax=RLELossless)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder exists in pydicom
    ds.save_as(path)
    refused(path, E.UnsupportedTransferSyntaxError, "MPEG2")


def test_compressed_data_without_file_meta(tmp_path: Path) -> None:
    path = write_image(np.zeros((8, 8)), tmp_path / "x.dcm", transfer_syntax=RLELossless)
    ds = pydicom.dcmread(path)
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(path, enforce_file_format=False, implicit_vr=False, little_endian=True)
    refused(path, E.UnsupportedTransferSyntaxError, "codec is unknown")


def test_number_of_frames_not_a_number(series: list[Path]) -> None:
    ds = pydicom.dcmread(series[0])
    ds.add(DataElement(0x00280008, "LO", "1A"))  # pydicom refuses to write IS '1A'; badVR.dcm has it as IS
    ds.save_as(series[0])
    refused(series[0], E.MetadataError, "NumberOfFrames", "1A")


def test_missing_rows(series: list[Path]) -> None:
    ds = pydicom.dcmread(series[0])
    del ds.Rows
    ds.save_as(series[0])
    refused(series[0], E.MetadataError, "Rows")


def test_position_without_pixel_spacing(series: list[Path]) -> None:
    ds = pydicom.dcmread(series[0])
    del ds.PixelSpacing
    ds.save_as(series[0])
    refused(series[0], E.MetadataError, "PixelSpacing")


def test_zero_rescale_slope(series: list[Path]) -> None:
    edit(series[0], RescaleSlope="0")
    refused(series[0], E.MetadataError, "slope")


def test_missing_slice(series: list[Path]) -> None:
    series[2].unlink()
    refused(series[0].parent, E.MissingSliceError, "1 slice(s) missing", "gap of 4.000 mm")


def test_missing_slice_among_three(series: list[Path]) -> None:
    for path in (series[1], series[4], series[5]):
        path.unlink()  # slices left at 0, 4 and 6 mm
    refused(series[0].parent, E.MissingSliceError, "1 slice(s) missing")


def test_duplicate_slice_copy(series: list[Path]) -> None:
    copy = series[0].with_name("copy.dcm")
    shutil.copy(series[0], copy)
    edit(copy, SOPInstanceUID=generate_uid())
    refused(series[0].parent, E.DuplicateSliceError, "duplicate slices")


def test_same_instance_twice(series: list[Path]) -> None:
    shutil.copy(series[0], series[0].with_name("again.dcm"))
    refused(series[0].parent, E.DuplicateSliceError, "same SOP instance")


def test_non_uniform_spacing(series: list[Path]) -> None:
    edit(series[3], ImagePositionPatient=[0, 0, 6.6])  # slices at 0, 2, 4, 6.6, 8, 10 mm
    refused(series[0].parent, E.NonUniformSpacingError, "varies")


def test_gantry_tilt(series: list[Path]) -> None:
    for k, path in enumerate(series):  # 5 degrees: each slice shifted along y by 2 mm * tan(5 deg)
        edit(path, ImagePositionPatient=[0, 2.0 * k * np.tan(np.radians(5)), 2.0 * k])
    error = refused(series[0].parent, E.GantryTiltError, "gantry tilt")
    assert "5.00 degrees" in error.reason


def test_tilt_below_tolerance_loads(series: list[Path]) -> None:
    for k, path in enumerate(series):  # 0.005 mm drift over the stack: rounding, not tilt
        edit(path, ImagePositionPatient=[0, 0.001 * k, 2.0 * k])
    assert load(series[0].parent).array.shape == (16, 12, 6)


def test_mixed_orientation(series: list[Path]) -> None:
    edit(series[4], ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    refused(series[0].parent, E.MixedOrientationError, "orientations")


def test_mixed_matrix_size(series: list[Path]) -> None:
    ds = pydicom.dcmread(series[1])
    ds.Rows, ds.Columns = 8, 24
    ds.save_as(series[1])
    refused(series[0].parent, E.MixedMatrixSizeError, "8x24")


def test_mixed_pixel_spacing(series: list[Path]) -> None:
    edit(series[1], PixelSpacing=[0.6, 0.6])
    refused(series[0].parent, E.MixedMatrixSizeError, "pixel spacings")


def test_unpositioned_images_are_not_stacked(tmp_path: Path) -> None:
    uid = generate_uid()
    for name in ("pa.dcm", "lat.dcm"):
        write_image(np.zeros((10, 10)), tmp_path / name, attributes={"SeriesInstanceUID": uid})
    refused(tmp_path, E.SeriesGeometryError, "2 files without ImagePositionPatient", "one by one")


def test_several_series_are_listed_not_guessed(series: list[Path], tmp_path: Path) -> None:
    other = write_series(np.zeros((4, 4, 3)), AXIAL, tmp_path / "series" / "other")
    other_uid = pydicom.dcmread(other[0]).SeriesInstanceUID
    error = refused(series[0].parent, E.MultipleSeriesError, "2 series", other_uid, "axial", "6 files")
    assert sorted(info.n_files for info in error.series) == [3, 6]
    infos = list_series(series[0].parent)
    assert {info.uid for info in infos} == {info.uid for info in error.series}
    assert load(series[0].parent, series_uid=other_uid).array.shape == (4, 4, 3)


def test_unknown_series_uid(series: list[Path]) -> None:
    with pytest.raises(E.NotAnImageError, match="no series '1.2.3'"):
        load(series[0].parent, series_uid="1.2.3")


def test_folder_without_dicom(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("nothing here")
    refused(tmp_path, E.NotAnImageError, "no DICOM file")


def test_folder_with_only_a_report(tmp_path: Path) -> None:
    _structured_report(tmp_path / "sr.dcm")
    refused(tmp_path, E.NoPixelDataError, "none holds pixel data")


def test_unparsable_dicom_in_a_folder_is_refused_not_skipped(series: list[Path]) -> None:
    bad = series[0].with_name("broken.dcm")
    bad.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f" + b"\x01" * 10)
    with pytest.raises(E.CorruptFileError) as info:
        load(series[0].parent)
    assert info.value.path == str(bad)


def test_non_dicom_files_in_a_folder_are_skipped(series: list[Path]) -> None:
    (series[0].parent / "README-Series.txt").write_text("series notes")
    (series[0].parent / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    _structured_report(series[0].parent / "report.dcm")
    assert load(series[0].parent).array.shape == (16, 12, 6)


def test_colour_time_series_is_refused(tmp_path: Path) -> None:
    uid = generate_uid()
    for t in range(2):
        path = write_image(np.zeros((6, 6)), tmp_path / f"t{t}.dcm", attributes={"SeriesInstanceUID": uid})
        ds = pydicom.dcmread(path)
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelData = np.zeros((6, 6, 3), np.uint8).tobytes()
        ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing = (
            [0, 0, 0],
            [1, 0, 0, 0, 1, 0],
            [1, 1],
        )
        ds.TemporalPositionIdentifier = t + 1
        ds.save_as(path)
    refused(tmp_path, E.UnsupportedLayoutError, "colour time series")
