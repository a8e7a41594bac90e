"""``nih-cxr14``: NIH ChestX-ray14 (Wang et al. 2017), one row per image, 14 findings.

Layout (NIH box folder, Kaggle ``nih-chest-xrays/data`` or the Hugging Face copy)::

    Data_Entry_2017_v2020.csv   (or Data_Entry_2017.csv) Image Index, Finding Labels, Follow-up #, Patient ID,
                                Patient Age, Patient Gender, View Position, OriginalImage[Width, ...
    train_val_list.txt          official train+val image names, one per line
    test_list.txt               official test image names
    images/00000001_000.png     (NIH / Hugging Face) or images_001/images/00000001_000.png ... (Kaggle)

Split: the official lists, ``train_val_list.txt`` as ``train`` and ``test_list.txt`` as ``test`` (no official
validation set). ``Finding Labels`` is ``|``-separated; ``No Finding`` makes all 14 negative.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from medvl.data.adapters.base import UnitResult
from medvl.data.adapters.common import XRAY_MODALITY, keep_readable, normalise_sex, normalise_view, parse_age
from medvl.data.adapters.tables import TableSource, read_id_list, read_table, require_root
from medvl.data.manifest import image_ref, make_row

LABELS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
    "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
ENTRY_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "Patient Age", "Patient Gender", "View Position")
LAYOUT = "Data_Entry_2017[_v2020].csv, train_val_list.txt, test_list.txt and images/ (or images_0XX/images/)"


class NihCxr14Adapter(TableSource):
    """Reads NIH ChestX-ray14; a unit is one image of the official lists (``00000001_000.png``)."""

    name = "nih-cxr14"
    description = "NIH ChestX-ray14: Data_Entry_2017[_v2020].csv, train_val_list.txt, test_list.txt, images/"
    licence = "CC0 1.0 (NIH Clinical Center); acknowledge the NIH Clinical Center as the data provider"

    def read_index(self) -> dict[str, dict]:
        """Table rows of the listed images with their split; unknown findings and double listings refused."""
        root = require_root(self.root, self.name, LAYOUT)
        table = read_table(self._entry_file(root), self.name, "the image label table", COLUMNS)
        train_val = set(read_id_list(root / "train_val_list.txt", self.name, "the official train+val image list"))
        test = set(read_id_list(root / "test_list.txt", self.name, "the official test image list"))
        both = sorted(train_val & test)
        if both:
            raise ValueError(f"{root / 'test_list.txt'}: image {both[0]} is also in train_val_list.txt")
        records = {}
        for record in table[table["Image Index"].isin(train_val | test)].to_dict("records"):
            name = record["Image Index"]
            records[name] = {**record, "split": "test" if name in test else "train",
                             "labels": finding_labels(record["Finding Labels"], name)}
        return records

    @cached_property
    def _paths(self) -> dict[str, Path]:
        return {p.name: p for p in self.root.glob("images_*/images/*.png")}

    def read_unit(self, unit: str) -> UnitResult:
        """One image with its 14 labels, demographics and official split."""
        record = self.index[unit]
        view = normalise_view(record["View Position"])
        path = self._paths.get(unit, self.root / "images" / unit)
        kept, rejected = keep_readable([image_ref(path, modality=XRAY_MODALITY, view=view, kind="2d")])
        rows = [make_row(
            patient_id=record["Patient ID"], study_id=unit, source=self.name, images=kept, labels=record["labels"],
            split=record["split"], sex=normalise_sex(record["Patient Gender"]), age=parse_age(record["Patient Age"]),
            view=view, extra={"follow_up": record.get("Follow-up #", "")},
        )]
        return UnitResult(rows if kept else [], rejected)

    @staticmethod
    def _entry_file(root: Path) -> Path:
        for name in ENTRY_FILES:
            if (root / name).is_file():
                return root / name
        return root / ENTRY_FILES[-1]  # read_table names it in the error


def finding_labels(text: str, image: str) -> dict[str, int]:
    """All 14 labels from a ``Finding Labels`` cell (``Effusion|Mass`` or ``No Finding``)."""
    found = {part.strip() for part in text.split("|") if part.strip()} - {"No Finding"}
    unknown = found - set(LABELS)
    if unknown:
        raise ValueError(f"{image}: unknown finding(s) {sorted(unknown)}; NIH ChestX-ray14 has {list(LABELS)}")
    return {label: int(label in found) for label in LABELS}
