"""``vindr-cxr``: VinDr-CXR 1.0.0 (PhysioNet), one row per image, the 14 local findings.

Layout::

    annotations/annotations_train.csv   image_id, rad_id, class_name, x_min, y_min, x_max, y_max
                                        (three radiologists per image; ``No finding`` rows have no box)
    annotations/annotations_test.csv    image_id, class_name, x_min, y_min, x_max, y_max (consensus)
    train/<image_id>.dicom, test/<image_id>.dicom

Labels: a finding is positive when any radiologist boxed it. Split: the official train and test sets. Boxes of
every finding become one 0/255 mask PNG under the mask cache (option ``work_dir`` or ``$MEDVL_CACHE/masks``),
sized from the DICOM header.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from medvl.data.adapters.base import UnitResult
from medvl.data.adapters.tables import TableSource, dicom_header, read_table, require_root
from medvl.data.manifest import image_ref, make_row

LABELS = (
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Consolidation", "ILD", "Infiltration",
    "Lung Opacity", "Nodule/Mass", "Other lesion", "Pleural effusion", "Pleural thickening", "Pneumothorax",
    "Pulmonary fibrosis",
)
"""The 14 local findings of the VinBigData challenge."""
NO_FINDING = "No finding"
COLUMNS = ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")
SPLITS = ("train", "test")
"""The official splits, each with its annotation table and image folder."""
LAYOUT = "annotations/annotations_train.csv, annotations/annotations_test.csv, train/ and test/ (*.dicom)"


class VindrCxrAdapter(TableSource):
    """Reads VinDr-CXR; a unit is one image (``train/<image_id>`` or ``test/<image_id>``).

    A finding is positive when any radiologist boxed it, and the boxes of all of them make the image's mask.
    """

    name = "vindr-cxr"
    description = "VinDr-CXR: annotations/annotations_{train,test}.csv and train/, test/ (*.dicom)"
    licence = "PhysioNet Credentialed Health Data License 1.5.0"

    def read_index(self) -> dict[str, pd.DataFrame]:
        """``{split/image_id: its annotation rows}``, train then test, sorted; unknown class names refused."""
        root = require_root(self.root, self.name, LAYOUT)
        csvs = {split: root / "annotations" / f"annotations_{split}.csv" for split in SPLITS}
        tables = {split: read_table(csv, self.name, f"the {split} box annotations", COLUMNS)
                  for split, csv in csvs.items()}
        groups: dict[str, pd.DataFrame] = {}
        for split, table in tables.items():
            unknown = sorted(set(table["class_name"]) - {NO_FINDING, *LABELS})
            if unknown:
                raise ValueError(f"{csvs[split]}: unknown class_name(s) {unknown}; expected {NO_FINDING!r} or one "
                                 f"of {list(LABELS)}")
            groups.update({f"{split}/{image}": group for image, group in table.groupby("image_id", sort=True)})
        return groups

    def read_unit(self, unit: str) -> UnitResult:
        """One image with its findings, their box mask, demographics and official split."""
        split, image_id = unit.split("/")
        path = self.root / split / f"{image_id}.dicom"
        header = dicom_header(path)
        records = self.index[unit].to_dict("records")
        where = f"{self.root / 'annotations' / f'annotations_{split}.csv'}: {image_id}"
        found = {r["class_name"] for r in records} - {NO_FINDING}
        shapes = [("rect", _corners(r, where)) for r in records if r["class_name"] != NO_FINDING and r["x_min"]]
        row = make_row(
            patient_id=image_id, study_id=image_id, source=self.name,
            images=[image_ref(path, modality=header["modality"], view=header["view"],
                              mask=self.masks.write(image_id, header["columns"], header["rows"], shapes))],
            labels={label: int(label in found) for label in LABELS}, split=split,
            sex=header["sex"], age=header["age"], view=header["view"], extra={"findings": sorted(found)},
        )
        return UnitResult([row])


def _corners(record: Mapping[str, str], where: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(record[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
    except ValueError:
        raise ValueError(f"{where}: box of {record['class_name']!r} is not numeric") from None
    return x0, y0, x1 - 1, y1 - 1
