"""``nih-cxr14``: NIH ChestX-ray14 (Wang et al. 2017), one row per image, 14 findings.

Layout (NIH box folder, Kaggle ``nih-chest-xrays/data`` or the Hugging Face copy)::

    Data_Entry_2017_v2020.csv   (or Data_Entry_2017.csv) Image Index, Finding Labels, Follow-up #, Patient ID,
                                Patient Age, Patient Gender, View Position, OriginalImage[Width, ...
    train_val_list.txt          official train+val image names, one per line
    test_list.txt               official test image names
    images/00000001_000.png     (NIH / Hugging Face) or images_001/images/00000001_000.png ... (Kaggle)

Split rule: the official ``test_list.txt`` is the test split; the validation split is carved out of
``train_val_list.txt`` at patient level (patients whose salted hash falls below ``val_fraction``, default 0.1),
so no patient is in two splits. ``Finding Labels`` is ``|``-separated; ``No Finding`` makes all 14 negative.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from benchx.datasets.public.common import (
    find_missing,
    hashed_patients,
    read_id_list,
    read_table,
    require_root,
)
from benchx.datasets.registry import register_loader
from medvl.data.adapters.common import XRAY_MODALITY, normalise_sex, normalise_view, parse_age
from medvl.data.manifest import from_rows, image_ref, make_row
from medvl.data.splits import check_patient_splits

NAME = "nih-cxr14"
LABELS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
    "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
ENTRY_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "Patient Age", "Patient Gender", "View Position")
LAYOUT = "Data_Entry_2017[_v2020].csv, train_val_list.txt, test_list.txt and images/ (or images_0XX/images/)"
SALT = "benchx-nih-cxr14-val"


@register_loader(NAME)
def load(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Manifest of NIH ChestX-ray14 with the official test list and a patient-level val carved from train_val.

    Options:
        val_fraction: share of train_val patients that go to val (default 0.1).
    """
    root = require_root(root, NAME, LAYOUT)
    table = read_table(_entry_file(root), NAME, "the image label table", COLUMNS)
    train_val = set(read_id_list(root / "train_val_list.txt", NAME, "the official train+val image list"))
    test = set(read_id_list(root / "test_list.txt", NAME, "the official test image list"))
    both = sorted(train_val & test)
    if both:
        raise ValueError(f"{root / 'test_list.txt'}: image {both[0]} is also in train_val_list.txt")
    table = table[table["Image Index"].isin(train_val | test)]
    paths = _image_paths(root, table["Image Index"])
    find_missing(paths.values(), NAME)
    trainval_patients = table.loc[table["Image Index"].isin(train_val), "Patient ID"]
    val_patients = hashed_patients(trainval_patients, float(options.get("val_fraction", 0.1)), SALT)
    rows = []
    for record in table.to_dict("records"):
        name, patient = record["Image Index"], record["Patient ID"]
        split = "test" if name in test else "val" if patient in val_patients else "train"
        view = normalise_view(record["View Position"])
        rows.append(make_row(
            patient_id=patient, study_id=name, source=NAME,
            images=[image_ref(paths[name], modality=XRAY_MODALITY, view=view)],
            labels=finding_labels(record["Finding Labels"], name),
            split=split, sex=normalise_sex(record["Patient Gender"]), age=parse_age(record["Patient Age"]), view=view,
            extra={"follow_up": record.get("Follow-up #", "")},
        ))
    df = from_rows(rows)
    check_patient_splits(df)
    return df


def finding_labels(text: str, image: str) -> dict[str, int]:
    """All 14 labels from a ``Finding Labels`` cell (``Effusion|Mass`` or ``No Finding``)."""
    found = {part.strip() for part in text.split("|") if part.strip()} - {"No Finding"}
    unknown = found - set(LABELS)
    if unknown:
        raise ValueError(f"{image}: unknown finding(s) {sorted(unknown)}; NIH ChestX-ray14 has {list(LABELS)}")
    return {label: int(label in found) for label in LABELS}


def _entry_file(root: Path) -> Path:
    for name in ENTRY_FILES:
        if (root / name).is_file():
            return root / name
    return root / ENTRY_FILES[-1]  # read_table names it in the error


def _image_paths(root: Path, names: pd.Series) -> dict[str, Path]:
    found = {p.name: p for p in root.glob("images_*/images/*.png")}
    return {name: found.get(name, root / "images" / name) for name in names}
