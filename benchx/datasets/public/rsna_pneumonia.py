"""``rsna-pneumonia``: RSNA Pneumonia Detection Challenge, stage 2 training data (DICOM), one row per image.

Layout (Kaggle ``rsna-pneumonia-detection-challenge``)::

    stage_2_train_labels.csv          patientId, x, y, width, height, Target (one row per box; blank box when 0)
    stage_2_detailed_class_info.csv   patientId, class (Lung Opacity / Normal / No Lung Opacity / Not Normal)
    stage_2_train_images/<patientId>.dcm

Label ``Pneumonia`` = ``Target``. Split rule (BenchX ``preprocess_rsna.py``): the images sorted by patientId,
stratified on Target, 70% train, the rest halved into val and test (``train_test_split``, ``random_state=42``).
The stage 2 test images carry no labels and are not used. Each image's boxes become a 0/255 mask PNG under the
cache (``options['work_dir']`` or ``$MEDVL_CACHE/benchx``); images without boxes share an empty mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from benchx.datasets.public.common import (
    MaskWriter,
    benchx_70_15_15,
    dicom_header,
    read_table,
    require_root,
)
from benchx.datasets.registry import register_loader
from medvl.data.manifest import from_rows, image_ref, make_row

NAME = "rsna-pneumonia"
LABELS = ("Pneumonia",)
LAYOUT = "stage_2_train_labels.csv, stage_2_detailed_class_info.csv and stage_2_train_images/<patientId>.dcm"
_BOX = ("x", "y", "width", "height")


@register_loader(NAME)
def load(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Manifest of the RSNA Pneumonia training images with BenchX's 70/15/15 split and box masks."""
    root = require_root(root, NAME, LAYOUT)
    boxes = read_table(root / "stage_2_train_labels.csv", NAME, "the box/Target table", ("patientId", *_BOX, "Target"))
    classes = read_table(root / "stage_2_detailed_class_info.csv", NAME, "the detailed class table",
                         ("patientId", "class"))
    detail = dict(zip(classes["patientId"], classes["class"], strict=False))
    targets = _targets(boxes, root / "stage_2_train_labels.csv")
    ids = sorted(targets)
    splits = benchx_70_15_15(ids, [targets[i] for i in ids], NAME)
    masks = MaskWriter(NAME, root, options)
    rows = []
    for patient, group in tqdm(boxes.groupby("patientId", sort=True), desc=NAME, unit="image", disable=None):
        path = root / "stage_2_train_images" / f"{patient}.dcm"
        header = dicom_header(path)
        shapes = [("rect", _corners(r)) for r in group[list(_BOX)].to_dict("records") if r["x"]]
        mask = masks.write(patient, header["columns"], header["rows"], shapes)
        rows.append(make_row(
            patient_id=patient, study_id=patient, source=NAME,
            images=[image_ref(path, modality=header["modality"], view=header["view"], mask=mask)],
            labels={"Pneumonia": targets[patient]}, split=splits[patient],
            sex=header["sex"], age=header["age"], view=header["view"],
            extra={"class": detail.get(patient, ""), "n_boxes": len(shapes)},
        ))
    return from_rows(rows)


def _targets(boxes: pd.DataFrame, csv: Path) -> dict[str, int]:
    """One Target per image; refuses conflicting Targets or a positive row without its box."""
    targets: dict[str, int] = {}
    for record in boxes.to_dict("records"):
        patient, target = record["patientId"], record["Target"]
        if target not in ("0", "1"):
            raise ValueError(f"{csv}: patientId {patient} has Target {target!r}; expected 0 or 1")
        if target == "1" and not all(record[k] for k in _BOX):
            raise ValueError(f"{csv}: patientId {patient} has Target 1 but no box (x, y, width, height)")
        if targets.setdefault(patient, int(target)) != int(target):
            raise ValueError(f"{csv}: patientId {patient} has rows with Target 0 and 1")
    return targets


def _corners(record: Mapping[str, str]) -> tuple[float, float, float, float]:
    x, y, w, h = (float(record[k]) for k in _BOX)
    return x, y, x + w - 1, y + h - 1
