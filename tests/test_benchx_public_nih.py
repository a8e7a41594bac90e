"""nih-cxr14 loader on a tiny tree in the Kaggle layout (images_00X/images/*.png)."""

from __future__ import annotations

import json

import pytest

from medvl.data.adapters import nih_cxr14
from tests.test_benchx_public_trees import check_card, load_public, write_csv, write_png

HEADER = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
          "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"]
FINDINGS = ["No Finding", "Effusion|Mass", "Cardiomegaly", "Hernia|Nodule|Pneumonia"]


@pytest.fixture()
def nih_root(tmp_path):
    root = tmp_path / "nih"
    rows, train_val, test = [], [], []
    for patient in range(1, 31):
        for follow_up in range(2):
            name = f"{patient:08d}_{follow_up:03d}.png"
            write_png(root / f"images_{patient % 3 + 1:03d}" / "images" / name)
            rows.append([name, FINDINGS[(patient + follow_up) % 4], follow_up, patient, 40 + patient,
                         "M" if patient % 2 else "F", "PA" if follow_up else "AP", 2500, 2048, 0.143, 0.143])
            (test if patient > 24 else train_val).append(name)
    write_csv(root / "Data_Entry_2017_v2020.csv", HEADER, rows)
    (root / "train_val_list.txt").write_text("\n".join(train_val) + "\n")
    (root / "test_list.txt").write_text("\n".join(test) + "\n")
    return root


def test_official_test_list_and_patient_disjoint_val(nih_root):
    df = load_public("nih-cxr14", nih_root, val_fraction=0.3)
    assert len(df) == 60
    test_patients = set(df.loc[df["split"] == "test", "patient_id"])
    assert test_patients == {str(p) for p in range(25, 31)}
    assert set(df["split"]) == {"train", "val", "test"}
    assert df.groupby("patient_id")["split"].nunique().max() == 1
    val = df[df["split"] == "val"]
    assert 0 < val["patient_id"].nunique() < 24
    again = load_public("nih-cxr14", nih_root, val_fraction=0.3)
    assert list(again["split"]) == list(df["split"])


def test_labels_metadata_and_image_paths(nih_root):
    df = load_public("nih-cxr14", nih_root).set_index("study_id")
    row = df.loc["00000001_000.png"]
    labels = json.loads(row["labels"])
    assert set(labels) == set(nih_cxr14.LABELS)
    assert labels["Effusion"] == 1 and labels["Mass"] == 1 and sum(labels.values()) == 2
    assert sum(json.loads(df.loc["00000003_001.png", "labels"]).values()) == 0  # No Finding
    assert row["sex"] == "M" and row["age"] == 41 and row["view"] == "AP"
    assert row["images"][0]["path"].endswith("images_002/images/00000001_000.png")


def test_unknown_finding_is_refused(nih_root):
    text = (nih_root / "Data_Entry_2017_v2020.csv").read_text().replace("Cardiomegaly", "Cardiomegally", 1)
    (nih_root / "Data_Entry_2017_v2020.csv").write_text(text)
    with pytest.raises(ValueError, match="Cardiomegally"):
        load_public("nih-cxr14", nih_root)


@pytest.mark.parametrize("missing", ["test_list.txt", "train_val_list.txt", "Data_Entry_2017_v2020.csv",
                                     "images_002/images/00000001_000.png"])
def test_missing_file_is_named(nih_root, missing):
    (nih_root / missing).unlink()
    expected = "Data_Entry_2017.csv" if missing.startswith("Data_Entry") else missing.split("/")[-1]
    with pytest.raises(FileNotFoundError, match=expected):
        load_public("nih-cxr14", nih_root)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_val_list.txt"):
        load_public("nih-cxr14", tmp_path / "absent")


def test_card():
    check_card("nih-cxr14", nih_cxr14.LABELS)
