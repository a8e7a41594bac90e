"""``vindr-cxr``: VinDr-CXR 1.0.0 (PhysioNet), one row per image, BenchX's 14 local findings.

Layout::

    annotations/annotations_train.csv   image_id, rad_id, class_name, x_min, y_min, x_max, y_max
                                        (three radiologists per image; ``No finding`` rows have no box)
    annotations/annotations_test.csv    image_id, class_name, x_min, y_min, x_max, y_max (consensus)
    train/<image_id>.dicom, test/<image_id>.dicom

Labels: a finding is positive when any radiologist boxed it (as BenchX). Split rule (BenchX
``preprocess_vindr.py``): the official test set is test; val is drawn from train, as many images as the test
set, stratified on "has a finding", from the train image ids in sorted order (``random_state=42``).
Boxes of every finding become one 0/255 mask PNG under the cache (``options['work_dir']`` or
``$MEDVL_CACHE/benchx``), sized from the DICOM header.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from benchx.datasets.public.common import (
    MaskWriter,
    dicom_header,
    read_table,
    require_root,
    stratified_holdout,
)
from benchx.datasets.registry import register_loader
from medvl.data.manifest import from_rows, image_ref, make_row

NAME = "vindr-cxr"
LABELS = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD", "Infiltration",
    "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion", "Pleural thickening", "Pneumothorax",
    "Pulmonary fibrosis",
)
"""The 14 local findings of the VinBigData challenge, which BenchX evaluates."""
NO_FINDING = "No finding"
COLUMNS = ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")
LAYOUT = "annotations/annotations_train.csv, annotations/annotations_test.csv, train/ and test/ (*.dicom)"


@register_loader(NAME)
def load(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Manifest of VinDr-CXR with the official test set, BenchX's val draw and box masks."""
    root = require_root(root, NAME, LAYOUT)
    tables = {split: read_table(root / "annotations" / f"annotations_{split}.csv", NAME,
                                f"the {split} box annotations", COLUMNS) for split in ("train", "test")}
    groups = {split: dict(list(table.groupby("image_id", sort=True))) for split, table in tables.items()}
    train_ids = list(groups["train"])
    has_finding = [bool(set(groups["train"][i]["class_name"]) - {NO_FINDING}) for i in train_ids]
    _, val_ids = stratified_holdout(train_ids, has_finding, len(groups["test"]), NAME)
    split_of = {**dict.fromkeys(train_ids, "train"), **dict.fromkeys(val_ids, "val"),
                **dict.fromkeys(groups["test"], "test")}
    masks = MaskWriter(NAME, root, options)
    rows = []
    for folder, images in groups.items():
        for image_id, group in tqdm(images.items(), desc=f"{NAME} {folder}", unit="image", disable=None):
            path = root / folder / f"{image_id}.dicom"
            header = dicom_header(path)
            records = group.to_dict("records")
            where = f"{root / 'annotations' / f'annotations_{folder}.csv'}: {image_id}"
            found = {r["class_name"] for r in records} - {NO_FINDING}
            if found - set(LABELS):
                raise ValueError(f"{where}: unknown class_name(s) {sorted(found - set(LABELS))}; expected {NO_FINDING!r} "
                                 f"or one of {list(LABELS)}")
            shapes = [("rect", _corners(r, where)) for r in records if r["class_name"] != NO_FINDING and r["x_min"]]
            rows.append(make_row(
                patient_id=image_id, study_id=image_id, source=NAME,
                images=[image_ref(path, modality=header["modality"], view=header["view"],
                                  mask=masks.write(image_id, header["columns"], header["rows"], shapes))],
                labels={label: int(label in found) for label in LABELS}, split=split_of[image_id],
                sex=header["sex"], age=header["age"], view=header["view"],
                extra={"findings": sorted(found)},
            ))
    return from_rows(rows)


def _corners(record: Mapping[str, str], where: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(record[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
    except ValueError:
        raise ValueError(f"{where}: box of {record['class_name']!r} is not numeric") from None
    return x0, y0, x1 - 1, y1 - 1
