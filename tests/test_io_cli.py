"""``medvl inspect``: text and JSON summaries, no patient identifiers, exit status 2 with one line on bad input."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medvl.cli import inspect, main
from medvl.io.dicom_writer import write_series

IDENTIFIERS = {"PatientName": "Doe^Jane", "PatientID": "MRN-445566", "AccessionNumber": "ACC-778899"}


@pytest.fixture
def series(tmp_path: Path) -> Path:
    volume = np.linspace(-1000, 1000, 8 * 6 * 4, dtype=np.float32).reshape(8, 6, 4).round()
    write_series(
        volume,
        np.diag([0.5, 0.5, 3.0, 1.0]),
        tmp_path / "ct",
        attributes={**IDENTIFIERS, "SeriesDescription": "chest"},
    )
    return tmp_path / "ct"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from medvl.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_text_summary_in_a_real_process(series: Path) -> None:
    result = run_cli("inspect", str(series))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "8 x 6 x 4  [X, Y, Z]" in out and "0.5 x 0.5 x 3" in out and "-1000 .. 1000" in out
    assert "modality:" in out and "CT" in out and "series_description: chest" in out and "study_uid:" in out
    assert "orientation:        RAS" in out
    for value in IDENTIFIERS.values():
        assert value not in out


def test_json_summary(series: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(series), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["shape"] == [8, 6, 4] and summary["spacing_mm"] == [0.5, 0.5, 3.0]
    assert summary["value_range"] == [-1000.0, 1000.0] and summary["modality"] == "CT"
    np.testing.assert_allclose(summary["affine"], np.diag([0.5, 0.5, 3.0, 1.0]))
    assert summary["metadata"]["series_description"] == "chest"
    assert not {"patient_name", "patient_id", "accession"} & set(summary["metadata"])
    for value in IDENTIFIERS.values():
        assert value not in json.dumps(summary)


def test_bad_input_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 64)
    for target in (tmp_path / "junk.dcm", tmp_path / "missing.nii"):
        namespace = argparse.Namespace(path=str(target), json=False, series=None, max_decoded_bytes=None)
        assert inspect.run(namespace) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1
        assert captured.err.startswith(f"medvl inspect: {target}: ")


def test_bad_input_exit_2_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    result = run_cli("inspect", str(tmp_path / "notes.txt"))
    assert result.returncode == 2 and result.stdout == ""
    reasons = [line for line in result.stderr.splitlines() if line.startswith("medvl inspect: ")]
    assert len(reasons) == 1 and "not a DICOM, NIfTI, NRRD, PNG or JPEG file" in reasons[0]


def test_several_series_are_listed_then_chosen(series: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = write_series(
        np.zeros((3, 3, 2)), np.eye(4), series / "scout", attributes={"SeriesDescription": "scout"}
    )
    import pydicom

    uid = pydicom.dcmread(other[0]).SeriesInstanceUID
    assert main(["inspect", str(series)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 series" in err and uid in err and "scout" in err and "4 files" in err
    assert "choose one with --series UID" in err and "series_uid" not in err
    assert main(["inspect", str(series), "--series", uid]) == 0
    assert "3 x 3 x 2" in capsys.readouterr().out


def test_help_explains(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["inspect", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "--json" in text and "--series UID" in text and "Exit status 2" in text


def test_unknown_spacing_and_orientation_are_shown_as_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image.fromarray(np.zeros((30, 20), np.uint8)).save(tmp_path / "photo.png")
    assert main(["inspect", str(tmp_path / "photo.png")]) == 0
    out = capsys.readouterr().out
    assert "spacing (mm):   unknown (the source does not say; nominal 1 x 1)" in out
    assert "orientation:    unknown (the source does not say; nominal LI" in out


def test_output_cut_short_by_its_reader_ends_quietly(series: Path) -> None:
    code = "import sys; from medvl.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "inspect", str(series), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # like '| head' exiting before medvl writes
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1 and "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_help_imports_no_image_or_learning_library() -> None:
    code = (
        "import sys\nfrom medvl.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('numpy', 'pydicom', 'nibabel', 'PIL', 'pandas', 'scipy', 'torch')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "COMMAND" in result.stdout and "inspect" in result.stdout
    assert result.stderr.strip() == "[]"
