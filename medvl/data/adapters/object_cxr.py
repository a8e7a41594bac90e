"""``object-cxr``: Object-CXR foreign objects on chest X-rays (JF Healthcare, MIDL 2020), one row per image.

Layout (Kaggle ``raddar/foreign-objects-in-chest-xrays``)::

    train.csv, dev.csv     image_name, annotation
    test.csv               image_path (``test/08001.jpg``) or image_name, annotation
    train/, dev/, test/    the JPEG images

``annotation`` is empty for images without objects, else ``;``-separated objects ``TYPE x y x y ...``:
type 0 a rectangle and 1 an ellipse (both by two corners), 2 a polygon (its vertices). Objects are drawn as a
0/255 mask PNG under the mask cache (option ``work_dir`` or ``$MEDVL_CACHE/masks``). Split: the official
train / dev / test sets as train / val / test. Label ``Foreign object``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from medvl.data.adapters.base import UnitResult
from medvl.data.adapters.common import XRAY_MODALITY
from medvl.data.adapters.tables import Shape, TableSource, image_size, read_table, require_root
from medvl.data.manifest import image_ref, make_row

SPLITS = {"train": "train", "dev": "val", "test": "test"}
SHAPES = {0: "rect", 1: "ellipse", 2: "polygon"}
LAYOUT = "train.csv, dev.csv, test.csv and the train/, dev/, test/ image folders"


class ObjectCxrAdapter(TableSource):
    """Reads Object-CXR; a unit is one image (``dev/08001.jpg``)."""

    name = "object-cxr"
    description = "Object-CXR: train.csv, dev.csv, test.csv and the train/, dev/, test/ image folders"
    licence = "CC BY-NC 4.0 (JF Healthcare)"

    def read_index(self) -> dict[str, list[Shape]]:
        """``{folder/name: shapes}`` of the three tables, every annotation parsed."""
        root = require_root(self.root, self.name, LAYOUT)
        annotations: dict[str, list[Shape]] = {}
        for folder in SPLITS:
            csv = root / f"{folder}.csv"
            table = read_table(csv, self.name, f"the {folder} annotation table", ("annotation",))
            column = next((c for c in ("image_name", "image_path") if c in table.columns), None)
            if column is None:
                raise ValueError(f"{csv}: needs an image_name or image_path column; found {list(table.columns)}")
            for value, annotation in zip(table[column], table["annotation"], strict=True):
                name = PurePosixPath(value).name
                annotations[f"{folder}/{name}"] = parse_annotation(annotation, f"{csv}: {name}")
        return annotations

    def read_unit(self, unit: str) -> UnitResult:
        """One image with its object mask, label and official split."""
        folder, name = unit.split("/")
        shapes = self.index[unit]
        width, height = image_size(self.root / unit)
        mask = self.masks.write(f"{folder}_{Path(name).stem}", width, height, shapes)
        row = make_row(
            patient_id=unit, study_id=unit, source=self.name,
            images=[image_ref(self.root / unit, modality=XRAY_MODALITY, mask=mask, kind="2d")],
            labels={"Foreign object": int(bool(shapes))}, split=SPLITS[folder], extra={"n_objects": len(shapes)},
        )
        return UnitResult([row])


def parse_annotation(text: str, where: str) -> list[Shape]:
    """Mask shapes from an Object-CXR ``annotation`` cell (empty: no objects)."""
    shapes: list[Shape] = []
    for part in (p for p in text.split(";") if p.strip()):
        try:
            kind, *coords = (int(float(v)) for v in part.split())
        except ValueError:
            raise ValueError(f"{where}: annotation {part!r} is not 'TYPE x y ...' numbers") from None
        if kind not in SHAPES or len(coords) % 2 or len(coords) < (6 if kind == 2 else 4):
            raise ValueError(f"{where}: annotation {part!r}: type must be 0, 1 or 2 with x y pairs")
        shapes.append((SHAPES[kind], coords if kind == 2 else coords[:4]))
    return shapes
