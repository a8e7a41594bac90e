"""``medvl deid IN OUT`` over a folder tree: mirroring, links between series, quarantine, report, resume
(including a real subprocess killed mid-run), parallel workers and bad invocations."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from governance.audit import verify
from governance.deid.errors import DeidConfigError
from governance.deid.keys import KeyedHasher
from governance.deid.tree import deidentify_tree
from medvl.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # the deliberately broken file

KEY = b"tree-test-key-0123456789"
CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
US_CLASS = "1.2.840.10008.5.1.4.1.1.6.1"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"


REPORT_TEXT = "Patient John Smith, MRN 1234567, seen on 03/04/2020. Findings: no pneumothorax.\n"
REPORT_CSV = 'study,report\nS1,"Patient John Smith, MRN 1234567. Impression: normal, no effusion."\nS2,No acute findings.\n'


def write_image(path: Path, *, patient: str, study: str, series: str, frame_of_reference: str, index: int,
                study_date: str, modality: str = "CT", sop_class: str = CT_CLASS, burned_in: str | None = None,
                size: int = 16) -> Dataset:
    """A small but complete image file, written by pydicom."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = f"Name^{patient}"
    ds.PatientID = patient
    ds.PatientBirthDate = "19600101"
    ds.InstitutionName = "St. Elsewhere"
    ds.AccessionNumber = f"ACC-{study[-6:]}"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = frame_of_reference
    ds.StudyDate = ds.SeriesDate = study_date
    ds.StudyTime = "101010"
    ds.InstanceNumber = index
    ds.ImagePositionPatient = [0.0, 0.0, 2.5 * index]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 2.5
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(size * size, dtype=np.uint16) * (index + 1) % 4096).tobytes()
    ds.add_new(0x00290010, "LO", "VENDOR PRIVATE")
    ds.add_new(0x00291001, "LO", f"secret of {patient}")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return ds


def make_tree(root: Path) -> dict[str, Dataset]:
    """Two patients; patient P1 has two studies, the first with two series sharing a frame of reference."""
    written = {}
    s1, s2, s3 = generate_uid(), generate_uid(), generate_uid()
    layout = [
        ("P1/study1/series1", "P1", s1, "20200101"),
        ("P1/study1/series2", "P1", s1, "20200101"),
        ("P1/study2/series1", "P1", s2, "20200401"),
        ("P2/study1/series1", "P2", s3, "20200101"),
    ]
    frames = {s1: generate_uid(), s2: generate_uid(), s3: generate_uid()}
    for folder, patient, study, date in layout:
        series = generate_uid()
        for index in range(3):
            rel = f"{folder}/{index}.dcm"
            written[rel] = write_image(root / rel, patient=patient, study=study, series=series,
                                       frame_of_reference=frames[study], index=index, study_date=date)
    written["P2/us.dcm"] = write_image(root / "P2/us.dcm", patient="P2", study=s3, series=generate_uid(),
                                       frame_of_reference=frames[s3], index=0, study_date="20200101",
                                       modality="US", sop_class=US_CLASS)
    written["P2/capture.dcm"] = write_image(root / "P2/capture.dcm", patient="P2", study=s3, series=generate_uid(),
                                            frame_of_reference=frames[s3], index=0, study_date="20200101",
                                            modality="OT", sop_class=SC_CLASS, burned_in="YES")
    (root / "reports").mkdir()
    (root / "reports/report.txt").write_text(REPORT_TEXT, encoding="utf-8")
    (root / "reports/reports.csv").write_text(REPORT_CSV, encoding="utf-8")
    (root / "reports/latin1.txt").write_bytes("Patient Müller".encode("latin-1"))
    (root / "notes.json").write_text('{"patient": "P1"}')
    (root / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x00garbage")
    return written


@pytest.fixture(scope="module")
def key_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("key") / "deid.key"
    path.write_bytes(KEY + b"\n")
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict[str, Dataset]]:
    root = tmp_path_factory.mktemp("in")
    return root, make_tree(root)


@pytest.fixture(scope="module")
def deid_run(tree, key_file, tmp_path_factory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("out") / "deid"
    log = out.parent / "audit.jsonl"
    status = main(["deid", str(tree[0]), str(out), "--key-file", str(key_file), "--no-progress",
                   "--audit-log", str(log)])
    return out, status, str(log)


def _report(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "deid_report.csv", newline="") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def test_report_and_exit_status(deid_run, tree):
    out, status, _ = deid_run
    assert status == 1  # broken.dcm and latin1.txt failed
    rows = _report(out)
    assert set(rows) == set(tree[1]) | {"notes.json", "broken.dcm", "reports/report.txt", "reports/reports.csv",
                                        "reports/latin1.txt"}
    assert rows["reports/latin1.txt"]["status"] == "failed" and "UTF-8" in rows["reports/latin1.txt"]["reason"]
    assert rows["broken.dcm"]["status"] == "failed" and rows["broken.dcm"]["output"] == ""
    assert rows["notes.json"]["status"] == "skipped" and not (out / "notes.json").exists()
    assert rows["P2/us.dcm"]["status"] == "quarantined" and "US" in rows["P2/us.dcm"]["reason"]
    assert rows["P2/capture.dcm"]["status"] == "quarantined" and "YES" in rows["P2/capture.dcm"]["reason"]
    assert (out / "quarantine/P2/us.dcm").is_file() and not (out / "P2/us.dcm").exists()
    row = rows["P1/study1/series1/0.dcm"]
    assert row["status"] == "deidentified" and row["output"] == "P1/study1/series1/0.dcm"
    assert int(row["private_removed"]) == 2 and int(row["uids_remapped"]) == 4 and int(row["pseudonymised"]) == 2
    summary = json.loads((out / "deid_report.json").read_text())
    assert summary["statuses"] == {"deidentified": 12, "quarantined": 2, "text-masked": 2, "skipped": 1, "failed": 2}
    assert summary["totals"]["private_removed"] == 28
    assert not list(out.rglob("*.partial"))


def test_outputs_keep_links_and_drop_identifiers(deid_run, tree):
    out, _, _ = deid_run
    hasher = KeyedHasher(KEY)
    new_series: dict[str, set[str]] = defaultdict(set)
    for rel, original in tree[1].items():
        target = out / ("quarantine/" + rel if rel.startswith("P2/") and "series" not in rel else rel)
        ds = pydicom.dcmread(target)
        assert ds.StudyInstanceUID == hasher.uid(original.StudyInstanceUID)
        assert ds.FrameOfReferenceUID == hasher.uid(original.FrameOfReferenceUID)
        assert ds.SOPInstanceUID == hasher.uid(original.SOPInstanceUID) == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.PixelData == original.PixelData and ds.ImagePositionPatient == original.ImagePositionPatient
        assert ds.PatientID == hasher.pseudonym(f"id:|{original.PatientID}") and "PatientBirthDate" in ds
        assert not ds.PatientBirthDate and ds.InstitutionName == "ANONYMIZED" and not ds.AccessionNumber
        assert not [e for e in ds if e.tag.is_private]
        new_series[ds.SeriesInstanceUID].add(rel.rsplit("/", 1)[0])
    assert all(len(folders) == 1 for folders in new_series.values()) and len(new_series) == 6
    first = pydicom.dcmread(out / "P1/study1/series1/0.dcm")
    second_study = pydicom.dcmread(out / "P1/study2/series1/0.dcm")
    gap = np.datetime64(f"{second_study.StudyDate[:4]}-{second_study.StudyDate[4:6]}-{second_study.StudyDate[6:]}")
    gap -= np.datetime64(f"{first.StudyDate[:4]}-{first.StudyDate[4:6]}-{first.StudyDate[6:]}")
    assert gap.astype(int) == 91 and first.StudyDate != "20200101"


def test_report_texts_are_masked(deid_run):
    out, _, _ = deid_run
    text = (out / "reports/report.txt").read_text()
    assert "John Smith" not in text and "1234567" not in text and "03/04/2020" not in text
    assert "Findings: no pneumothorax." in text
    with open(out / "reports/reports.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["study", "report"] and rows[2] == ["S2", "No acute findings."]
    assert "John Smith" not in rows[1][1] and "Impression: normal, no effusion." in rows[1][1]
    assert int(_report(out)["reports/reports.csv"]["phi_spans"]) >= 2


def test_audit_entry(deid_run):
    out, _, log = deid_run
    result = verify(log)
    assert result.ok and result.entries == 1
    entry = json.loads(Path(log).read_text())
    assert entry["action"] == "deid.run" and entry["details"]["statuses"]["deidentified"] == 12
    assert entry["details"]["key_fingerprint"] == KeyedHasher(KEY).fingerprint and entry["details"]["output"] == str(out)


def test_rerun_skips_finished_files_and_retries_failed(deid_run, tree, key_file):
    out, _, _ = deid_run
    ledger = out / "deid_ledger.jsonl"
    lines_before = ledger.read_text().count("\n")
    stamp = (out / "P1/study1/series1/0.dcm").stat().st_mtime_ns
    assert main(["deid", str(tree[0]), str(out), "--key-file", str(key_file), "--no-progress"]) == 1
    assert ledger.read_text().count("\n") == lines_before + 2  # only the two failed files again
    assert (out / "P1/study1/series1/0.dcm").stat().st_mtime_ns == stamp


def test_other_key_or_options_are_refused(deid_run, tree, tmp_path, capsys):
    out, _, _ = deid_run
    other = tmp_path / "other.key"
    other.write_text("another-secret-key-123456")
    assert main(["deid", str(tree[0]), str(out), "--key-file", str(other), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "key_fingerprint" in err and err.count("\n") == 1
    with pytest.raises(DeidConfigError, match="allow_burned_in"):
        deidentify_tree(tree[0], out, KEY, allow_burned_in=True, progress=False)


def test_allow_burned_in(tree, tmp_path):
    summary = deidentify_tree(tree[0], tmp_path / "out", KEY, allow_burned_in=True, progress=False)
    assert summary.statuses["quarantined"] == 0 and summary.statuses["deidentified"] == 14
    rows = _report(tmp_path / "out")
    assert rows["P2/us.dcm"]["reason"].startswith("burned-in text allowed")
    assert (tmp_path / "out/P2/us.dcm").is_file()


def test_parallel_workers_write_identical_files(tree, deid_run, tmp_path):
    out, _, _ = deid_run
    parallel = tmp_path / "parallel"
    summary = deidentify_tree(tree[0], parallel, KEY, workers=2, progress=False)
    assert summary.statuses["deidentified"] == 12
    for path in out.rglob("*.dcm"):
        assert (parallel / path.relative_to(out)).read_bytes() == path.read_bytes()


def test_bad_invocations(tree, key_file, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MEDVL_DEID_KEY", raising=False)
    monkeypatch.delenv("MEDVL_DEID_KEY_FILE", raising=False)
    cases = [
        ([str(tmp_path / "absent"), str(tmp_path / "o1"), "--key-file", str(key_file)], "input folder not found"),
        ([str(tree[0]), str(tree[0] / "out"), "--key-file", str(key_file)], "outside the input folder"),
        ([str(tree[0]), str(tmp_path / "o2")], "no de-identification key"),
        ([str(tree[0]), str(tmp_path / "o3"), "--key-file", str(key_file), "--workers", "0"], "at least 1"),
    ]
    for args, message in cases:
        assert main(["deid", *args, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tree[0] / "out").exists()


def test_reserved_names_are_refused(tmp_path):
    root = tmp_path / "in"
    write_image(root / "quarantine/a.dcm", patient="P", study=generate_uid(), series=generate_uid(),
                frame_of_reference=generate_uid(), index=0, study_date="20200101")
    summary = deidentify_tree(root, tmp_path / "out", KEY, progress=False)
    assert summary.failed == 1 and "reserved" in _report(tmp_path / "out")["quarantine/a.dcm"]["reason"]


def _ledger_entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()[1:]] if path.exists() else []


DEID_SCRIPT = """
import argparse, sys
from governance.cli import deid
parser = argparse.ArgumentParser()
deid.add_arguments(parser)
sys.exit(deid.run(parser.parse_args()))
"""  # the deid command alone: starts faster than the whole medvl CLI, which imports every command


def test_killed_run_completes_on_rerun(tmp_path, key_file):
    root = tmp_path / "in"
    for index in range(150):
        write_image(root / f"series{index % 3}/{index:03d}.dcm", patient="P1", study="1.2.3", series=f"1.2.3.{index % 3}",
                    frame_of_reference="1.2.3.9", index=index, study_date="20200101", size=8)
    out = tmp_path / "out"
    command = [sys.executable, "-c", DEID_SCRIPT, str(root), str(out), "--key-file", str(key_file), "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if len(_ledger_entries(out / "deid_ledger.jsonl")) >= 20:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait(60)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    finished = len(_ledger_entries(out / "deid_ledger.jsonl"))
    assert 20 <= finished < 150
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "150 files: 150 deidentified" in rerun.stdout
    entries = _ledger_entries(out / "deid_ledger.jsonl")
    assert sorted(e["file"] for e in entries) == sorted(p.relative_to(root).as_posix() for p in root.rglob("*.dcm"))
    assert not list(out.rglob("*.partial"))
    reference = tmp_path / "reference"
    deidentify_tree(root, reference, KEY, progress=False)
    for path in reference.rglob("*.dcm"):
        assert (out / path.relative_to(reference)).read_bytes() == path.read_bytes()
