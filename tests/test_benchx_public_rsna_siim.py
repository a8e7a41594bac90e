"""rsna-pneumonia and siim-acr loaders on tiny DICOM trees in the Kaggle layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from medvl.data.adapters.siim_acr import rle_decode
from tests.test_benchx_public_trees import check_card, load_public, mask_array, write_csv, write_dicom

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR AS")  # RSNA ships ages like "51"


def benchx_split(ids, y):
    """BenchX's preprocess_rsna.py / preprocess_tbx11k.py split, written out independently."""
    train, rest, _, y_rest = train_test_split(ids, y, test_size=0.3, stratify=y, random_state=42)
    val, test, _, _ = train_test_split(rest, y_rest, test_size=0.5, stratify=y_rest, random_state=42)
    return {**dict.fromkeys(train, "train"), **dict.fromkeys(val, "val"), **dict.fromkeys(test, "test")}


@pytest.fixture()
def rsna_root(tmp_path):
    root = tmp_path / "rsna"
    boxes, classes = [], []
    for i in range(40):
        pid = f"{i:04x}-rsna-{i}"
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", 32, 24, PatientSex="F" if i % 2 else "M",
                    PatientAge=str(20 + i), ViewPosition="PA" if i % 3 else "AP")
        if i % 2:
            boxes += [[pid, 2, 3, 4, 5, 1], [pid, 20, 10, 3, 2, 1]] if i % 4 == 1 else [[pid, 2, 3, 4, 5, 1]]
            classes.append([pid, "Lung Opacity"])
        else:
            boxes.append([pid, "", "", "", "", 0])
            classes.append([pid, "Normal"])
    write_csv(root / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], boxes)
    write_csv(root / "stage_2_detailed_class_info.csv", ["patientId", "class"], classes)
    return root


def test_rsna_split_follows_benchx(rsna_root, tmp_path):
    df = load_public("rsna-pneumonia", rsna_root, {"work_dir": tmp_path / "cache"})
    assert len(df) == 40 and df["study_id"].is_unique
    ids = sorted(df["study_id"])
    targets = [json.loads(df.set_index("study_id").loc[i, "labels"])["Pneumonia"] for i in ids]
    assert dict(zip(df["study_id"], df["split"], strict=True)) == benchx_split(ids, targets)
    assert df["split"].value_counts().to_dict() == {"train": 28, "val": 6, "test": 6}


def test_rsna_labels_masks_metadata(rsna_root, tmp_path):
    df = load_public("rsna-pneumonia", rsna_root, {"work_dir": tmp_path / "cache"}).set_index("study_id")
    two_boxes, negative = df.loc["0001-rsna-1"], df.loc["0000-rsna-0"]
    assert json.loads(two_boxes["labels"]) == {"Pneumonia": 1} and json.loads(negative["labels"]) == {"Pneumonia": 0}
    mask = mask_array(two_boxes["images"][0]["mask"])
    assert mask.shape == (24, 32) and mask.sum() == 4 * 5 + 3 * 2
    assert mask[3:8, 2:6].all() and mask[10:12, 20:23].all()
    assert not mask_array(negative["images"][0]["mask"]).any()
    assert str(tmp_path / "cache") in negative["images"][0]["mask"]
    assert two_boxes["sex"] == "F" and two_boxes["age"] == 21 and two_boxes["view"] == "PA"
    assert json.loads(two_boxes["extra"])["class"] == "Lung Opacity"


def test_rsna_missing_files(rsna_root, tmp_path):
    (rsna_root / "stage_2_train_images" / "0003-rsna-3.dcm").unlink()
    with pytest.raises(FileNotFoundError, match="0003-rsna-3.dcm"):
        load_public("rsna-pneumonia", rsna_root, {"work_dir": tmp_path})
    (rsna_root / "stage_2_detailed_class_info.csv").unlink()
    with pytest.raises(FileNotFoundError, match="stage_2_detailed_class_info.csv"):
        load_public("rsna-pneumonia", rsna_root, {"work_dir": tmp_path})


def rle_encode(mask: np.ndarray) -> str:
    """SIIM stage 1 relative run-length encoding (column-major), written independently of the adapter."""
    flat = np.concatenate([[0], mask.T.flatten().astype(int), [0]])
    edges = np.flatnonzero(np.diff(flat))
    starts, ends = edges[0::2], edges[1::2]
    out, previous_end = [], 0
    for start, end in zip(starts, ends, strict=True):
        out += [start - previous_end, end - start]
        previous_end = end
    return " ".join(str(v) for v in out)


@pytest.fixture()
def siim_root(tmp_path):
    root = tmp_path / "siim"
    rows = []
    for i in range(40):
        uid = f"1.2.276.0.7230010.3.1.4.{1000 + i}"
        write_dicom(root / "dicom-images-train" / f"1.2.3.{i}" / f"1.2.4.{i}" / f"{uid}.dcm", 20, 16,
                    PatientSex="M", PatientAge="55", ViewPosition="PA")
        if i % 3 == 0:
            first = np.zeros((16, 20), bool)
            first[2:6, 3:7] = True
            rows.append([uid, " " + rle_encode(first)])
            if i % 2 == 0:
                second = np.zeros((16, 20), bool)
                second[10:12, 15:19] = True
                rows.append([uid, " " + rle_encode(second)])
        else:
            rows.append([uid, " -1"])
    write_csv(root / "train-rle.csv", ["ImageId", " EncodedPixels"], rows)
    return root


def test_siim_rle_masks_and_split(siim_root, tmp_path):
    df = load_public("siim-acr", siim_root, {"work_dir": tmp_path / "cache"}).set_index("study_id")
    assert len(df) == 40
    two = df.loc["1.2.276.0.7230010.3.1.4.1000"]
    mask = mask_array(two["images"][0]["mask"])
    assert mask.shape == (16, 20) and mask.sum() == 16 + 8 and mask[2:6, 3:7].all() and mask[10:12, 15:19].all()
    one = mask_array(df.loc["1.2.276.0.7230010.3.1.4.1003", "images"][0]["mask"])
    assert one.sum() == 16 and not one[10:12, 15:19].any()
    assert json.loads(df.loc["1.2.276.0.7230010.3.1.4.1001", "labels"]) == {"Pneumothorax": 0}
    ids = sorted(df.index)
    y = [json.loads(df.loc[i, "labels"])["Pneumothorax"] for i in ids]
    assert df["split"].to_dict() == benchx_split(ids, y)


def test_siim_rle_decode_refuses_bad_runs():
    with pytest.raises(ValueError, match="odd number"):
        rle_decode("1 2 3", 4, 4)
    with pytest.raises(ValueError, match="beyond"):
        rle_decode("10 10", 4, 4)


def test_siim_missing_files(siim_root, tmp_path):
    victim = next((siim_root / "dicom-images-train").rglob("*1005.dcm"))
    victim.unlink()
    with pytest.raises(FileNotFoundError, match="1005.dcm"):
        load_public("siim-acr", siim_root, {"work_dir": tmp_path})
    (siim_root / "train-rle.csv").unlink()
    with pytest.raises(FileNotFoundError, match="train-rle.csv"):
        load_public("siim-acr", siim_root, {"work_dir": tmp_path})


def test_cards():
    check_card("rsna-pneumonia", ("Pneumonia",))
    check_card("siim-acr", ("Pneumothorax",))
