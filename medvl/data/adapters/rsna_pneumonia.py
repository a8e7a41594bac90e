"""``rsna-pneumonia``: RSNA Pneumonia Detection Challenge, stage 2 training data (DICOM), one row per image.

Layout (Kaggle ``rsna-pneumonia-detection-challenge``)::

    stage_2_train_labels.csv          patientId, x, y, width, height, Target (one row per box; blank box when 0)
    stage_2_detailed_class_info.csv   patientId, class (Lung Opacity / Normal / No Lung Opacity / Not Normal)
    stage_2_train_images/<patientId>.dcm

Label ``Pneumonia`` = ``Target``. The stage 2 test images carry no labels and are not read; the source has no
split. Each image's boxes become a 0/255 mask PNG under the mask cache (option ``work_dir`` or
``$MEDVL_CACHE/masks``); images without boxes share an empty mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from medvl.data.adapters.base import UnitResult
from medvl.data.adapters.tables import TableSource, dicom_header, read_table, require_root
from medvl.data.manifest import image_ref, make_row

LAYOUT = "stage_2_train_labels.csv, stage_2_detailed_class_info.csv and stage_2_train_images/<patientId>.dcm"
_BOX = ("x", "y", "width", "height")
_LABELS = "stage_2_train_labels.csv"


class RsnaPneumoniaAdapter(TableSource):
    """Reads the RSNA Pneumonia stage 2 training set; a unit is one image (its ``patientId``)."""

    name = "rsna-pneumonia"
    description = ("RSNA Pneumonia: stage_2_train_labels.csv, stage_2_detailed_class_info.csv, "
                   "stage_2_train_images/*.dcm")
    licence = "RSNA Pneumonia Detection Challenge terms (non-commercial research)"

    def read_index(self) -> dict[str, tuple[pd.DataFrame, str, int]]:
        """``{patientId: (its box rows, detailed class, Target)}`` sorted by patientId, both tables checked."""
        root = require_root(self.root, self.name, LAYOUT)
        boxes = read_table(root / _LABELS, self.name, "the box/Target table", ("patientId", *_BOX, "Target"))
        classes = read_table(root / "stage_2_detailed_class_info.csv", self.name, "the detailed class table",
                             ("patientId", "class"))
        detail = dict(zip(classes["patientId"], classes["class"], strict=False))
        targets = _targets(boxes, root / _LABELS)
        return {patient: (group, detail.get(patient, ""), targets[patient])
                for patient, group in boxes.groupby("patientId", sort=True)}

    def read_unit(self, unit: str) -> UnitResult:
        """One image with its box mask, label and demographics from the DICOM header."""
        boxes, detail, target = self.index[unit]
        path = self.root / "stage_2_train_images" / f"{unit}.dcm"
        header = dicom_header(path)
        shapes = [("rect", _corners(r)) for r in boxes[list(_BOX)].to_dict("records") if r["x"]]
        mask = self.masks.write(unit, header["columns"], header["rows"], shapes)
        row = make_row(
            patient_id=unit, study_id=unit, source=self.name,
            images=[image_ref(path, modality=header["modality"], view=header["view"], mask=mask)],
            labels={"Pneumonia": target}, sex=header["sex"], age=header["age"], view=header["view"],
            extra={"class": detail, "n_boxes": len(shapes)},
        )
        return UnitResult([row])


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
