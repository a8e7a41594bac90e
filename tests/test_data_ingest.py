"""``medvl ingest``: quarantine, sharding and merging, worker processes, the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medvl.cli import main
from medvl.data.ingest import IngestError, ingest, merge_shards, parse_shard, sidecar_paths
from medvl.data.manifest import read_manifest
from medvl.data.splits import check_patient_splits

MEDVL = str(Path(sys.executable).with_name("medvl"))
COLUMNS = ("patientid", "offset", "sex", "age", "finding", "view", "date", "url", "clinical_notes", "image",
           "lung_mask", "license")


def jpeg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 24), value, dtype=np.uint8)).save(path, format="JPEG")


@pytest.fixture()
def covid_tree(tmp_path) -> Path:
    """A covid-chestxray-dataset layout with every kind of trouble ingestion must survive."""
    root = tmp_path / "cxr"
    rows = []

    def add(patient, image, *, finding="COVID-19", view="PA", offset="0", notes=None, mask="", on_disk=True):
        if on_disk:
            jpeg(root / "images" / image, 10 + len(rows))
        rows.append({"patientid": patient, "offset": offset, "sex": "F", "age": "50", "finding": finding,
                     "view": view, "date": "2020", "url": f"https://example.org/{patient}",
                     "clinical_notes": notes or f"Notes of {patient} day {offset}.", "image": f"images/{image}",
                     "lung_mask": mask, "license": "CC BY"})

    add("1", "p1-pa.jpg", mask="lung_masks/p1-pa.png")
    add("1", "p1-l.jpg", view="L")
    add("1", "p1-day5.jpg", offset="5")
    add("2", "p2-missing.jpg", on_disk=False)
    add("3", "p3-corrupt.jpg")
    (root / "images" / "p3-corrupt.jpg").write_bytes(b"this is not a JPEG")
    add("4", "p4.jpg", finding="Martian flu")
    for patient in range(5, 25):
        add(str(patient), f"p{patient}.jpg", finding=("todo", "Streptococcus", "No Finding", "COVID-19")[patient % 4])
    add("6", "p6-b.jpg", offset="9", mask="lung_masks/p6-b.png")  # the mask file is missing
    add("99", "p5.jpg")  # upstream lists p5.jpg again under another patient id
    (root / "lung_masks").mkdir()
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(root / "lung_masks" / "p1-pa.png")
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(root / "metadata.csv", index=False)
    return root


def test_unreadable_input_is_quarantined_and_ingestion_goes_on(covid_tree, tmp_path):
    result = ingest("covid-cxr", covid_tree, tmp_path / "m.parquet", progress=False)
    df = read_manifest(result.manifest)
    quarantine = pd.read_csv(result.quarantine, dtype=str, keep_default_na=False)
    assert result.quarantine == tmp_path / "m.quarantine.csv" and result.record == tmp_path / "m.ingest.json"
    by_name = {Path(p).name: (reason, kind) for p, reason, kind in
               zip(quarantine["path"], quarantine["reason"], quarantine["error_type"], strict=True)}
    assert by_name["p2-missing.jpg"] == ("file not found", "MissingFileError")
    assert by_name["p3-corrupt.jpg"][1] == "NotAnImageError" and "JPEG signature" in by_name["p3-corrupt.jpg"][0]
    assert by_name["p6-b.png"][1] == "MissingFileError"
    assert by_name["p5.jpg"][1] == "DuplicateImage" and "patient 5" in by_name["p5.jpg"][0]
    unit_error = quarantine[quarantine["unit"] == "4_p4"]
    assert unit_error["error_type"].item() == "ValueError" and "Martian flu" in unit_error["reason"].item()
    assert len(quarantine) == 5
    # what survived
    assert result.studies == len(df) == 23
    assert not ({"2", "3", "4", "99"} & set(df["patient_id"]))
    visit = df.set_index("study_id").loc["1_p1-l"]
    assert [Path(r["path"]).name for r in visit["images"]] == ["p1-l.jpg", "p1-pa.jpg"]
    assert Path(visit["images"][1]["mask"]).name == "p1-pa.png" and visit["images"][0]["mask"] == ""
    assert df.set_index("study_id").loc["6_p6-b", "images"][0]["mask"] == ""  # image kept without its mask
    check_patient_splits(df)
    record = json.loads(result.record.read_text())
    assert record["hash"] == result.hash == df.attrs["hash"]
    assert (record["units"], record["studies"], record["quarantined"]) == (27, 23, 5)


def test_shards_merge_into_the_unsharded_manifest(covid_tree, tmp_path):
    whole = ingest("covid-cxr", covid_tree, tmp_path / "whole.parquet", progress=False)
    shards = [ingest("covid-cxr", covid_tree, tmp_path / f"part{i}.parquet", shard=(i, 3), progress=False)
              for i in range(3)]
    assert sum(s.units for s in shards) == whole.units
    assert all(set(read_manifest(s.manifest)["split"]) <= {""} for s in shards)  # drawn at merge time
    merged = merge_shards([s.manifest for s in reversed(shards)], tmp_path / "merged.parquet")
    assert merged.hash == whole.hash
    a, b = read_manifest(whole.manifest), read_manifest(merged.manifest)
    pd.testing.assert_frame_equal(a.sort_values("study_id").reset_index(drop=True),
                                  b.sort_values("study_id").reset_index(drop=True))
    qa = pd.read_csv(whole.quarantine).sort_values(["unit", "path"]).reset_index(drop=True)
    qb = pd.read_csv(merged.quarantine).sort_values(["unit", "path"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(qa, qb)


def test_worker_processes_give_the_same_manifest(covid_tree, tmp_path):
    serial = ingest("covid-cxr", covid_tree, tmp_path / "a.parquet", progress=False)
    parallel = ingest("covid-cxr", covid_tree, tmp_path / "b.parquet", workers=2, progress=False)
    assert parallel.hash == serial.hash and parallel.quarantined == serial.quarantined


def test_merge_refuses_missing_repeated_or_foreign_shards(covid_tree, tmp_path):
    parts = [ingest("covid-cxr", covid_tree, tmp_path / f"p{i}.parquet", shard=(i, 2), progress=False).manifest
             for i in range(2)]
    with pytest.raises(IngestError, match=r"missing \[1\]"):
        merge_shards([parts[0]], tmp_path / "m.parquet")
    with pytest.raises(IngestError, match=r"got \[0, 0\]"):
        merge_shards([parts[0], parts[0]], tmp_path / "m.parquet")
    other = ingest("covid-cxr", covid_tree, tmp_path / "o.parquet", shard=(1, 2), salt="other", progress=False)
    with pytest.raises(IngestError, match="salt 'other' differs"):
        merge_shards([parts[0], other.manifest], tmp_path / "m.parquet")
    sidecar_paths(parts[1])[1].unlink()
    with pytest.raises(IngestError, match="no ingest record"):
        merge_shards(parts, tmp_path / "m.parquet")


def test_nothing_readable_is_an_error_with_the_report_written(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    pd.DataFrame([{c: "" for c in COLUMNS} | {"patientid": "1", "image": "images/none.jpg"}]).to_csv(
        root / "metadata.csv", index=False)
    with pytest.raises(IngestError, match="no studies found"):
        ingest("covid-cxr", root, tmp_path / "m.parquet", progress=False)
    assert len(pd.read_csv(tmp_path / "m.quarantine.csv")) == 1
    assert not (tmp_path / "m.parquet").exists()


def test_parse_shard():
    assert parse_shard("3/16") == (3, 16)
    for bad in ("16/16", "-1/4", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_cli_ingest_shard_and_merge(covid_tree, tmp_path, capsys):
    for i in range(2):
        assert main(["ingest", "covid-cxr", str(covid_tree), "-o", str(tmp_path / f"s{i}.parquet"),
                     "--shard", f"{i}/2", "-q"]) == 0
    assert main(["ingest", "--merge", str(tmp_path / "s0.parquet"), str(tmp_path / "s1.parquet"),
                 "-o", str(tmp_path / "all.parquet")]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith(f"wrote {tmp_path / 'all.parquet'}: 23 studies from 27 units, 5 quarantined")
    direct = ingest("covid-cxr", covid_tree, tmp_path / "direct.parquet", progress=False)
    assert read_manifest(tmp_path / "all.parquet").attrs["hash"] == direct.hash


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest", "nope", ".", "-o", "x.parquet"], "unknown source 'nope'"),
        (["ingest", "covid-cxr", "/no/such/dir", "-o", "x.parquet"], "/no/such/dir: no such file or folder"),
        (["ingest", "covid-cxr", "."], "missing -o/--out"),
        (["ingest", "covid-cxr", ".", "-o", "x.parquet", "--split", "0.5,0.5"], "split fractions"),
        (["ingest", "covid-cxr", ".", "-o", "x.parquet", "--option", "novalue"], "expected KEY=VALUE"),
        (["ingest", "--merge", "a.parquet", "-o", "x.parquet"], "no ingest record"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("medvl ingest: ")


def test_cli_help_in_a_subprocess_and_list(capsys):
    help_text = subprocess.run([MEDVL, "ingest", "--help"], capture_output=True, text=True, check=True).stdout
    assert "--shard" in help_text and "quarantine" in help_text and "--merge" in help_text
    assert main(["ingest", "--list"]) == 0
    listing = capsys.readouterr().out
    assert {line.split()[0] for line in listing.splitlines()} >= {"covid-cxr", "mimic-cxr", "chexpert", "ct-rate",
                                                                  "iu-xray"}
