"""The PHI policy of ingestion (medvl.data.phi_policy, medvl ingest --phi-policy) on real DICOM files and reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medvl.cli import main
from medvl.data.ingest import ingest, sidecar_paths
from medvl.data.phi_policy import PhiPolicyError, apply_policy
from medvl.io.dicom_writer import write_image, write_series

DEIDENTIFIED = {"PatientIdentityRemoved": "YES", "PatientName": "ANON-0123456789abcdef",
                "PatientID": "ANON-0123456789abcdef"}


def _radiograph(path: Path, study: str, **attributes) -> Path:
    image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096
    return write_image(image, path, attributes={"StudyInstanceUID": study, "ViewPosition": "PA", **attributes})


@pytest.fixture()
def pacs(tmp_path) -> Path:
    """A PACS export: one radiograph with the patient's name and birth date, one de-identified, one CT series
    with names; plus a reports CSV (one report names the radiologist and a date)."""
    root = tmp_path / "pacs"
    _radiograph(root / "a" / "named.dcm", "1.2.3.1", AccessionNumber="ACC1", PatientName="Doe^Jane", PatientID="MRN0042",
                PatientBirthDate="19500101")
    _radiograph(root / "b" / "clean.dcm", "1.2.3.2", **DEIDENTIFIED)
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    write_series(np.zeros((32, 32, 3)), affine, root / "c", study_uid="1.2.3.3", series_uid="1.2.3.3.1",
                 attributes={"AccessionNumber": "ACC3", "PatientName": "Roe^Richard", "PatientID": "MRN0077"})
    reports = tmp_path / "reports.csv"
    pd.DataFrame({"StudyInstanceUID": ["1.2.3.1", "1.2.3.2", "1.2.3.3"],
                  "report": ["FINDINGS: Clear lungs.\nIMPRESSION: Normal.",
                             "FINDINGS: Small effusion. Signed by Dr. Gregory House on 03/14/2021.",
                             "FINDINGS: No acute abnormality."]}).to_csv(reports, index=False)
    return root


def _ingest(pacs: Path, out: Path, policy: str):
    return ingest("dicom-folder", pacs, out, options={"reports": str(pacs.parent / "reports.csv")},
                  progress=False, phi_policy=policy)


def test_warn_names_the_files_fields_and_report_text_and_still_writes(pacs, tmp_path):
    out = tmp_path / "cohort.parquet"
    result = _ingest(pacs, out, "warn")
    lines = {finding.line() for finding in result.phi_findings}
    named = str(pacs / "a" / "named.dcm")
    assert f"{named}: PatientName, PatientID, PatientBirthDate, AccessionNumber" in lines
    assert f"{pacs / 'c'} series 1.2.3.3.1 (3 files): PatientName, PatientID, AccessionNumber" in lines
    assert "study 1.2.3.2 report: NAME, DATE" in lines
    assert not any("clean.dcm" in line for line in lines)  # de-identified: pseudonyms and the flag
    assert len(lines) == len(result.phi_findings) == 4  # the report field above is also in 'findings'
    assert out.is_file() and result.studies == 3
    record = json.loads(sidecar_paths(out)[1].read_text())
    assert record["phi_policy"] == "warn"
    assert {tuple(f["fields"]) for f in record["phi_findings"]} == {tuple(f.fields) for f in result.phi_findings}


def test_refuse_raises_listing_the_sources_and_writes_nothing(pacs, tmp_path):
    out = tmp_path / "cohort.parquet"
    with pytest.raises(PhiPolicyError) as caught:
        _ingest(pacs, out, "refuse")
    assert len(caught.value.findings) == 4
    assert "named.dcm (" not in str(caught.value) and "named.dcm: PatientName" in str(caught.value)
    assert list(tmp_path.glob("cohort*")) == []


def test_off_checks_nothing_and_a_clean_source_passes_refuse(pacs, tmp_path):
    assert _ingest(pacs, tmp_path / "off.parquet", "off").phi_findings == ()
    clean = tmp_path / "clean"
    _radiograph(clean / "x.dcm", "1.2.9", **DEIDENTIFIED)
    result = ingest("dicom-folder", clean, tmp_path / "clean.parquet", progress=False, phi_policy="refuse")
    assert result.studies == 1 and result.phi_findings == ()


def test_unknown_policy_is_refused_before_reading():
    with pytest.raises(ValueError, match="PHI policy 'maybe'"):
        apply_policy("maybe", [], ".")


def test_cli_warns_on_stderr_and_refuse_exits_2_with_one_line(pacs, tmp_path, capsys):
    argv = ["ingest", "dicom-folder", str(pacs), "-o", str(tmp_path / "w.parquet"), "-q",
            "--option", f"reports={pacs.parent / 'reports.csv'}"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: 4 source(s) still carry PHI" in err and "named.dcm: PatientName" in err
    refused = [*argv[:4], str(tmp_path / "r.parquet"), *argv[5:], "--phi-policy", "refuse"]
    proc = subprocess.run([str(Path(sys.executable).with_name("medvl")), *refused], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("medvl ingest")]
    assert len(lines) == 1 and "refused by PHI policy 'refuse'" in lines[0] and "Roe" not in lines[0]
    assert "series 1.2.3.3.1 (3 files): PatientName" in lines[0]
    assert not (tmp_path / "r.parquet").exists()
