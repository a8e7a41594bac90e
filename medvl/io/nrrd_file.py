"""NRRD (``.nrrd``, ``.nhdr``) to an image record, with pynrrd.

Geometry comes from ``space``, ``space directions`` and ``space origin``; spaces ``left-posterior-superior``,
``right-anterior-superior`` and ``left-anterior-superior`` are converted to RAS. A file without ``space``
gets an axis-aligned RAS affine from ``spacings`` (1 mm and ``spacing_known`` False when absent) and
``geometry_known`` False: its orientation is nominal. One non-spatial axis is allowed: a 3-valued colour axis
becomes ``channels == 3``, any other becomes T. The declared size is checked against :mod:`medvl.io.limits`
before the data is read.
"""

from __future__ import annotations

from pathlib import Path

import nrrd
import numpy as np

from medvl.io.errors import CorruptFileError, MedvlIOError, MetadataError, UnsupportedLayoutError
from medvl.io.limits import check_decoded_size
from medvl.io.metadata import empty_metadata
from medvl.io.record import ImageRecord
from medvl.io.validation import checked_affine

_SPACE_TO_RAS = {
    "left-posterior-superior": np.diag([-1.0, -1.0, 1.0]),
    "lps": np.diag([-1.0, -1.0, 1.0]),
    "right-anterior-superior": np.eye(3),
    "ras": np.eye(3),
    "left-anterior-superior": np.diag([-1.0, 1.0, 1.0]),
    "las": np.diag([-1.0, 1.0, 1.0]),
}
_COLOUR_KINDS = ("rgb-color", "3-color", "hsv-color", "xyz-color")


def load_nrrd(path: Path) -> ImageRecord:
    """Load a NRRD file.

    Raises:
        CorruptFileError: pynrrd cannot parse the header or data.
        MetadataError: an unknown ``space``, or space directions that do not match the axes.
        UnsupportedLayoutError: more than one non-spatial axis, or not 2-3 spatial axes.
        DecodedSizeError: the declared size exceeds the decoded-size limit.
    """
    try:
        sizes = nrrd.read_header(str(path)).get("sizes", [])
        check_decoded_size(path, int(np.prod(sizes, dtype=np.int64)) * 4)
        data, header = nrrd.read(str(path), index_order="F")
    except MedvlIOError:
        raise
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, OSError, zlib.error...
        raise CorruptFileError(path, f"NRRD file cannot be read: {exc}") from exc
    spatial, extra = _split_axes(header, data.ndim, path)
    kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * data.ndim)]
    channels = 1
    if extra is not None:
        colour = kinds[extra] in _COLOUR_KINDS and data.shape[extra] == 3
        if not colour and len(spatial) != 3:
            raise UnsupportedLayoutError(
                path, f"a non-spatial axis ({kinds[extra]}) on a {len(spatial)}-D image"
            )
        data = np.moveaxis(data, extra, -1)
        channels = 3 if colour else 1
    if not 2 <= len(spatial) <= 3:
        raise UnsupportedLayoutError(path, f"{len(spatial)} spatial axes; medvl reads 2 or 3")
    affine, spacing_known = _affine(header, spatial, path)
    try:
        with np.errstate(over="raise"):
            array = np.asarray(data, dtype=np.float32)
    except FloatingPointError as exc:
        raise MetadataError(path, "voxel values beyond the float32 range (about 3.4e38)") from exc
    return ImageRecord(
        array=array,
        affine=checked_affine(affine, path),
        modality="OT",
        photometric="RGB" if channels == 3 else "MONOCHROME2",
        metadata=empty_metadata(spacing_known=spacing_known, geometry_known=header.get("space") is not None),
        source=str(path),
        channels=channels,
    )


def _split_axes(header: dict, ndim: int, path: Path) -> tuple[list[int], int | None]:
    directions = header.get("space directions")
    if directions is None:
        kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * ndim)]
        spatial = [i for i, kind in enumerate(kinds) if kind in ("domain", "space")]
    else:
        rows = np.asarray(directions, dtype=float)
        spatial = [i for i in range(ndim) if np.all(np.isfinite(rows[i]))]
    others = [i for i in range(ndim) if i not in spatial]
    if len(others) > 1:
        raise UnsupportedLayoutError(
            path, f"{len(others)} non-spatial axes; medvl reads at most one (colour or time)"
        )
    return spatial, (others[0] if others else None)


def _affine(header: dict, spatial: list[int], path: Path) -> tuple[np.ndarray, bool]:
    affine = np.eye(4)
    space = header.get("space")
    if space is None:
        spacings = np.asarray(header.get("spacings", [np.nan] * (max(spatial) + 1)), dtype=float)[spatial]
        known = bool(np.all(np.isfinite(spacings) & (spacings > 0)))
        for column, value in enumerate(spacings if known else np.ones(len(spatial))):
            affine[column, column] = value
        return affine, known
    to_ras = _SPACE_TO_RAS.get(str(space).lower())
    if to_ras is None:
        raise MetadataError(
            path, f"NRRD space {space!r} is not patient-based (LPS, RAS or LAS): orientation unknown"
        )
    directions = np.asarray(header["space directions"], dtype=float)[spatial]
    if directions.shape[1] != 3:
        raise MetadataError(path, f"space directions {directions.tolist()} are not 3-D vectors")
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    affine[:3, : len(spatial)] = to_ras @ directions.T
    affine[:3, 3] = to_ras @ np.nan_to_num(origin)
    if len(spatial) == 2:
        normal = np.cross(affine[:3, 0], affine[:3, 1])
        affine[:3, 2] = normal / np.linalg.norm(normal)
    return affine, True
