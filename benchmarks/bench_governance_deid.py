"""Throughput of ``medvl deid`` and of audit-log appends, each with a baseline measured side by side.

De-identification (files/s, median of --repeats runs into fresh output folders):
  - baseline ``copy``: ``shutil.copyfile`` of every file (the I/O floor);
  - baseline ``pydicom``: ``dcmread`` + ``save_as`` of every file, no de-identification (the parsing floor);
  - ``deid``: :func:`governance.deid.deidentify_tree` with 1 worker, and with ``--workers`` workers.
The input is a synthetic CT series written by pydicom (512x512, 16 bit, with private tags), and, when the shared
real-data bundle is present, its 20-slice JPEG 2000 CT series.

Audit log (entries/s): :meth:`AuditLog.append` (lock, tail check, hash, fsync) against a plain JSON line append
with fsync and no chain.

Run: .venv/bin/python benchmarks/bench_governance_deid.py [--files 100] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from governance.audit import AuditLog
from governance.deid import deidentify_tree
from medvl.realdata import realdata_root

KEY = b"benchmark-key-0123456789"


def synthetic_series(root: Path, count: int) -> None:
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    pixels = np.random.default_rng(0).integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
    for index in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.PatientName, ds.PatientBirthDate = "CT", "12345", "Doe^Jane", "19600101"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20200101"
        ds.InstitutionName, ds.StationName, ds.AccessionNumber = "St. Elsewhere", "CT01", "A123"
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, index], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness, ds.InstanceNumber = [0.7, 0.7], 1.0, index
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        for element in range(0x10, 0x30):
            ds.add_new(0x00290000 | element, "LO", f"private {element}")
        ds.PixelData = pixels
        ds.save_as(root / f"{index:04d}.dcm", enforce_file_format=True)


def copy_tree(src: Path, dst: Path) -> None:
    for path in src.rglob("*"):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def pydicom_tree(src: Path, dst: Path) -> None:
    for path in src.rglob("*"):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            pydicom.dcmread(path).save_as(target)


def median_rate(run: Callable[[Path], None], items: int, repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            run(Path(out) / "out")
            seconds.append(time.perf_counter() - start)
    return items / statistics.median(seconds)


def bench_tree(label: str, src: Path, repeats: int, workers: int) -> list[str]:
    count = sum(1 for p in src.rglob("*") if p.is_file())
    rates = {
        "copy (baseline)": median_rate(lambda out: copy_tree(src, out), count, repeats),
        "pydicom read+write (baseline)": median_rate(lambda out: pydicom_tree(src, out), count, repeats),
        "deid, 1 worker": median_rate(lambda out: deidentify_tree(src, out, KEY, progress=False), count, repeats),
        f"deid, {workers} workers": median_rate(
            lambda out: deidentify_tree(src, out, KEY, workers=workers, progress=False), count, repeats),
    }
    return [f"| {label} ({count} files) | {name} | {rate:.1f} files/s |" for name, rate in rates.items()]


def bench_audit(entries: int, repeats: int) -> list[str]:
    def chained(out: Path) -> None:
        log = AuditLog(out.with_suffix(".jsonl"))
        for i in range(entries):
            log.append("bench", "bench.append", f"subject-{i}", index=i)

    def plain(out: Path) -> None:
        with open(out.with_suffix(".jsonl"), "a", encoding="utf-8") as handle:
            for i in range(entries):
                handle.write(json.dumps({"actor": "bench", "subject": f"subject-{i}", "index": i}) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    return [
        f"| audit log ({entries} entries) | plain JSON line + fsync (baseline) | "
        f"{median_rate(plain, entries, repeats):.0f} entries/s |",
        f"| audit log ({entries} entries) | AuditLog.append (lock, tail check, HMAC, fsync, anchor) | "
        f"{median_rate(chained, entries, repeats):.0f} entries/s |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100, help="synthetic CT slices (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is reported")
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel run (default 2)")
    parser.add_argument("--audit-entries", type=int, default=500, help="audit entries per run (default 500)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"pydicom {pydicom.__version__}; median of {args.repeats} runs")
    print("| input | method | throughput |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "synthetic"
        src.mkdir()
        synthetic_series(src, args.files)
        rows = bench_tree("synthetic CT 512x512 uncompressed", src, args.repeats, args.workers)
    real = realdata_root()
    if real is not None:
        rows += bench_tree("real CT, JPEG 2000", real / "volumes/totalsegmentator/example_ct_dicom", args.repeats,
                           args.workers)
    rows += bench_audit(args.audit_entries, args.repeats)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
