"""``medvl ingest --check-images`` quarantines every input medvl.io refuses, each with its typed reason, and keeps
the good study; DICOM headers are read under the decoded-size limit even without the image check."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

from medvl.cli import main
from medvl.io.dicom_writer import write_image, write_series
from medvl.io.limits import MAX_DECODED_BYTES_ENV
from tests.test_io_truncation import jpeg_dicom, pillow_jpeg

AXIAL = np.diag([0.5, 0.5, 2.0, 1.0])


def edit(path: Path, **attributes: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def bad_tree(root: Path) -> dict[str, tuple[str, str]]:
    """One good CT series and one folder per kind of bad input; the expected (error type, words) by folder."""
    write_series(np.zeros((4, 3, 3)), AXIAL, root / "good")
    frame = pillow_jpeg(np.random.default_rng(0).integers(0, 255, (48, 64), dtype=np.uint8))
    jpeg_dicom(root / "jpeg_cut" / "a.dcm", [frame[: int(len(frame) * 0.8)]], 48, 64)
    heights = np.concatenate([np.arange(26) * 2.0, 50 + np.arange(1, 26) * 2.0198])  # each gap within 1%
    for path, z in zip(
        write_series(np.zeros((4, 3, len(heights))), AXIAL, root / "drift"), heights, strict=True
    ):
        edit(path, ImagePositionPatient=[0, 0, f"{z:.4f}"])
    edit(write_image(np.full((8, 8), 9), root / "slope" / "a.dcm"), RescaleSlope="1e39")
    deflated = write_image(np.zeros((1024, 1024), int), root / "bomb" / "a.dcm")
    edit(deflated)
    ds = pydicom.dcmread(deflated)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(deflated)
    two = write_series(np.zeros((4, 3, 2)), AXIAL, root / "duplicate")
    shutil.copy(two[0], two[0].with_name("copy.dcm"))
    edit(two[0].with_name("copy.dcm"), SOPInstanceUID=generate_uid())
    cut = write_image(
        np.arange(40 * 32).reshape(40, 32), root / "cut" / "a.dcm", transfer_syntax=JPEG2000Lossless
    )
    cut.write_bytes(cut.read_bytes()[:-40])
    empty = write_image(np.zeros((8, 8), int), root / "no_pixels" / "a.dcm", modality="CT")
    ds = pydicom.dcmread(empty)
    del ds.PixelData
    ds.save_as(empty)
    return {
        "jpeg_cut/a.dcm": ("CorruptPixelDataError", "end-of-image marker"),
        "drift": ("NonUniformSpacingError", "drift from a uniform grid"),
        "slope/a.dcm": ("MetadataError", "float32"),
        "bomb/a.dcm": ("DecodedSizeError", "deflated data inflates beyond the limit of 1 MiB"),
        "duplicate": ("DuplicateSliceError", "copy.dcm"),
        "cut/a.dcm": ("CorruptPixelDataError", "ends inside its encapsulated pixel data"),
        "no_pixels/a.dcm": ("NoPixelDataError", "without pixel data"),
    }


def test_ingest_quarantines_every_refused_input_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_DECODED_BYTES_ENV, "1G")  # restored after the test; --max-decoded-bytes changes it
    expected = bad_tree(tmp_path / "export")
    out = tmp_path / "cohort.parquet"
    args = ["ingest", "dicom-folder", str(tmp_path / "export"), "-o", str(out), "--phi-policy", "off", "-q"]
    assert main([*args, "--check-images", "--max-decoded-bytes", "1M"]) == 0
    quarantine = pd.read_csv(tmp_path / "cohort.quarantine.csv", dtype=str, keep_default_na=False)
    found = {
        Path(row.path).relative_to(tmp_path / "export").as_posix(): row for row in quarantine.itertuples()
    }
    assert set(found) == set(expected)
    for name, (error_type, words) in expected.items():
        assert found[name].error_type == error_type and words in found[name].reason, name
    manifest = pd.read_parquet(out)
    assert len(manifest) == 1 and manifest.iloc[0]["images"][0]["path"].endswith("good")
    assert main(args) == 0  # headers only: the bomb and the damaged headers are still refused
    headers_only = pd.read_csv(tmp_path / "cohort.quarantine.csv", dtype=str, keep_default_na=False)
    assert {Path(p).parent.name for p in headers_only["path"]} == {"bomb", "cut", "no_pixels"}


def test_ingest_quarantines_nifti_with_unknown_contradicting_or_oversized_geometry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_DECODED_BYTES_ENV, "1G")
    cohort = tmp_path / "cohort"
    args = ["synth", "-o", str(cohort), "--n-2d", "0", "--n-3d", "4", "--ct-size", "32", "--depth", "16,16"]
    assert main([*args, "--ct-dicom-fraction", "0", "-q"]) == 0
    good, unknown, flipped, bomb = sorted(cohort.glob("3d/*/*/ct.nii.gz"))
    image = nib.load(good)
    data, affine = np.asanyarray(image.dataobj), image.affine
    no_forms = nib.Nifti1Image(data, None)
    no_forms.set_sform(None, code=0)
    no_forms.set_qform(None, code=0)
    nib.save(no_forms, unknown)
    mirrored = nib.Nifti1Image(data, affine)
    mirrored.set_qform(affine @ np.diag([-1.0, 1.0, 1.0, 1.0]), code=1)
    nib.save(mirrored, flipped)
    header = nib.Nifti1Header()
    header.set_data_shape((1024, 1024, 1024))
    header["vox_offset"] = 352
    bomb.write_bytes(gzip.compress(header.binaryblock + bytes(4) + bytes(1 << 20)))
    out = tmp_path / "cohort.parquet"
    assert (
        main(
            [
                "ingest",
                "phantom",
                str(cohort),
                "-o",
                str(out),
                "--option",
                "images=files",
                "--check-images",
                "-q",
            ]
        )
        == 0
    )
    quarantine = pd.read_csv(tmp_path / "cohort.quarantine.csv", dtype=str, keep_default_na=False)
    found = {Path(row.path): (row.error_type, row.reason) for row in quarantine.itertuples()}
    assert found[unknown][0] == "MetadataError" and "orientation unknown" in found[unknown][1]
    assert (
        found[flipped][0] == "MetadataError" and "disagree on the direction of the axes" in found[flipped][1]
    )
    assert found[bomb][0] == "DecodedSizeError" and "4 GiB" in found[bomb][1]
    assert len(found) == 3 and len(pd.read_parquet(out)) == 1
