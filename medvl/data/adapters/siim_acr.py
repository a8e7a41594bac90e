"""``siim-acr``: SIIM-ACR Pneumothorax Segmentation, stage 1 training data (DICOM + run-length masks).

Layout (Kaggle ``siim-acr-pneumothorax-segmentation``, stage 1)::

    train-rle.csv                                         ImageId, EncodedPixels (``-1`` = no pneumothorax;
                                                          several rows = several regions of one image)
    dicom-images-train/<StudyUID>/<SeriesUID>/<ImageId>.dcm

``EncodedPixels`` is the stage 1 *relative* run-length encoding: pairs (offset from the end of the previous
run, run length) over the image in column-major order. The regions are decoded, united and written as a
0/255 mask PNG under the mask cache (option ``work_dir`` or ``$MEDVL_CACHE/masks``). The stage 1 test images
have no labels and are not read; the source has no split. Label ``Pneumothorax``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medvl.data.adapters.base import UnitResult
from medvl.data.adapters.tables import TableSource, dicom_header, read_table, require_dir, require_root
from medvl.data.manifest import image_ref, make_row

TABLE = "train-rle.csv"
LAYOUT = "train-rle.csv and dicom-images-train/<study>/<series>/<ImageId>.dcm"


class SiimAcrAdapter(TableSource):
    """Reads the SIIM-ACR stage 1 training images; a unit is one ``ImageId``."""

    name = "siim-acr"
    description = "SIIM-ACR Pneumothorax (stage 1): train-rle.csv and dicom-images-train/<study>/<series>/*.dcm"
    licence = "SIIM-ACR Pneumothorax Segmentation competition terms (non-commercial research)"

    def read_index(self) -> dict[str, tuple[list[str], Path]]:
        """``{ImageId: ([EncodedPixels, ...], its DICOM file)}`` sorted by ImageId."""
        require_root(self.root, self.name, LAYOUT)
        table = read_table(self.root / TABLE, self.name, "the run-length mask table", ("ImageId", "EncodedPixels"),
                           skipinitialspace=True)
        tree = require_dir(self.root / "dicom-images-train", self.name, "the training DICOM tree")
        files = {p.stem: p for p in tree.rglob("*.dcm")}
        encodings = table.groupby("ImageId", sort=True)["EncodedPixels"].apply(list).to_dict()
        return {image: (runs, files.get(image, tree / f"{image}.dcm")) for image, runs in encodings.items()}

    def read_unit(self, unit: str) -> UnitResult:
        """One image with its decoded mask, label and demographics from the DICOM header."""
        encodings, path = self.index[unit]
        header = dicom_header(path)
        runs = [r for r in encodings if r.strip() != "-1"]
        mask = np.zeros((header["rows"], header["columns"]), bool)
        for encoded in runs:
            mask |= rle_decode(encoded, header["columns"], header["rows"], f"{self.root / TABLE}: ImageId {unit}")
        row = make_row(
            patient_id=unit, study_id=unit, source=self.name,
            images=[image_ref(path, modality=header["modality"], view=header["view"],
                              mask=self.masks.write_array(unit, mask))],
            labels={"Pneumothorax": int(bool(runs))}, sex=header["sex"], age=header["age"], view=header["view"],
            extra={"n_regions": len(runs)},
        )
        return UnitResult([row])


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
