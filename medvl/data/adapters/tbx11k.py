"""``tbx11k``: TBX11K Simplified (Kaggle ``vbookshelf/tbx11k-simplified``), one row per image.

Layout::

    data.csv       fname, image_height, image_width, source, bbox, target, tb_type, image_type
                   (one row per box; ``bbox`` is ``none`` or ``{'xmin': .., 'ymin': .., 'width': .., 'height': ..}``;
                   ``target`` tb / no_tb; ``image_type`` healthy / sick_but_no_tb / tb)
    images/<fname>

Labels: one-hot ``image_type`` (``tb`` exactly when ``target`` is tb). The source has no split. TB boxes become
a 0/255 mask PNG under the mask cache (option ``work_dir`` or ``$MEDVL_CACHE/masks``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd

from medvl.data.adapters.base import UnitResult
from medvl.data.adapters.common import XRAY_MODALITY, keep_readable
from medvl.data.adapters.tables import TableSource, read_table, require_root
from medvl.data.manifest import image_ref, make_row

LABELS = ("healthy", "sick_but_no_tb", "tb")
COLUMNS = ("fname", "image_height", "image_width", "bbox", "target", "image_type")
TABLE = "data.csv"
LAYOUT = "data.csv and images/"


class Tbx11kAdapter(TableSource):
    """Reads TBX11K Simplified; a unit is one image (``fname``)."""

    name = "tbx11k"
    description = "TBX11K Simplified: data.csv (one row per box) and images/"
    licence = "CC BY 4.0 (TBX11K, Liu et al. CVPR 2020)"

    def read_index(self) -> dict[str, pd.DataFrame]:
        """The rows of each image, sorted by fname; an unknown ``image_type`` is refused."""
        csv = require_root(self.root, self.name, LAYOUT) / TABLE
        table = read_table(csv, self.name, "the image/box table", COLUMNS)
        odd = table[~table["image_type"].isin(LABELS)]
        if len(odd):
            raise ValueError(f"{csv}: {odd['fname'].iloc[0]} has image_type {odd['image_type'].iloc[0]!r}; expected "
                             f"one of {list(LABELS)}")
        return dict(list(table.groupby("fname", sort=True)))

    def read_unit(self, unit: str) -> UnitResult:
        """One image with its TB box mask and one-hot ``image_type``."""
        group = self.index[unit]
        first = group.iloc[0]
        kept, rejected = keep_readable([image_ref(self.root / "images" / unit, modality=XRAY_MODALITY)])
        if not kept:
            return UnitResult([], rejected)
        shapes = [("rect", _corners(r["bbox"], f"{self.root / TABLE}: {unit}")) for r in group.to_dict("records")
                  if r["target"] == "tb" and r["bbox"] != "none"]
        mask = self.masks.write(Path(unit).stem, int(first["image_width"]), int(first["image_height"]), shapes)
        row = make_row(
            patient_id=unit, study_id=unit, source=self.name,
            images=[image_ref(self.root / "images" / unit, modality=XRAY_MODALITY, mask=mask)],
            labels={label: int(label == first["image_type"]) for label in LABELS},
            extra={"source": first.get("source", ""), "tb_type": first.get("tb_type", ""), "n_boxes": len(shapes)},
        )
        return UnitResult([row])


def _corners(text: str, where: str) -> tuple[float, float, float, float]:
    try:
        box = ast.literal_eval(text)
        x, y, w, h = (float(box[k]) for k in ("xmin", "ymin", "width", "height"))
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise ValueError(f"{where}: bbox {text!r} is not {{'xmin', 'ymin', 'width', 'height'}}") from None
    return x, y, x + w - 1, y + h - 1
