"""Siemens MR mosaics: one DICOM image holding a grid of slices (EPI, DWI), as dcm2niix unpacks them.

The slice count and the slice normal come from the Siemens CSA image header (parsed with nibabel's
``csareader``); slice ``k`` lies at ``k * SpacingBetweenSlices`` along ``SliceNormalVector`` from the first,
whose position is the mosaic's ImagePositionPatient moved from the mosaic corner to the tile corner.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medvl.io.dicom_file import number
from medvl.io.errors import MetadataError


def is_mosaic(ds: Dataset) -> bool:
    """True for a Siemens mosaic (``MOSAIC`` in ImageType)."""
    image_type = ds.get("ImageType") or []
    values = [image_type] if isinstance(image_type, str) else list(image_type)
    return any(str(v).upper() == "MOSAIC" for v in values)


def _csareader() -> ModuleType:
    with warnings.catch_warnings():  # nibabel.nicom warns that its DICOM readers are experimental on import
        warnings.simplefilter("ignore")
        from nibabel.nicom import csareader
    return csareader


def _csa_image_header(ds: Dataset, path: Path) -> dict[str, Any]:
    csareader = _csareader()
    try:
        csa = csareader.get_csa_header(ds, "image")
    except csareader.CSAError as exc:
        raise MetadataError(path, f"Siemens mosaic with an unreadable CSA image header: {exc}") from exc
    if csa is None:
        raise MetadataError(path, "Siemens mosaic without a CSA image header: slice count and order unknown")
    return csa


def mosaic_layout(ds: Dataset, path: Path, rows: int, cols: int) -> tuple[int, np.ndarray]:
    """Slice count and slice normal (LPS unit vector) of a mosaic.

    Raises:
        MetadataError: the CSA header lacks NumberOfImagesInMosaic or SliceNormalVector, or the mosaic size
            is not a whole grid of tiles.
    """
    csareader = _csareader()
    csa = _csa_image_header(ds, path)
    n_tiles = csareader.get_n_mosaic(csa)
    normal = csareader.get_slice_normal(csa)
    if not n_tiles or normal is None:
        raise MetadataError(
            path, "Siemens mosaic whose CSA header lacks NumberOfImagesInMosaic or SliceNormalVector"
        )
    grid = math.ceil(math.sqrt(n_tiles))
    if rows % grid or cols % grid:
        raise MetadataError(
            path, f"mosaic of {rows}x{cols} pixels cannot hold a {grid}x{grid} grid of {n_tiles} slices"
        )
    normal = np.asarray(normal, dtype=float)
    return int(n_tiles), normal / np.linalg.norm(normal)


def split_mosaic(image: np.ndarray, n_tiles: int) -> np.ndarray:
    """Cut a mosaic ``(rows, cols[, ...])`` into ``(n_tiles, rows/grid, cols/grid[, ...])`` slices, row-major."""
    grid = math.ceil(math.sqrt(n_tiles))
    tile_rows, tile_cols = image.shape[0] // grid, image.shape[1] // grid
    tiles = [
        image[
            (k // grid) * tile_rows : (k // grid + 1) * tile_rows,
            (k % grid) * tile_cols : (k % grid + 1) * tile_cols,
        ]
        for k in range(n_tiles)
    ]
    return np.stack(tiles)


def tile_positions(
    ds: Dataset,
    path: Path,
    *,
    n_tiles: int,
    normal: np.ndarray,
    row_cosine: np.ndarray,
    col_cosine: np.ndarray,
    pixel_spacing: tuple[float, float],
    position: np.ndarray,
) -> list[np.ndarray]:
    """ImagePositionPatient (LPS) of each slice of a mosaic.

    Raises:
        MetadataError: SpacingBetweenSlices is missing or not positive.
    """
    rows, cols = int(ds.Rows), int(ds.Columns)
    grid = math.ceil(math.sqrt(n_tiles))
    spacing = number(ds, "SpacingBetweenSlices", path)
    if not spacing or spacing <= 0:
        raise MetadataError(
            path, "Siemens mosaic without a positive SpacingBetweenSlices: slice positions unknown"
        )
    row_spacing, col_spacing = pixel_spacing
    shift = (
        row_cosine * col_spacing * (cols - cols / grid) / 2
        + col_cosine * row_spacing * (rows - rows / grid) / 2
    )
    first = position + shift
    return [first + k * spacing * normal for k in range(n_tiles)]
