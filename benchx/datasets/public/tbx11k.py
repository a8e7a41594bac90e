"""``tbx11k``: TBX11K Simplified (Kaggle ``vbookshelf/tbx11k-simplified``), one row per image.

Layout::

    data.csv       fname, image_height, image_width, source, bbox, target, tb_type, image_type
                   (one row per box; ``bbox`` is ``none`` or ``{'xmin': .., 'ymin': .., 'width': .., 'height': ..}``;
                   ``target`` tb / no_tb; ``image_type`` healthy / sick_but_no_tb / tb)
    images/<fname>

Labels: one-hot ``image_type`` (multiclass). Split rule (BenchX ``preprocess_tbx11k.py``): images sorted by
fname, stratified on ``target``, 70% train, the rest halved into val and test (``random_state=42``).
TB boxes become a 0/255 mask PNG under the cache (``options['work_dir']`` or ``$MEDVL_CACHE/benchx``).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from benchx.datasets.public.common import MaskWriter, benchx_70_15_15, find_missing, read_table, require_root
from benchx.datasets.registry import register_loader
from medvl.data.adapters.common import XRAY_MODALITY
from medvl.data.manifest import from_rows, image_ref, make_row

NAME = "tbx11k"
LABELS = ("healthy", "sick_but_no_tb", "tb")
COLUMNS = ("fname", "image_height", "image_width", "bbox", "target", "image_type")
LAYOUT = "data.csv and images/"


@register_loader(NAME)
def load(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Manifest of TBX11K Simplified with BenchX's 70/15/15 split and TB box masks."""
    root = require_root(root, NAME, LAYOUT)
    csv = root / "data.csv"
    table = read_table(csv, NAME, "the image/box table", COLUMNS)
    groups = dict(list(table.groupby("fname", sort=True)))
    firsts = {name: group.iloc[0] for name, group in groups.items()}
    for name, first in firsts.items():
        if first["image_type"] not in LABELS:
            raise ValueError(f"{csv}: {name} has image_type {first['image_type']!r}; expected one of {list(LABELS)}")
    ids = list(groups)
    splits = benchx_70_15_15(ids, [firsts[i]["target"] for i in ids], NAME)
    find_missing([root / "images" / name for name in ids], NAME)
    masks = MaskWriter(NAME, root, options)
    rows = []
    for name in tqdm(ids, desc=NAME, unit="image", disable=None):
        first = firsts[name]
        shapes = [("rect", _corners(r["bbox"], f"{csv}: {name}")) for r in groups[name].to_dict("records")
                  if r["target"] == "tb" and r["bbox"] != "none"]
        mask = masks.write(Path(name).stem, int(first["image_width"]), int(first["image_height"]), shapes)
        rows.append(make_row(
            patient_id=name, study_id=name, source=NAME,
            images=[image_ref(root / "images" / name, modality=XRAY_MODALITY, mask=mask)],
            labels={label: int(label == first["image_type"]) for label in LABELS}, split=splits[name],
            extra={"source": first.get("source", ""), "tb_type": first.get("tb_type", ""), "n_boxes": len(shapes)},
        ))
    return from_rows(rows)


def _corners(text: str, where: str) -> tuple[float, float, float, float]:
    try:
        box = ast.literal_eval(text)
        x, y, w, h = (float(box[k]) for k in ("xmin", "ymin", "width", "height"))
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise ValueError(f"{where}: bbox {text!r} is not {{'xmin', 'ymin', 'width', 'height'}}") from None
    return x, y, x + w - 1, y + h - 1
