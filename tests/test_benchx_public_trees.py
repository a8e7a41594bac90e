"""Shared builders for the public-dataset tests: tiny images in the formats the datasets ship, card checks.

No tests live here; the ``test_benchx_public_<dataset>.py`` files import these helpers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from medvl.io.dicom_writer import write_image

CARDS = Path(__file__).resolve().parents[1] / "benchx" / "cards" / "public"


def write_png(path: Path, width: int = 16, height: int = 16, value: int = 100) -> Path:
    """A small 8-bit grayscale PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width), value, np.uint8)).save(path)
    return path


def write_jpeg(path: Path, width: int = 16, height: int = 16) -> Path:
    """A small grayscale JPEG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width), 90, np.uint8)).save(path, format="JPEG")
    return path


def write_dicom(path: Path, width: int = 16, height: int = 16, **attributes: str) -> Path:
    """A small real DICOM radiograph (pydicom) with extra header attributes (PatientSex, ViewPosition...)."""
    return write_image(np.full((width, height), 500, np.uint16), path, modality=attributes.pop("Modality", "CR"),
                       attributes=attributes)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """A CSV with the given header line and rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def mask_array(path: str) -> np.ndarray:
    """A mask PNG as a boolean array (rows, cols)."""
    return np.asarray(Image.open(path)) > 0


def load_public(name: str, root: Path, options: dict | None = None, **split: object):
    """The manifest the public card ``name`` gives for the tree at ``root``, with extra adapter ``options`` and
    split-rule options (``work_dir`` keeps masks under the test's folder)."""
    from benchx.cards import load_card
    from benchx.datasets import load_dataset

    card = load_card(CARDS / f"{name}.yaml")
    card = replace(card, options={**card.options, **(options or {})}, split_options={**card.split_options, **split})
    return load_dataset(card, root)


def check_card(name: str, label_space: Sequence[str] | None = None):
    """Validate ``benchx/cards/public/<name>.yaml`` with ``benchx.cards`` plus the public-card conventions
    (an env-var path, a medvl source, a split rule, 0/255 masks); returns the card."""
    from benchx.cards import load_card
    from benchx.split_rules import SPLIT_RULES
    from medvl.data.adapters import ADAPTERS

    path = CARDS / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    card = load_card(path)
    assert card.name == name and card.source in ADAPTERS and card.split_rule in SPLIT_RULES
    assert raw["path"].startswith("${") and raw["path"].endswith("}")
    assert card.split_hash is None and card.fractions == (0.01, 0.1, 1.0)
    assert card.size == 224 and card.ct_window == "none" and card.kind == "2d"
    if card.segmentation is not None:
        assert card.segmentation.encoding == "labels" and list(card.segmentation.classes.values()) == [255]
    if label_space is not None:
        assert card.label_space == tuple(label_space)
    return card
