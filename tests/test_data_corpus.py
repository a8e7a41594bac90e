"""Report texts from manifests, CSV files, text files and the IU archive."""

from __future__ import annotations

from pathlib import Path

import pytest

from medvl.data.corpus import detect_source, focus_text, read_reports
from medvl.data.manifest import from_rows, make_row, write_manifest
from medvl.text.errors import ReportSourceError


def write_small_manifest(path: Path) -> Path:
    rows = [
        make_row(patient_id="p1", study_id="s1", source="phantom", images=[{"path": "a.dcm"}],
                 findings="Mild cardiomegaly.", impression="Small left pleural effusion.",
                 report="INDICATION: rule out pneumonia. FINDINGS: Mild cardiomegaly."),
        make_row(patient_id="p2", study_id="s2", source="phantom", images=[{"path": "b.dcm"}],
                 report="INDICATION: Rule out pneumonia.\nFINDINGS: No pneumothorax.\nIMPRESSION: Normal."),
        make_row(patient_id="p3", study_id="s3", source="phantom", images=[{"path": "c.dcm"}],
                 report="Right lower lobe consolidation."),
    ]
    write_manifest(from_rows(rows), path)
    return path


def test_manifest_prefers_sections_then_report(tmp_path: Path) -> None:
    reports = read_reports(write_small_manifest(tmp_path / "m.parquet"))
    assert [r.id for r in reports] == ["s1", "s2", "s3"]
    assert reports[0].text == "Mild cardiomegaly.\n\nSmall left pleural effusion."
    assert reports[1].text == "No pneumothorax.\n\nNormal."
    assert reports[2].text == "Right lower lobe consolidation."
    whole = read_reports(tmp_path / "m.parquet", focus=False)
    assert whole[1].text.startswith("INDICATION: Rule out pneumonia.")


def test_csv_columns(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text('patientid,clinical_notes\n7,"Possible pneumonia, no effusion"\n8,Clear lungs\n')
    reports = read_reports(path, id_column="patientid")
    assert [(r.id, r.text) for r in reports] == [("7", "Possible pneumonia, no effusion"), ("8", "Clear lungs")]
    assert [r.id for r in read_reports(path)] == ["1", "2"]
    split = tmp_path / "split.csv"
    split.write_text("study_id,findings,impression\na,Mild cardiomegaly.,No acute disease.\n")
    assert read_reports(split)[0].text == "Mild cardiomegaly.\n\nNo acute disease."
    with pytest.raises(ReportSourceError, match="no text column 'body'"):
        read_reports(path, text_column="body")
    with pytest.raises(ReportSourceError, match="no id column 'pid'"):
        read_reports(path, id_column="pid")
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(ReportSourceError, match="--text-column"):
        read_reports(odd)
    dup = tmp_path / "dup.csv"
    dup.write_text("id,text\n1,a\n1,b\n")
    with pytest.raises(ReportSourceError, match="appears more than once"):
        read_reports(dup)


def test_text_file_paragraphs(tmp_path: Path) -> None:
    path = tmp_path / "reports.txt"
    path.write_text("Mild cardiomegaly.\nNo effusion.\n\n\nINDICATION: fever\nIMPRESSION: pneumonia\n")
    reports = read_reports(path)
    assert [(r.id, r.text) for r in reports] == [("1", "Mild cardiomegaly.\nNo effusion."), ("2", "pneumonia")]


def test_detect_and_errors(tmp_path: Path) -> None:
    for name, kind in [("a.parquet", "manifest"), ("a.csv", "csv"), ("a.tsv", "csv"), ("a.txt", "text"), ("a.tgz", "iu-xray")]:
        (tmp_path / name).write_text("")
        assert detect_source(tmp_path / name) == kind
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(ReportSourceError, match="--source"):
        detect_source(tmp_path / "a.json")
    with pytest.raises(ReportSourceError, match="no such file"):
        read_reports(tmp_path / "absent.csv")
    with pytest.raises(ReportSourceError, match="unknown source"):
        read_reports(tmp_path / "a.csv", source="excel")
    (tmp_path / "bad.parquet").write_bytes(b"nope")
    with pytest.raises(ReportSourceError, match="not a Parquet manifest"):
        read_reports(tmp_path / "bad.parquet")


def test_focus_text() -> None:
    assert focus_text("INDICATION: r/o pneumonia\nFINDINGS: clear\nIMPRESSION: normal") == "clear\n\nnormal"
    assert focus_text("  Possible pneumonia.  ") == "Possible pneumonia."


def test_iu_archive(realdata: Path) -> None:
    reports = read_reports(realdata / "iu_reports" / "NLMCXR_reports.tgz")
    assert len(reports) == 3955 and reports[0].id == "CXR1"
    assert reports[0].text.endswith("Normal chest x-XXXX.")
