"""Axis codes and reorientation of image records (array and affine kept consistent).

A code names, for each array axis in turn, the patient direction its index increases towards: ``"RAS"``
(NIfTI canonical: X to the right, Y anterior, Z superior), ``"LPS"`` (DICOM: for axial slices,
``display_array()`` then shows them the radiological way). Oblique axes are matched to their closest
direction, as nibabel's ``io_orientation`` does; the affine stays exact.

A 2D record keeps its two axes: they are ordered and flipped to follow the code for the two directions
they run along, and the through-plane letter is ignored.
"""

from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np

from medvl.io.record import ImageRecord

_PAIRS = ({"L", "R"}, {"A", "P"}, {"S", "I"})


def axis_codes(record: ImageRecord) -> str:
    """The direction each spatial axis of the record points to, e.g. ``"LPS"`` or ``"RAS"``."""
    return "".join(nib.aff2axcodes(_orientation_affine(record)))[: len(record.spatial_shape)]


def reorient(record: ImageRecord, code: str = "RAS") -> ImageRecord:
    """The same image with its axes permuted and flipped so that they follow ``code``.

    Args:
        record: any record (2D, 3D, with time or colour axes).
        code: three letters, one of L/R, one of A/P, one of S/I, e.g. ``"RAS"``, ``"LPS"``, ``"PIL"``.

    Returns:
        A new record (the array is a view when possible); time and colour axes stay last. Metadata is
        copied, ``slice_positions_mm`` reversed when the slice axis is flipped and dropped when it moves.

    Raises:
        ValueError: ``code`` is not a valid orientation code.
    """
    code = code.upper()
    if len(code) != 3 or any(len(pair & set(code)) != 1 for pair in _PAIRS):
        raise ValueError(f"orientation code {code!r} needs one letter of each pair L/R, A/P, S/I")
    n_spatial = len(record.spatial_shape)
    current = nib.orientations.io_orientation(_orientation_affine(record))[:n_spatial]
    target = nib.orientations.axcodes2ornt(tuple(code))
    target = target[np.isin(target[:, 0], current[:, 0])]  # a 2D record: the directions its axes run along
    transform = nib.orientations.ornt_transform(current, target)
    permutation = [int(axis) for axis in np.argsort(transform[:, 0])]
    flips = [bool(transform[axis, 1] < 0) for axis in permutation]
    new_to_old = np.eye(4)
    spatial = [0, 1, 3] if n_spatial == 2 else [0, 1, 2, 3]
    new_to_old[np.ix_(spatial, spatial)] = nib.orientations.inv_ornt_aff(transform, record.spatial_shape)
    return replace(
        record,
        array=nib.orientations.apply_orientation(record.array, transform),
        affine=np.asarray(record.affine, dtype=float) @ new_to_old,
        metadata=_reoriented_metadata(record.metadata, permutation, flips),
    )


def _orientation_affine(record: ImageRecord) -> np.ndarray:
    """The affine, with a 2D record's third column replaced by the image normal (it may be anything)."""
    affine = np.array(record.affine, dtype=float)
    if len(record.spatial_shape) == 2:
        normal = np.cross(affine[:3, 0], affine[:3, 1])
        affine[:3, 2] = normal / np.linalg.norm(normal)
    return affine


def _reoriented_metadata(metadata: dict, permutation: list[int], flips: list[bool]) -> dict:
    result = dict(metadata)
    positions = metadata.get("slice_positions_mm")
    if positions is not None and len(permutation) == 3:
        if permutation[2] != 2:
            result["slice_positions_mm"] = None
        elif flips[2]:
            result["slice_positions_mm"] = list(reversed(positions))
    return result
