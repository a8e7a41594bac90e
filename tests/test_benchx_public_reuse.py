"""chexpert, chexpert-5x200, mimic-cxr and iu-xray: loaders built on medvl's adapters, on tiny upstream trees."""

from __future__ import annotations

import gzip
import json
import tarfile

import pandas as pd
import pytest

from benchx.split_rules import COMPETITION
from medvl.data.adapters.common import CHEXPERT_LABELS
from tests.test_benchx_public_trees import check_card, load_public, write_jpeg, write_png

CHEXPERT_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS]


def chexpert_rows(parent, split, patient, labels, views=("frontal", "lateral"), sex="Female", age="60"):
    rows = []
    for number, view in enumerate(views, start=1):
        path = f"CheXpert-v1.0-small/{split}/{patient}/study1/view{number}_{view}.jpg"
        write_jpeg(parent / path)
        rows.append({"Path": path, "Sex": sex, "Age": age, "Frontal/Lateral": view.capitalize(),
                     "AP/PA": "AP" if view == "frontal" else "", **dict.fromkeys(CHEXPERT_LABELS, ""), **labels})
    return rows


@pytest.fixture()
def chexpert_root(tmp_path):
    train, number = [], 0
    for c in COMPETITION:
        for k in range(4):  # alone-positive: the 5x200 candidates (blank elsewhere counts as negative)
            number += 1
            others = {} if k % 2 else dict.fromkeys(set(COMPETITION) - {c}, "0.0")
            train += chexpert_rows(tmp_path, "train", f"patient{number:05d}", {c: "1.0", **others})
        for extra in ({"Support Devices": "1.0"}, {"Pneumonia": "-1.0"}):  # not alone: never drawn
            number += 1
            train += chexpert_rows(tmp_path, "train", f"patient{number:05d}", {c: "1.0", **extra})
    number += 1
    train += chexpert_rows(tmp_path, "train", f"patient{number:05d}",
                           {"Atelectasis": "-1.0", "Cardiomegaly": "-1.0", "Edema": "1.0"}, sex="Male", age="71")
    root = tmp_path / "CheXpert-v1.0-small"
    pd.DataFrame(train, columns=CHEXPERT_HEADER).to_csv(root / "train.csv", index=False)
    valid = []
    for k in range(5):
        valid += chexpert_rows(tmp_path, "valid", f"patient{64541 + k:05d}",
                               {**dict.fromkeys(CHEXPERT_LABELS, "0.0"), "Edema": "1.0"}, views=("frontal",))
    pd.DataFrame(valid, columns=CHEXPERT_HEADER).to_csv(root / "valid.csv", index=False)
    return root


def test_chexpert_competition_split_and_labels(chexpert_root):
    df = load_public("chexpert", chexpert_root, val_fraction=0.3).set_index("study_id")
    assert len(df) == 36 and set(df["split"]) == {"train", "val", "test"}
    assert set(df.index[df["split"] == "test"]) == {f"patient{64541 + k}/study1" for k in range(5)}
    assert df.groupby("patient_id")["split"].nunique().max() == 1
    uncertain = df.loc["patient00031/study1"]
    assert json.loads(uncertain["labels"]) == {"Atelectasis": 1, "Cardiomegaly": 0, "Consolidation": 0, "Edema": 1,
                                               "Pleural Effusion": 0}
    assert uncertain["sex"] == "M" and uncertain["age"] == 71 and len(uncertain["images"]) == 2
    kept = load_public("chexpert", chexpert_root, val_fraction=0.3, uncertain="keep").set_index("study_id")
    assert json.loads(kept.loc["patient00031/study1", "labels"]) == {"Atelectasis": -1, "Cardiomegaly": -1, "Edema": 1}
    assert list(kept["split"]) == list(df["split"])
    with pytest.raises(ValueError, match="uncertain="):
        load_public("chexpert", chexpert_root, uncertain="ones")


def test_chexpert_5x200_draw(chexpert_root):
    df = load_public("chexpert-5x200", chexpert_root, n=3, seed=1)
    assert len(df) == 15 and set(df["split"]) == {"test"}
    for name in COMPETITION:
        chosen = df[df["labels"].map(lambda t, n=name: json.loads(t)[n] == 1)]
        assert len(chosen) == 3 and chosen["labels"].map(lambda t: sum(json.loads(t).values())).eq(1).all()
    assert df["study_id"].str.endswith("view1_frontal.jpg").all()
    numbers = {int(p[7:12]) for p in df["patient_id"]}
    assert all((n - 1) % 6 < 4 for n in numbers)  # only the alone-positive studies are drawn
    assert load_public("chexpert-5x200", chexpert_root, n=3, seed=1)["study_id"].tolist() == df["study_id"].tolist()
    with pytest.raises(ValueError, match="only 4 frontal images are positive for Atelectasis alone"):
        load_public("chexpert-5x200", chexpert_root, n=5)


def test_chexpert_missing(chexpert_root):
    next(chexpert_root.glob("train/patient00003/study1/view1_frontal.jpg")).unlink()
    with pytest.raises(FileNotFoundError, match="patient00003/study1/view1_frontal.jpg"):
        load_public("chexpert", chexpert_root)
    with pytest.raises(FileNotFoundError, match="CheXpert"):
        load_public("chexpert-5x200", chexpert_root.parent / "absent")


def write_csv_gz(path, rows):
    with gzip.open(path, "wt") as handle:
        pd.DataFrame(rows).to_csv(handle, index=False)


@pytest.fixture()
def mimic_root(tmp_path):
    root = tmp_path / "mimic-cxr-jpg"
    split, metadata, labels = [], [], []
    for k in range(6):
        subject, study = f"1000{k:04d}", f"5000{k:04d}"
        name = ("train", "validate", "test")[k % 3]
        for view in ("PA", "LATERAL"):
            dicom_id = f"{k:08x}-{view.lower()}"
            split.append({"dicom_id": dicom_id, "study_id": study, "subject_id": subject, "split": name})
            metadata.append({"dicom_id": dicom_id, "subject_id": subject, "study_id": study, "ViewPosition": view,
                             "Rows": 16, "Columns": 16})
            write_jpeg(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom_id}.jpg")
        labels.append({"subject_id": subject, "study_id": study, **dict.fromkeys(CHEXPERT_LABELS, ""),
                       "Edema": "1.0" if k % 2 else "-1.0"})
        (root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt").write_text(
            f"FINAL REPORT\n FINDINGS: Finding {k}.\n\n IMPRESSION: Impression {k}.\n")
    write_csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", split)
    write_csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", metadata)
    write_csv_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", labels)
    return root


def test_mimic_official_split_reports_labels(mimic_root):
    df = load_public("mimic-cxr", mimic_root).set_index("study_id")
    assert df["split"].to_dict() == {f"5000{k:04d}": ("train", "val", "test")[k % 3] for k in range(6)}
    first = df.loc["50000001"]
    assert first["findings"] == "Finding 1." and first["impression"] == "Impression 1."
    assert json.loads(first["labels"]) == {"Edema": 1} and json.loads(df.loc["50000000", "labels"]) == {"Edema": -1}
    assert [ref["view"] for ref in first["images"]] == ["LATERAL", "PA"] and first["view"] == "PA"


def test_mimic_missing_report_or_image(mimic_root):
    (mimic_root / "files" / "p10" / "p10000002" / "s50000002.txt").unlink()
    with pytest.raises(FileNotFoundError, match="s50000002.txt"):
        load_public("mimic-cxr", mimic_root)
    (mimic_root / "mimic-cxr-2.0.0-chexpert.csv.gz").unlink()
    with pytest.raises(FileNotFoundError, match="chexpert.csv.gz"):
        load_public("mimic-cxr", mimic_root)


IU_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation><uId id="CXR{n}"/><MedlineCitation><Article><Abstract>
<AbstractText Label="COMPARISON">None.</AbstractText>
<AbstractText Label="INDICATION">Cough</AbstractText>
<AbstractText Label="FINDINGS">{findings}</AbstractText>
<AbstractText Label="IMPRESSION">{impression}</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH><major>{mesh}</major></MeSH>
<parentImage id="CXR{n}_IM-{n:04d}-1001"><figureId>F1</figureId></parentImage>
<parentImage id="CXR{n}_IM-{n:04d}-2001"><figureId>F2</figureId></parentImage>
</eCitation>"""


@pytest.fixture()
def iu_root(tmp_path):
    folder = tmp_path / "iu" / "ecgen-radiology"
    folder.mkdir(parents=True)
    for n in range(1, 21):
        text = ("", "") if n == 20 else (f"Findings {n}.", f"Impression {n}.")
        (folder / f"{n}.xml").write_text(IU_XML.format(n=n, findings=text[0], impression=text[1],
                                                       mesh="Cardiomegaly/mild" if n % 2 else "normal"))
        for image in (1001, 2001):
            write_png(tmp_path / "iu" / "NLMCXR_png" / f"CXR{n}_IM-{n:04d}-{image}.png")
    archive = tmp_path / "iu" / "NLMCXR_reports.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="ecgen-radiology")
    return archive


def test_iu_hashed_split_and_images(iu_root):
    df = load_public("iu-xray", iu_root).set_index("study_id")
    assert len(df) == 19 and "CXR20" not in df.index  # no text: left out
    assert df["images"].map(len).eq(2).all() and set(df["split"]) <= {"train", "val", "test"}
    assert json.loads(df.loc["CXR1", "labels"]) == {"Cardiomegaly": 1}
    assert json.loads(df.loc["CXR2", "labels"]) == {"No Finding": 1}
    assert load_public("iu-xray", iu_root)["split"].tolist() == df["split"].tolist()


def test_iu_r2gen_split(iu_root, tmp_path):
    entries = {s: [{"id": f"CXR{n}_IM-{n:04d}", "report": "", "image_path": [], "split": s} for n in ns]
               for s, ns in (("train", range(1, 11)), ("val", (11, 12)), ("test", (13, 14, 15)))}
    annotation = tmp_path / "annotation.json"
    annotation.write_text(json.dumps(entries))
    df = load_public("iu-xray", iu_root, annotation=annotation).set_index("study_id")
    assert len(df) == 15 and df.loc["CXR12", "split"] == "val" and df.loc["CXR15", "split"] == "test"
    entries["test"].append({"id": "CXR99_IM-0099", "report": "", "image_path": [], "split": "test"})
    annotation.write_text(json.dumps(entries))
    with pytest.raises(ValueError, match="CXR99"):
        load_public("iu-xray", iu_root, annotation=annotation)


def test_iu_missing(iu_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="annotation.json"):
        load_public("iu-xray", iu_root, annotation=tmp_path / "annotation.json")
    (iu_root.parent / "NLMCXR_png" / "CXR3_IM-0003-2001.png").unlink()
    with pytest.raises(FileNotFoundError, match="CXR3_IM-0003-2001.png"):
        load_public("iu-xray", iu_root)


def test_iu_real_reports(realdata):
    df = load_public("iu-xray", realdata / "iu_reports" / "NLMCXR_reports.tgz")
    assert len(df) > 3800 and df["report"].str.len().gt(0).all() and df["images"].map(len).eq(0).all()
    assert {"train", "val", "test"} == set(df["split"])
    assert 0.15 < (df["split"] == "test").mean() < 0.25


def test_cards():
    check_card("chexpert", COMPETITION)
    check_card("chexpert-5x200", COMPETITION)
    check_card("mimic-cxr", CHEXPERT_LABELS)
    check_card("iu-xray")
