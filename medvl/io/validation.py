"""Checks shared by the readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medvl.io.errors import MetadataError


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
