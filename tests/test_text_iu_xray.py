"""IU X-ray (Open-i) report reader: synthetic XML written here, and the real archive when present."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from medvl.text.errors import ReportSourceError
from medvl.text.iu_xray import parse_iu_xml, read_iu_reports

XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
  <uId id="CXR{n}"/>
  <MedlineCitation><Article><Abstract>
    <AbstractText Label="COMPARISON">None.</AbstractText>
    <AbstractText Label="INDICATION">Cough</AbstractText>
    <AbstractText Label="FINDINGS">Mild   cardiomegaly.
      No effusion.</AbstractText>
    <AbstractText Label="IMPRESSION"/>
  </Abstract></Article></MedlineCitation>
  <MeSH><major>Cardiomegaly/mild</major><automatic>cardiomegaly</automatic></MeSH>
  <parentImage id="CXR{n}_1_IM-0001-3001"><figureId>F1</figureId></parentImage>
  <parentImage id="CXR{n}_1_IM-0001-4001"><figureId>F2</figureId></parentImage>
</eCitation>
"""


def _write_archive(path: Path, numbers: list[int]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for n in numbers:
            data = XML.format(n=n).encode()
            info = tarfile.TarInfo(f"ecgen-radiology/{n}.xml")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_parse_fields() -> None:
    report = parse_iu_xml(XML.format(n=7), "7.xml")
    assert report.report_id == "CXR7"
    assert report.findings == "Mild cardiomegaly. No effusion."
    assert report.impression == "" and report.comparison == "None." and report.indication == "Cough"
    assert report.mesh_major == ["Cardiomegaly/mild"]
    assert report.mesh_minor == [] and report.mesh_automatic == ["cardiomegaly"]
    assert report.image_ids == ["CXR7_1_IM-0001-3001", "CXR7_1_IM-0001-4001"]
    assert report.findings_impression == "Mild cardiomegaly. No effusion."
    assert report.text.startswith("COMPARISON: None.") and "FINDINGS: Mild cardiomegaly." in report.text


def test_archive_and_folder_sorted_by_number(tmp_path: Path) -> None:
    archive = _write_archive(tmp_path / "reports.tgz", [10, 2, 1])
    assert [r.report_id for r in read_iu_reports(archive)] == ["CXR1", "CXR2", "CXR10"]
    folder = tmp_path / "extracted"
    folder.mkdir()
    for n in (3, 20):
        (folder / f"{n}.xml").write_text(XML.format(n=n))
    assert [r.report_id for r in read_iu_reports(folder)] == ["CXR3", "CXR20"]
    assert read_iu_reports(folder / "3.xml")[0].report_id == "CXR3"


@pytest.mark.parametrize(
    ("content", "reason"),
    [("<not xml", "not an XML document"), ("<eCitation><title>x</title></eCitation>", "no <uId")],
)
def test_malformed_report_names_file(tmp_path: Path, content: str, reason: str) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text(content)
    with pytest.raises(ReportSourceError, match=reason) as info:
        read_iu_reports(bad)
    assert info.value.path.endswith("bad.xml")


def test_missing_empty_and_non_archive(tmp_path: Path) -> None:
    with pytest.raises(ReportSourceError, match="no such file"):
        read_iu_reports(tmp_path / "absent.tgz")
    with pytest.raises(ReportSourceError, match="no report XML"):
        read_iu_reports(tmp_path)
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not a tar archive at all")
    with pytest.raises(ReportSourceError, match="not a readable tar archive"):
        read_iu_reports(junk)


def test_real_archive(realdata: Path) -> None:
    reports = read_iu_reports(realdata / "iu_reports" / "NLMCXR_reports.tgz")
    assert len(reports) == 3955
    assert len({r.report_id for r in reports}) == 3955
    first = reports[0]
    assert first.report_id == "CXR1" and first.mesh_major == ["normal"]
    assert first.findings.startswith("The cardiac silhouette and mediastinum size are within normal limits.")
    assert first.image_ids == ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]
    assert sum(bool(r.image_ids) for r in reports) > 3800
