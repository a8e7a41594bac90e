"""``covidx``: COVIDx CXR-4 (Kaggle ``andyczhao/covidx-cxr2``, version 9), one row per image.

Layout::

    train.txt, val.txt, test.txt    space-separated, no header: patient_id filename class data_source
                                    (class ``positive`` / ``negative``)
    train/<filename>, val/<filename>, test/<filename>

The official lists give the split. Label ``COVID-19``: 1 for ``positive``, 0 for ``negative``.
"""

from __future__ import annotations

from medvl.data.adapters.base import UnitResult
from medvl.data.adapters.common import XRAY_MODALITY, keep_readable
from medvl.data.adapters.tables import TableSource, require_file, require_root
from medvl.data.manifest import image_ref, make_row

SPLITS = ("train", "val", "test")
CLASSES = {"positive": 1, "negative": 0}
LAYOUT = "train.txt, val.txt, test.txt and the train/, val/, test/ image folders"


class CovidxAdapter(TableSource):
    """Reads COVIDx CXR-4; a unit is one listed image (``train/<filename>``)."""

    name = "covidx"
    description = "COVIDx CXR-4: train/val/test.txt lists and the train/, val/, test/ image folders"
    licence = "the licences of COVIDx's constituent datasets (see the COVID-Net repository)"

    def read_index(self) -> dict[str, tuple[str, str, str]]:
        """``{split/filename: (patient, class, data source)}`` from the three lists, checked line by line."""
        root = require_root(self.root, self.name, LAYOUT)
        entries: dict[str, tuple[str, str, str]] = {}
        for split in SPLITS:
            listing = require_file(root / f"{split}.txt", self.name, f"the official {split} list")
            lines = [line.split() for line in listing.read_text().splitlines() if line.strip()]
            for number, fields in enumerate(lines, start=1):
                if len(fields) != 4 or fields[2] not in CLASSES:
                    raise ValueError(f"{listing}: line {number} is not 'patient_id filename positive|negative source'")
                patient, filename, label, source = fields
                entries[f"{split}/{filename}"] = (patient, label, source)
        return entries

    def read_unit(self, unit: str) -> UnitResult:
        """One image with its official split and label."""
        patient, label, source = self.index[unit]
        kept, rejected = keep_readable([image_ref(self.root / unit, modality=XRAY_MODALITY, kind="2d")])
        rows = [make_row(patient_id=patient, study_id=unit, source=self.name, images=kept,
                         labels={"COVID-19": CLASSES[label]}, split=unit.split("/")[0], extra={"data_source": source})]
        return UnitResult(rows if kept else [], rejected)
