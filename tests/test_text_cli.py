"""`medvl label` on a manifest, a CSV file and the IU archive; bad input exits 2 with one stderr line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from medvl.cli import main
from medvl.text.labels import CHEXPERT_14

from .test_data_corpus import write_small_manifest


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_label_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_small_manifest(tmp_path / "m.parquet")
    out = tmp_path / "labels.csv"
    mentions = tmp_path / "mentions.jsonl"
    assert main(["label", str(manifest), "-o", str(out), "--mentions", str(mentions)]) == 0
    rows = _rows(out)
    assert list(rows[0]) == ["id", *CHEXPERT_14]
    by_id = {row["id"]: row for row in rows}
    assert by_id["s1"]["Cardiomegaly"] == "1" and by_id["s1"]["Pleural Effusion"] == "1"
    assert by_id["s1"]["Pneumonia"] == ""  # the indication is not labelled
    assert by_id["s2"]["Pneumothorax"] == "0" and by_id["s2"]["No Finding"] == "1"
    assert by_id["s3"]["Consolidation"] == "1"
    assert "labelled 3 reports" in capsys.readouterr().out
    first = json.loads(mentions.read_text().splitlines()[0])
    assert first["id"] == "s1" and {m["observation"] for m in first["mentions"]} == {"Cardiomegaly", "Pleural Effusion"}


def test_label_csv_with_extended_label_space(tmp_path: Path) -> None:
    notes = tmp_path / "notes.csv"
    notes.write_text('patientid,clinical_notes\n7,"Hiatal hernia. Cannot exclude pneumonia."\n8,Clear lungs\n')
    space = tmp_path / "space.yaml"
    space.write_text("observations:\n  - name: Hiatal Hernia\n    synonyms: [hiatal hernia]\n")
    out = tmp_path / "labels.csv"
    status = main(["label", str(notes), "--text-column", "clinical_notes", "--id-column", "patientid",
                   "--label-space", str(space), "-o", str(out)])
    assert status == 0
    rows = _rows(out)
    assert rows[0]["Hiatal Hernia"] == "1" and rows[0]["Pneumonia"] == "-1"
    assert rows[1]["id"] == "8" and rows[1]["Hiatal Hernia"] == ""
    replaced = tmp_path / "replaced.csv"
    assert main(["label", str(notes), "--label-space", str(space), "--replace-label-space", "-o", str(replaced)]) == 0
    assert list(_rows(replaced)[0]) == ["id", "Hiatal Hernia"]


def test_label_iu_archive(realdata: Path, tmp_path: Path) -> None:
    out = tmp_path / "iu.csv"
    assert main(["label", str(realdata / "iu_reports" / "NLMCXR_reports.tgz"), "--source", "iu-xray", "-o", str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 3955 and rows[0]["id"] == "CXR1" and rows[0]["No Finding"] == "1"
    assert {v for row in rows for k, v in row.items() if k != "id"} <= {"1", "0", "-1", ""}
    assert sum(row["Cardiomegaly"] == "1" for row in rows) > 250


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["label", "{tmp}/absent.csv", "-o", "{tmp}/x.csv"], "absent.csv: no such file"),
        (["label", "{tmp}/notes.csv", "--text-column", "body", "-o", "{tmp}/x.csv"], "no text column 'body'"),
        (["label", "{tmp}/notes.csv", "--label-space", "{tmp}/none.yaml", "-o", "{tmp}/x.csv"], "no such label-space file"),
        (["label", "{tmp}/notes.csv", "--replace-label-space", "-o", "{tmp}/x.csv"], "needs --label-space"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    (tmp_path / "notes.csv").write_text("id,text\n1,clear\n")
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_console_entry_point_exit_status(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from medvl.cli import main; sys.exit(main())",
         "label", str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "x.csv")],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"medvl label: error: {tmp_path / 'missing.parquet'}: no such file or folder"
