"""Helpers of the adapters that read a public dataset's tables: layout checks, DICOM headers and masks drawn
from boxes, polygons or run-length codes, written once under a cache folder."""

from __future__ import annotations

import hashlib
import os
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
from PIL import Image, ImageDraw

from medvl.data.adapters.base import SourceAdapter
from medvl.data.adapters.common import normalise_sex, normalise_view, parse_age

Shape = tuple[str, Sequence[float]]
"""A mask shape: (``rect`` | ``ellipse`` with ``(x0, y0, x1, y1)``) or (``polygon`` with ``(x, y, x, y, ...)``)."""


def require_root(root: str | Path, dataset: str, layout: str) -> Path:
    """``root`` as a Path; raises ``FileNotFoundError`` saying what the dataset's folder should hold."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: {dataset} folder not found; it should hold {layout}")
    return path


def require_file(path: Path, dataset: str, what: str) -> Path:
    """``path`` when it is a file; else ``FileNotFoundError`` naming it and what the layout expects there."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; the {dataset} layout expects {what} here")
    return path


def require_dir(path: Path, dataset: str, what: str) -> Path:
    """``path`` when it is a folder; else ``FileNotFoundError`` naming it and what the layout expects there."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: folder not found; the {dataset} layout expects {what} here")
    return path


def read_table(path: Path, dataset: str, what: str, columns: Iterable[str], **read_csv: Any) -> pd.DataFrame:
    """A CSV of the layout as strings (blank cells stay ``""``); refuses a missing file or missing columns."""
    require_file(path, dataset, what)
    table = pd.read_csv(path, dtype=str, keep_default_na=False, **read_csv)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(table.columns)} ({dataset}: {what})")
    return table


def read_id_list(path: Path, dataset: str, what: str) -> list[str]:
    """The non-empty lines of a split list file (first whitespace-separated token of each)."""
    require_file(path, dataset, what)
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def dicom_header(path: Path) -> dict[str, Any]:
    """Rows, columns, modality, view, sex and age from a DICOM header (pixels are not read).

    Raises:
        FileNotFoundError: the file is absent.
        ValueError: the file is not DICOM or lacks Rows/Columns.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: DICOM image not found")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable DICOM file ({exc})") from exc
    if "Rows" not in ds or "Columns" not in ds:
        raise ValueError(f"{path}: DICOM header lacks Rows/Columns; cannot size its mask")
    try:
        age = parse_age(ds.get("PatientAge", ""))
    except ValueError:
        age = None  # an unparseable age is unknown, not an error: the image is still usable
    return {
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "modality": str(ds.get("Modality", "") or "DX"),
        "view": normalise_view(ds.get("ViewPosition", "")),
        "sex": normalise_sex(ds.get("PatientSex", "")),
        "age": age,
    }


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a PNG/JPEG from its header."""
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image not found") from None
    except OSError as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from exc


def draw_mask(width: int, height: int, shapes: Iterable[Shape]) -> np.ndarray:
    """A ``(height, width)`` uint8 mask, 255 inside any of ``shapes`` (pixel coordinates, inclusive boxes)."""
    img = Image.new("L", (width, height), 0)
    pen = ImageDraw.Draw(img)
    for kind, coords in shapes:
        xy = [float(c) for c in coords]
        if kind == "rect":
            pen.rectangle(xy, fill=255)
        elif kind == "ellipse":
            pen.ellipse(xy, fill=255)
        elif kind == "polygon":
            pen.polygon(xy, fill=255)
        else:
            raise ValueError(f"unknown mask shape {kind!r}; expected rect, ellipse or polygon")
    return np.asarray(img)


def cache_root(options: Mapping[str, Any]) -> Path:
    """Where derived files go: option ``work_dir``, else ``$MEDVL_CACHE/masks``, else ``~/.cache/medvl/masks``.
    Never the dataset folder, which may be read-only."""
    if options.get("work_dir"):
        return Path(str(options["work_dir"])).expanduser()
    base = os.environ.get("MEDVL_CACHE") or Path.home() / ".cache" / "medvl"
    return Path(base) / "masks"


class MaskWriter:
    """Writes segmentation masks as 0/255 PNGs under the cache, once: an existing mask is reused.

    Masks live in ``<cache>/<dataset>/<hash of the dataset root>/masks``, so two copies of a dataset never share
    masks. Images without a finding share one empty mask per image size.
    """

    def __init__(self, dataset: str, root: Path, options: Mapping[str, Any]) -> None:
        key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
        self.folder = cache_root(options) / dataset / key / "masks"

    def write(self, name: str, width: int, height: int, shapes: Sequence[Shape]) -> str:
        """The mask PNG for image ``name`` (drawn from ``shapes``), written unless present; returns its path."""
        if not shapes:
            return self._save(f"empty_{width}x{height}", lambda: np.zeros((height, width), np.uint8))
        return self._save(name, lambda: draw_mask(width, height, shapes))

    def write_array(self, name: str, mask: np.ndarray) -> str:
        """A mask given as a boolean or 0/1 array (rows, cols); returns the PNG path."""
        if not mask.any():
            return self._save(f"empty_{mask.shape[1]}x{mask.shape[0]}", lambda: np.zeros(mask.shape, np.uint8))
        return self._save(name, lambda: np.where(mask > 0, 255, 0).astype(np.uint8))

    def _save(self, name: str, make: Any) -> str:
        path = self.folder / f"{name}.png"
        if not path.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            Image.fromarray(make()).save(tmp, format="PNG")
            tmp.replace(path)
        return str(path)


class TableSource(SourceAdapter):
    """A source whose units are the keys of an index read once from its tables (:meth:`read_index`), so a missing
    or malformed table stops ingestion before any unit is read; masks it draws go through :attr:`masks`."""

    @abstractmethod
    def read_index(self) -> dict[str, Any]:
        """``{unit: what the tables say of it}`` in the units' order; raise naming the table when it is unusable."""

    @cached_property
    def index(self) -> dict[str, Any]:
        """:meth:`read_index`, read once."""
        return self.read_index()

    @cached_property
    def masks(self) -> MaskWriter:
        """Writes this source's masks under its mask cache folder."""
        return MaskWriter(self.name, self.root, self.options)

    def units(self) -> list[str]:
        """The index's units, in its order."""
        return list(self.index)
