"""Compressed pixel data cut short is refused, never decoded into wrong pixels: JPEG-family frames without their
end marker, files ending inside the encapsulated data; decoder failures keep their cause."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.data.data_manager import external_data_sources
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID, JPEG2000Lossless, JPEGBaseline8Bit

from medvl.io import MedvlIOError, load
from medvl.io import errors as E
from medvl.io.dicom_writer import write_image

SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
FRAME_CUTS = (0.3, 0.8, 0.97, -2)
"""Where the last frame is cut: fractions of its length, or a count of bytes dropped from its end."""
FILE_CUTS = (0.5, 0.9, -11)
"""Where the file is cut: fractions of the pixel data's length, or a count of bytes dropped from the file (11:
the sequence delimiter and the last 3 bytes of the last frame)."""


def jpeg_dicom(path: Path, frames: list[bytes], rows: int, cols: int) -> Path:
    """A JPEG baseline MONOCHROME2 secondary capture holding ``frames`` (JPEG codestreams)."""
    path = write_image(np.zeros((cols, rows), int), path, modality="OT", bits_stored=8)
    ds = pydicom.dcmread(path)
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(path)
    return path


def pillow_jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_truncated_jpeg_frame_is_refused_naming_the_frame(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (48, 64), dtype=np.uint8) for _ in range(2)]
    frames = [pillow_jpeg(image) for image in images]
    intact = load(jpeg_dicom(tmp_path / "intact.dcm", frames, 48, 64))
    assert intact.array.shape == (64, 48, 2)
    np.testing.assert_allclose(intact.array[:, :, 1].T, images[1], atol=40)  # lossy, but this image
    path = jpeg_dicom(tmp_path / "cut.dcm", [frames[0], frames[1][: int(len(frames[1]) * 0.8)]], 48, 64)
    with pytest.raises(E.CorruptPixelDataError) as info:
        load(path)
    assert info.value.path == str(path)
    assert "frame 2 of 2" in info.value.reason and "end-of-image marker (FFD9)" in info.value.reason


def test_file_cut_inside_compressed_pixel_data(tmp_path: Path) -> None:
    path = write_image(
        np.arange(40 * 32).reshape(40, 32) % 4000, tmp_path / "j2k.dcm", transfer_syntax=JPEG2000Lossless
    )
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(E.CorruptPixelDataError) as info:
        load(path)
    assert "ends inside its encapsulated pixel data" in info.value.reason


def test_decoder_failure_keeps_its_cause(tmp_path: Path) -> None:
    path = write_image(
        np.arange(40 * 32).reshape(40, 32) % 4000, tmp_path / "j2k.dcm", transfer_syntax=JPEG2000Lossless
    )
    ds = pydicom.dcmread(path)
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    ds.PixelData = encapsulate(
        [frame[:4] + bytes(len(frame) - 6) + frame[-2:]]
    )  # markers kept, header zeroed
    ds.save_as(path)
    with pytest.raises(E.CorruptPixelDataError) as info:
        load(path)
    cause = info.value.reason.split("plugins:", 1)[1]
    assert "pylibjpeg" in cause and "\n" not in info.value.reason


def _same_as_intact(source: Path, array: np.ndarray) -> bool:
    try:
        return np.array_equal(load(source).array, array, equal_nan=True)
    except MedvlIOError:
        return False  # the intact file is refused: nothing cut from it may load


def _compressed_pydicom_files() -> list[tuple[Path, Dataset]]:
    """pydicom's (and pydicom-data's, when installed) files with encapsulated pixel data, parsed. The folders
    are listed directly: ``get_testdata_files`` tries to download the files it lacks."""
    folders = [Path(get_testdata_file("CT_small.dcm")).parent]
    folders += [Path(source.data_path) for source in external_data_sources().values()]
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(path for folder in folders for path in folder.rglob("*.dcm")):
            try:
                ds = pydicom.dcmread(name)
            except Exception:
                continue
            syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
            if syntax and UID(syntax).is_encapsulated and "PixelData" in ds:
                found.append((Path(name), ds))
    return found


def _cut_versions(path: Path, ds: Dataset) -> dict[str, bytes]:
    """The file cut at :data:`FILE_CUTS`, and re-encapsulated with its last frame cut at :data:`FRAME_CUTS`."""
    raw = path.read_bytes()
    start = ds.get_item("PixelData").value_tell
    versions = {
        f"file cut at {cut}": raw[: int(start + (len(raw) - start) * cut) if cut > 0 else cut]
        for cut in FILE_CUTS
    }
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1)))
    for cut in FRAME_CUTS:
        last = frames[-1][: int(len(frames[-1]) * cut) if cut > 0 else cut]
        versions[f"last frame cut at {cut}"] = (
            raw[:start] + encapsulate([*frames[:-1], last]) + SEQUENCE_DELIMITER
        )
    return versions


def test_every_compressed_pydicom_file_cut_short_is_refused_or_identical(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(
        logging.CRITICAL, logger="pydicom"
    )  # pydicom logs each decoder failure with its traceback
    files = _compressed_pydicom_files()
    assert len(files) >= 50
    wrong = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for source, ds in files:
            for label, content in _cut_versions(source, ds).items():
                path = tmp_path / f"{source.stem}.dcm"
                path.write_bytes(content)
                try:
                    array = load(path).array
                except MedvlIOError as error:
                    assert error.path == str(path) and error.reason
                    continue
                if not _same_as_intact(source, array):
                    wrong.append(f"{source.name}, {label}")
    assert not wrong, f"loaded with pixels that differ from the intact file: {wrong}"
