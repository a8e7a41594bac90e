"""Checks shared by the readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medvl.io.errors import MetadataError
from medvl.io.record import ImageRecord

_FORMATS_WITHOUT_DISPLAY_ORDER = ("nifti", "nrrd")


def checked_affine(affine: np.ndarray, path: Path) -> np.ndarray:
    """``affine`` as a float 4x4 array, refused when it cannot map voxels to space.

    Raises:
        MetadataError: not finite, or its 3x3 part is singular (a zero voxel size).
    """
    matrix = np.asarray(affine, dtype=float)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise MetadataError(path, f"voxel-to-world affine is not a finite 4x4 matrix: {matrix.tolist()}")
    if abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
        raise MetadataError(
            path, "voxel-to-world affine is singular (a voxel size of zero): geometry unknown"
        )
    return matrix


def require_known_orientation(record: ImageRecord) -> None:
    """Refuse a NIfTI or NRRD record whose header states no orientation (``geometry_known`` False): its voxel
    order has no display convention, so it may be mirrored. The training cache applies this; DICOM frames and
    PNG/JPEG images without geometry keep their rows and columns as displayed and pass.

    Raises:
        MetadataError: the orientation is unknown.
    """
    if (
        record.metadata.get("geometry_known", True)
        or record.metadata.get("format") not in _FORMATS_WITHOUT_DISPLAY_ORDER
    ):
        return
    raise MetadataError(
        record.source,
        "orientation unknown (NIfTI qform_code = sform_code = 0, or NRRD without space): the voxel order may be "
        "mirrored, so it is not used for training; set the header's sform/qform (or space) first",
    )
