"""covidx, tbx11k, object-cxr and vindr-cxr loaders on tiny trees in their upstream layouts."""

from __future__ import annotations

import json

import pytest
from sklearn.model_selection import train_test_split

from medvl.data.adapters import tbx11k, vindr_cxr
from medvl.data.adapters.object_cxr import parse_annotation
from tests.test_benchx_public_rsna_siim import benchx_split
from tests.test_benchx_public_trees import (
    check_card,
    load_public,
    mask_array,
    write_csv,
    write_dicom,
    write_jpeg,
    write_png,
)


@pytest.fixture()
def covidx_root(tmp_path):
    root = tmp_path / "covidx"
    for split, n in (("train", 12), ("val", 4), ("test", 4)):
        lines = []
        for i in range(n):
            name = f"{split}-{i}.png" if i % 2 else f"{split}-{i}.jpg"
            (write_png if i % 2 else write_jpeg)(root / split / name)
            lines.append(f"p{split}{i // 2} {name} {'positive' if i % 3 == 0 else 'negative'} bimcv")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_covidx_official_splits(covidx_root):
    df = load_public("covidx", covidx_root).set_index("study_id")
    assert df["split"].value_counts().to_dict() == {"train": 12, "val": 4, "test": 4}
    assert json.loads(df.loc["train/train-0.jpg", "labels"]) == {"COVID-19": 1}
    assert json.loads(df.loc["val/val-1.png", "labels"]) == {"COVID-19": 0}
    assert df.loc["test/test-3.png", "patient_id"] == "ptest1"
    assert df.loc["test/test-3.png", "images"][0]["path"].endswith("test/test-3.png")


def test_covidx_bad_and_missing(covidx_root):
    text = (covidx_root / "val.txt").read_text()
    (covidx_root / "val.txt").write_text(text.replace("negative", "unknown", 1))
    with pytest.raises(ValueError, match="val.txt: line 2"):
        load_public("covidx", covidx_root)
    (covidx_root / "val.txt").write_text(text)
    (covidx_root / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test.txt"):
        load_public("covidx", covidx_root)


TBX_HEADER = ["fname", "image_height", "image_width", "source", "bbox", "target", "tb_type", "image_type"]


@pytest.fixture()
def tbx_root(tmp_path):
    root = tmp_path / "tbx11k"
    rows = []
    for i in range(40):
        name = f"{['h', 's', 'tb'][i % 3]}{i:04d}.png"
        write_png(root / "images" / name, 24, 20)
        if i % 3 == 2:
            box = "{'xmin': 2.0, 'ymin': 3.0, 'width': 5.0, 'height': 4.0}"
            rows.append([name, 20, 24, "tbx11k", box, "tb", "active_tb", "tb"])
            if i % 2:
                rows.append([name, 20, 24, "tbx11k", "{'xmin': 15.0, 'ymin': 12.0, 'width': 2.0, 'height': 3.0}",
                             "tb", "latent_tb", "tb"])
        else:
            kind = "healthy" if i % 3 == 0 else "sick_but_no_tb"
            rows.append([name, 20, 24, "tbx11k", "none", "no_tb", "none", kind])
    write_csv(root / "data.csv", TBX_HEADER, rows)
    return root


def test_tbx11k_split_labels_masks(tbx_root, tmp_path):
    df = load_public("tbx11k", tbx_root, {"work_dir": tmp_path / "cache"}).set_index("study_id")
    ids = sorted(df.index)
    targets = ["tb" if json.loads(df.loc[i, "labels"])["tb"] else "no_tb" for i in ids]
    assert df["split"].to_dict() == benchx_split(ids, targets)
    assert json.loads(df.loc["s0001.png", "labels"]) == {"healthy": 0, "sick_but_no_tb": 1, "tb": 0}
    two = mask_array(df.loc["tb0005.png", "images"][0]["mask"])
    assert two.shape == (20, 24) and two.sum() == 20 + 6 and two[3:7, 2:7].all() and two[12:15, 15:17].all()
    assert mask_array(df.loc["tb0002.png", "images"][0]["mask"]).sum() == 20
    assert not mask_array(df.loc["h0000.png", "images"][0]["mask"]).any()


def test_tbx11k_missing(tbx_root, tmp_path):
    (tbx_root / "images" / "s0004.png").unlink()
    with pytest.raises(FileNotFoundError, match="s0004.png"):
        load_public("tbx11k", tbx_root, {"work_dir": tmp_path})
    (tbx_root / "data.csv").unlink()
    with pytest.raises(FileNotFoundError, match="data.csv"):
        load_public("tbx11k", tbx_root, {"work_dir": tmp_path})


@pytest.fixture()
def object_root(tmp_path):
    root = tmp_path / "object-cxr"
    annotations = ["", "0 2 3 6 7", "1 10 10 17 17;2 1 20 8 20 8 27", ""]
    for folder, n in (("train", 8), ("dev", 4), ("test", 4)):
        rows = []
        for i in range(n):
            name = f"{folder[0]}{i:05d}.jpg"
            write_jpeg(root / folder / name, 32, 30)
            rows.append([f"{folder}/{name}" if folder == "test" else name, annotations[i % 4]])
        write_csv(root / f"{folder}.csv", ["image_path" if folder == "test" else "image_name", "annotation"], rows)
    return root


def test_object_cxr_splits_and_shapes(object_root, tmp_path):
    df = load_public("object-cxr", object_root, {"work_dir": tmp_path / "cache"}).set_index("study_id")
    assert df["split"].value_counts().to_dict() == {"train": 8, "val": 4, "test": 4}
    assert df.loc["dev/d00001.jpg", "split"] == "val" and df.loc["test/t00002.jpg", "split"] == "test"
    assert json.loads(df.loc["train/t00000.jpg", "labels"]) == {"Foreign object": 0}
    rect = mask_array(df.loc["train/t00001.jpg", "images"][0]["mask"])
    assert rect.shape == (30, 32) and rect.sum() == 25 and rect[3:8, 2:7].all()
    both = mask_array(df.loc["test/t00002.jpg", "images"][0]["mask"])
    assert both[13, 13] and not both[10, 10]  # ellipse centre in, bounding-box corner out
    assert both[23, 4] and both[20:28, 1:9].sum() < 64  # triangle: inside point, less than its box
    with pytest.raises(ValueError, match="type must be"):
        parse_annotation("3 1 2 3 4", "x")


def test_object_cxr_missing(object_root, tmp_path):
    (object_root / "dev.csv").unlink()
    with pytest.raises(FileNotFoundError, match="dev.csv"):
        load_public("object-cxr", object_root, {"work_dir": tmp_path})


@pytest.fixture()
def vindr_root(tmp_path):
    root = tmp_path / "vindr"
    train, test = [], []
    for i in range(40):
        image_id = f"{i:032x}"
        write_dicom(root / "train" / f"{image_id}.dicom", 40, 30, PatientSex="F", PatientAge="045Y")
        for rad in ("R8", "R9", "R10"):
            if i % 2 and rad == "R8":
                train.append([image_id, rad, "Cardiomegaly", 5, 6, 15, 12])
            elif i % 4 == 1 and rad == "R9":
                train.append([image_id, rad, "Nodule/Mass", 30, 20, 33, 22])
            else:
                train.append([image_id, rad, "No finding", "", "", "", ""])
    for i in range(8):
        image_id = f"{1000 + i:032x}"
        write_dicom(root / "test" / f"{image_id}.dicom", 40, 30)
        test.append([image_id, "Aortic enlargement", 1, 1, 4, 4] if i % 2 else [image_id, "No finding", "", "", "", ""])
    write_csv(root / "annotations" / "annotations_train.csv",
              ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"], train)
    write_csv(root / "annotations" / "annotations_test.csv",
              ["image_id", "class_name", "x_min", "y_min", "x_max", "y_max"], test)
    return root


def test_vindr_split_labels_masks(vindr_root, tmp_path):
    df = load_public("vindr-cxr", vindr_root, {"work_dir": tmp_path / "cache"}).set_index("study_id")
    assert df["split"].value_counts().to_dict() == {"train": 32, "val": 8, "test": 8}
    train_ids = sorted(i for i in df.index if df.loc[i, "split"] != "test")
    y = [json.loads(df.loc[i, "labels"])["Cardiomegaly"] == 1 for i in train_ids]
    _, val = train_test_split(train_ids, test_size=8, stratify=y, random_state=42)
    assert set(df.index[df["split"] == "val"]) == set(val)
    labels = json.loads(df.loc[f"{1:032x}", "labels"])
    assert set(labels) == set(vindr_cxr.LABELS) and labels["Cardiomegaly"] == labels["Nodule/Mass"] == 1
    assert sum(labels.values()) == 2 and sum(json.loads(df.loc[f"{0:032x}", "labels"]).values()) == 0
    mask = mask_array(df.loc[f"{1:032x}", "images"][0]["mask"])
    assert mask.shape == (30, 40) and mask.sum() == 10 * 6 + 3 * 2 and mask[6:12, 5:15].all()
    assert df.loc[f"{1:032x}", "sex"] == "F" and df.loc[f"{1:032x}", "age"] == 45


def test_vindr_missing_and_unknown(vindr_root, tmp_path):
    csv = vindr_root / "annotations" / "annotations_train.csv"
    csv.write_text(csv.read_text().replace("Cardiomegaly", "Cardiomegalia", 1))
    with pytest.raises(ValueError, match="Cardiomegalia"):
        load_public("vindr-cxr", vindr_root, {"work_dir": tmp_path})
    (vindr_root / "annotations" / "annotations_test.csv").unlink()
    with pytest.raises(FileNotFoundError, match="annotations_test.csv"):
        load_public("vindr-cxr", vindr_root, {"work_dir": tmp_path})


def test_cards():
    check_card("covidx", ("COVID-19",))
    check_card("tbx11k", tbx11k.LABELS)
    check_card("object-cxr", ("Foreign object",))
    check_card("vindr-cxr", vindr_cxr.LABELS)
