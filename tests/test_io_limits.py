"""The decoded-size limit: decompression bombs are refused with a typed error before they are inflated or
decoded, in every reader, and the limit comes from $MEDVL_MAX_DECODED_BYTES or --max-decoded-bytes."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medvl.cli import main
from medvl.io import errors as E
from medvl.io import load
from medvl.io.dicom_writer import write_image
from medvl.io.limits import (
    DEFAULT_MAX_DECODED_BYTES,
    MAX_DECODED_BYTES_ENV,
    DecodedSizeError,
    check_decoded_size,
    check_gzip_stream,
    max_decoded_bytes,
)

MiB = 1 << 20


@pytest.fixture
def limit(monkeypatch: pytest.MonkeyPatch):
    """Set $MEDVL_MAX_DECODED_BYTES for one test."""
    return lambda value: monkeypatch.setenv(MAX_DECODED_BYTES_ENV, value)


def refused_for_size(path: Path) -> DecodedSizeError:
    tracemalloc.start()
    try:
        with pytest.raises(DecodedSizeError) as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.path == str(path) and MAX_DECODED_BYTES_ENV in info.value.reason
    assert "--max-decoded-bytes" in info.value.reason
    assert peak < 16 * MiB, f"refusing took {peak / MiB:.0f} MiB: the data was inflated or decoded"
    return info.value


def test_limit_from_the_environment(limit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_DECODED_BYTES_ENV, raising=False)
    assert max_decoded_bytes() == DEFAULT_MAX_DECODED_BYTES == 2 << 30
    for text, expected in (("1048576", MiB), ("512M", 512 * MiB), ("4G", 4 << 30), (" 2 GiB ", 2 << 30)):
        limit(text)
        assert max_decoded_bytes() == expected, text
    limit("lots")
    with pytest.raises(ValueError, match=f"{MAX_DECODED_BYTES_ENV}: not a size: 'lots'"):
        max_decoded_bytes()


def test_check_decoded_size_says_size_limit_and_remedy() -> None:
    check_decoded_size("a.nii", 1000, limit=1000)
    with pytest.raises(DecodedSizeError) as info:
        check_decoded_size("a.nii", 3 << 30, limit=1 << 30)
    assert info.value.path == "a.nii"
    assert "3 GiB" in info.value.reason and "limit of 1 GiB" in info.value.reason
    assert MAX_DECODED_BYTES_ENV in info.value.reason and "--max-decoded-bytes" in info.value.reason


def test_gzip_stream_is_inflated_in_chunks(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.nii.gz"
    bomb.write_bytes(gzip.compress(bytes(64 * MiB)))  # 64 KB on disk
    tracemalloc.start()
    with pytest.raises(DecodedSizeError, match="gzip data inflates beyond the limit of 8 MiB"):
        check_gzip_stream(bomb, limit=8 * MiB)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * MiB
    check_gzip_stream(bomb, limit=64 * MiB)
    joined = tmp_path / "joined.gz"  # concatenated members count together
    joined.write_bytes(gzip.compress(bytes(600)) + gzip.compress(bytes(600)))
    check_gzip_stream(joined, limit=1200)
    with pytest.raises(DecodedSizeError):
        check_gzip_stream(joined, limit=1199)


def test_corrupt_and_truncated_gzip_streams(tmp_path: Path) -> None:
    data = gzip.compress(np.random.default_rng(0).bytes(50_000))
    cases = {"cut.gz": data[:-100], "junk.gz": data[:20] + b"\xff" * 200, "empty.gz": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(E.CorruptFileError) as info:
            check_gzip_stream(tmp_path / name)
        assert info.value.path == str(tmp_path / name) and "gzip data" in info.value.reason


def test_nifti_declaring_a_gigavoxel_is_refused_before_reading(tmp_path: Path) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((1024, 1024, 1024))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(
        gzip.compress(header.binaryblock + bytes(4) + bytes(MiB))
    )  # 1 MB of zeros, 1 GiB declared
    error = refused_for_size(path)
    assert "4 GiB" in error.reason


def test_deflated_dicom_is_bounded_while_its_header_is_read(tmp_path: Path, limit) -> None:
    path = write_image(np.zeros((1024, 1024), int), tmp_path / "deflated.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path)
    assert path.stat().st_size < 10_000  # 2 MiB of pixels deflated
    limit("1M")
    error = refused_for_size(path)
    assert "deflated data inflates beyond the limit of 1 MiB" in error.reason
    limit("64M")
    assert load(path).array.shape == (1024, 1024)


def test_compressed_dicom_frames_are_counted_before_decoding(tmp_path: Path, limit) -> None:
    path = write_image(np.zeros((64, 64), int), tmp_path / "frames.dcm")
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 16384  # declares 2 x 16384^2 values: 2 GiB as float32
    ds.NumberOfFrames = 2
    ds.save_as(path)
    limit("1G")
    error = refused_for_size(path)
    assert "2 GiB" in error.reason and "limit of 1 GiB" in error.reason
    limit("4G")  # over the limit no more: the pixel data is then found short, not decoded
    with pytest.raises(E.CorruptPixelDataError):
        load(path)


def test_png_and_nrrd_are_checked_too(tmp_path: Path, limit) -> None:
    Image.fromarray(np.zeros((600, 500), np.uint8)).save(tmp_path / "big.png")
    nrrd_path = tmp_path / "big.nrrd"
    nrrd_path.write_bytes(
        b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 100 100 100\nencoding: gzip\n\n"
        + gzip.compress(bytes(100**3))
    )
    limit("1M")
    refused_for_size(tmp_path / "big.png")
    refused_for_size(nrrd_path)
    limit("8M")
    assert load(tmp_path / "big.png").array.shape == (500, 600)
    assert load(nrrd_path).array.shape == (100, 100, 100)


def test_cli_option_sets_the_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv(MAX_DECODED_BYTES_ENV, "1G")  # restored after the test, which the option changes
    Image.fromarray(np.zeros((600, 500), np.uint8)).save(tmp_path / "big.png")
    assert main(["inspect", str(tmp_path / "big.png"), "--max-decoded-bytes", "1M"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "over the limit of 1 MiB" in err and "big.png" in err
    assert main(["inspect", str(tmp_path / "big.png"), "--max-decoded-bytes", "2M"]) == 0
    assert "500 x 600" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["inspect", str(tmp_path / "big.png"), "--max-decoded-bytes", "2X"])
    assert "not a size: '2X'" in capsys.readouterr().err
