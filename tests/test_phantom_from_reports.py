"""Phantom radiographs rendered from real reports: what a sentence says becomes the finding drawn."""

import json

import pytest

from medvl.cli import main
from medvl.data.phantom import read_index
from medvl.data.phantom.from_reports import report_findings
from medvl.text.labeller import Labeller


@pytest.fixture(scope="module")
def labeller() -> Labeller:
    return Labeller()


def _by_name(text, labeller):
    findings, _ = report_findings(text, labeller)
    return {f.name: f for f in findings}


def test_side_severity_region_and_size_come_from_the_stating_sentence(labeller):
    found = _by_name("Small left pleural effusion. 1.5 cm nodule in the right upper lobe. Heart size is normal. "
                     "No pneumothorax.", labeller)  # fmt: skip
    assert set(found) == {"Pleural Effusion", "Lung Lesion"}
    assert (found["Pleural Effusion"].side, found["Pleural Effusion"].severity) == ("left", "mild")
    lesion = found["Lung Lesion"]
    assert (lesion.side, lesion.region, lesion.size_cm) == ("right", "upper", 1.5)


def test_bilateral_effusions_pneumonia_and_uncertain_mentions(labeller):
    found = _by_name("Large bilateral pleural effusions. Right lower lobe pneumonia. Possible cardiomegaly.", labeller)
    assert found["Pleural Effusion"].side == "bilateral" and found["Pleural Effusion"].severity == "severe"
    assert (found["Consolidation"].side, found["Consolidation"].region) == ("right", "lower")
    assert found["Cardiomegaly"].severity == "mild"  # an uncertain mention is drawn subtle


def test_a_normal_report_plants_nothing(labeller):
    assert _by_name("The lungs are clear. No pleural effusion or pneumothorax. Normal heart size.", labeller) == {}


def test_cohort_from_real_reports_pairs_each_image_with_its_report(realdata, tmp_path, capsys):
    archive = realdata / "iu_reports" / "NLMCXR_reports.tgz"
    out = tmp_path / "cohort"
    assert main(["synth", "-o", str(out), "--from-reports", "iu-xray", str(archive), "--n-2d", "60", "--size", "64",
                 "-q"]) == 0  # fmt: skip
    rows = read_index(out)
    assert len(rows) == 60 and {r["phrasing"] for r in rows} == {"train", "eval"}
    for row in rows:
        details, labels = json.loads(row["details"]), json.loads(row["labels"])
        assert all(labels[d["name"]] == 1 for d in details)
        assert labels["No Finding"] == 0 or not details
        assert row["report"].strip() and (out / row["image"]).is_file()
    assert main(["ingest", "phantom", str(out), "-o", str(tmp_path / "m.parquet"), "-q"]) == 0
    assert main(["synth", "-o", str(tmp_path / "x"), "--from-reports", "mimic", str(archive)]) == 2
    assert "choose one of iu-xray" in capsys.readouterr().err
