"""``object-cxr``: Object-CXR foreign objects on chest X-rays (JF Healthcare, MIDL 2020), one row per image.

Layout (Kaggle ``raddar/foreign-objects-in-chest-xrays``)::

    train.csv, dev.csv     image_name, annotation
    test.csv               image_path (``test/08001.jpg``) or image_name, annotation
    train/, dev/, test/    the JPEG images

``annotation`` is empty for images without objects, else ``;``-separated objects ``TYPE x y x y ...``:
type 0 a rectangle and 1 an ellipse (both by two corners), 2 a polygon (its vertices). Objects are drawn as a
0/255 mask PNG under the cache (``options['work_dir']`` or ``$MEDVL_CACHE/benchx``).

Split rule: the official train / dev / test sets as train / val / test (as BenchX). Label ``Foreign object``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from tqdm import tqdm

from benchx.datasets.public.common import (
    MaskWriter,
    Shape,
    find_missing,
    image_size,
    read_table,
    require_root,
)
from benchx.datasets.registry import register_loader
from medvl.data.adapters.common import XRAY_MODALITY
from medvl.data.manifest import from_rows, image_ref, make_row

NAME = "object-cxr"
LABELS = ("Foreign object",)
SPLITS = {"train": "train", "dev": "val", "test": "test"}
SHAPES = {0: "rect", 1: "ellipse", 2: "polygon"}
LAYOUT = "train.csv, dev.csv, test.csv and the train/, dev/, test/ image folders"


@register_loader(NAME)
def load(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Manifest of Object-CXR with the official train/dev/test split and object masks."""
    root = require_root(root, NAME, LAYOUT)
    masks = MaskWriter(NAME, root, options)
    rows = []
    for folder, split in SPLITS.items():
        csv = root / f"{folder}.csv"
        table = read_table(csv, NAME, f"the {folder} annotation table", ("annotation",))
        column = next((c for c in ("image_name", "image_path") if c in table.columns), None)
        if column is None:
            raise ValueError(f"{csv}: needs an image_name or image_path column; found {list(table.columns)}")
        names = [PurePosixPath(v).name for v in table[column]]
        paths = [root / folder / name for name in names]
        find_missing(paths, NAME)
        for name, path, annotation in tqdm(list(zip(names, paths, table["annotation"], strict=True)),
                                           desc=f"{NAME} {folder}", unit="image", disable=None):
            shapes = parse_annotation(annotation, f"{csv}: {name}")
            width, height = image_size(path)
            rows.append(make_row(
                patient_id=f"{folder}/{name}", study_id=f"{folder}/{name}", source=NAME,
                images=[image_ref(path, modality=XRAY_MODALITY,
                                  mask=masks.write(f"{folder}_{Path(name).stem}", width, height, shapes))],
                labels={"Foreign object": int(bool(shapes))}, split=split, extra={"n_objects": len(shapes)},
            ))
    return from_rows(rows)


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
