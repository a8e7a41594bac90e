"""``siim-acr``: SIIM-ACR Pneumothorax Segmentation, stage 1 training data (DICOM + run-length masks).

Layout (Kaggle ``siim-acr-pneumothorax-segmentation``, stage 1)::

    train-rle.csv                                         ImageId, EncodedPixels (``-1`` = no pneumothorax;
                                                          several rows = several regions of one image)
    dicom-images-train/<StudyUID>/<SeriesUID>/<ImageId>.dcm

``EncodedPixels`` is the stage 1 *relative* run-length encoding: pairs (offset from the end of the previous
run, run length) over the image in column-major order. The regions are decoded, united and written as a
0/255 mask PNG under the cache (``options['work_dir']`` or ``$MEDVL_CACHE/benchx``).

Split rule: BenchX splits SIIM (its PNG copy) stratified on the pneumothorax label with ``random_state=42``;
the stage 1 test images have no labels in ``train-rle.csv``, so the labelled images, sorted by ImageId, are
split as BenchX splits RSNA and TBX11K: stratified 70% train, the rest halved into val and test (the
70/15/15 proportions GLoRIA and MGCA use for SIIM, but one row per image so no image spans two splits).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchx.datasets.public.common import (
    MaskWriter,
    benchx_70_15_15,
    dicom_header,
    read_table,
    require_dir,
    require_root,
)
from benchx.datasets.registry import register_loader
from medvl.data.manifest import from_rows, image_ref, make_row

NAME = "siim-acr"
LABELS = ("Pneumothorax",)
LAYOUT = "train-rle.csv and dicom-images-train/<study>/<series>/<ImageId>.dcm"


@register_loader(NAME)
def load(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Manifest of the SIIM-ACR stage 1 training images with decoded masks and a stratified 70/15/15 split."""
    root = require_root(root, NAME, LAYOUT)
    csv = root / "train-rle.csv"
    table = read_table(csv, NAME, "the run-length mask table", ("ImageId", "EncodedPixels"), skipinitialspace=True)
    encodings = table.groupby("ImageId", sort=True)["EncodedPixels"].apply(list).to_dict()
    labels = {image: int(any(e.strip() != "-1" for e in runs)) for image, runs in encodings.items()}
    files = {p.stem: p for p in require_dir(root / "dicom-images-train", NAME, "the training DICOM tree").rglob("*.dcm")}
    ids = sorted(encodings)
    splits = benchx_70_15_15(ids, [labels[i] for i in ids], NAME)
    masks = MaskWriter(NAME, root, options)
    rows = []
    for image in tqdm(ids, desc=NAME, unit="image", disable=None):
        path = files.get(image, root / "dicom-images-train" / f"{image}.dcm")
        header = dicom_header(path)
        mask = np.zeros((header["rows"], header["columns"]), bool)
        for runs in encodings[image]:
            if runs.strip() != "-1":
                mask |= rle_decode(runs, header["columns"], header["rows"], f"{csv}: ImageId {image}")
        rows.append(make_row(
            patient_id=image, study_id=image, source=NAME,
            images=[image_ref(path, modality=header["modality"], view=header["view"],
                              mask=masks.write_array(image, mask))],
            labels={"Pneumothorax": labels[image]}, split=splits[image],
            sex=header["sex"], age=header["age"], view=header["view"],
            extra={"n_regions": sum(r.strip() != "-1" for r in encodings[image])},
        ))
    return from_rows(rows)


def rle_decode(runs: str, width: int, height: int, where: str = "EncodedPixels") -> np.ndarray:
    """A ``(height, width)`` boolean mask from SIIM stage 1 relative, column-major run-length pairs.

    Raises:
        ValueError: not an even number of integers, or a run beyond the image.
    """
    try:
        values = [int(v) for v in runs.split()]
    except ValueError:
        raise ValueError(f"{where}: EncodedPixels {runs[:40]!r} is not a list of integers") from None
    if len(values) % 2:
        raise ValueError(f"{where}: EncodedPixels has an odd number of values ({len(values)})")
    flat = np.zeros(width * height, bool)
    position = 0
    for offset, length in zip(values[0::2], values[1::2], strict=True):
        position += offset
        if offset < 0 or length < 0 or position + length > flat.size:
            raise ValueError(f"{where}: a run ends beyond the {width}x{height} image; is this stage 2 (absolute) RLE?")
        flat[position:position + length] = True
        position += length
    return flat.reshape(width, height).T
