"""``covidx``: COVIDx CXR-4 (Kaggle ``andyczhao/covidx-cxr2``, version 9), one row per image.

Layout::

    train.txt, val.txt, test.txt    space-separated, no header: patient_id filename class data_source
                                    (class ``positive`` / ``negative``)
    train/<filename>, val/<filename>, test/<filename>

Split rule: the official lists (as BenchX). Label ``COVID-19``: 1 for ``positive``, 0 for ``negative``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from benchx.datasets.public.common import find_missing, require_file, require_root
from benchx.datasets.registry import register_loader
from medvl.data.adapters.common import XRAY_MODALITY
from medvl.data.manifest import from_rows, image_ref, make_row

NAME = "covidx"
LABELS = ("COVID-19",)
SPLITS = ("train", "val", "test")
CLASSES = {"positive": 1, "negative": 0}
LAYOUT = "train.txt, val.txt, test.txt and the train/, val/, test/ image folders"


@register_loader(NAME)
def load(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Manifest of COVIDx CXR-4 with its official train/val/test lists."""
    root = require_root(root, NAME, LAYOUT)
    rows = []
    for split in SPLITS:
        listing = require_file(root / f"{split}.txt", NAME, f"the official {split} list")
        entries = [line.split() for line in listing.read_text().splitlines() if line.strip()]
        for number, fields in enumerate(entries, start=1):
            if len(fields) != 4 or fields[2] not in CLASSES:
                raise ValueError(f"{listing}: line {number} is not 'patient_id filename positive|negative source'")
        paths = [root / split / f[1] for f in entries]
        find_missing(paths, NAME)
        rows += [
            make_row(patient_id=patient, study_id=f"{split}/{filename}", source=NAME,
                     images=[image_ref(path, modality=XRAY_MODALITY)], labels={"COVID-19": CLASSES[label]},
                     split=split, extra={"data_source": source})
            for (patient, filename, label, source), path in zip(entries, paths, strict=True)
        ]
    return from_rows(rows)
