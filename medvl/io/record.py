"""The one in-memory record for medical images that every reader returns and every consumer takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ImageRecord:
    """An image or volume in physical units with its geometry.

    Attributes:
        array: pixel values in physical units (HU for CT after rescale, MONOCHROME1 already inverted), float32.
            Axes follow the voxel index order of ``affine`` (the NIfTI / MONAI convention): ``(X, Y)`` for a
            single image (X = DICOM column, Y = DICOM row) and ``(X, Y, Z)`` for a volume or a multi-frame
            object (Z = slice, in order along the slice normal). RGB data keeps a trailing channel axis of 3
            and ``channels == 3``.
        affine: 4x4 matrix mapping voxel indices ``(i, j, k, 1)`` to RAS+ millimetres.
        modality: DICOM modality code (``CT``, ``MR``, ``CR``, ``DX``...) or ``OT`` when unknown.
        photometric: photometric interpretation of the source (``MONOCHROME1``, ``MONOCHROME2``, ``RGB``...).
        metadata: source metadata (``patient_id``, ``study_uid``, ``series_uid``, ``accession``,
            ``view_position``, ``series_description``, ``window_center``, ``window_width``, ...).
        source: the file or folder the record was read from.
        channels: 1 for grayscale, 3 for RGB.
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = "OT"
    photometric: str = "MONOCHROME2"
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    channels: int = 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape of the spatial axes (without a colour channel)."""
        return tuple(self.array.shape[:-1] if self.channels > 1 else self.array.shape)

    @property
    def is_volume(self) -> bool:
        """True when the record has three spatial axes."""
        return len(self.spatial_shape) == 3

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each spatial axis, from the affine's column norms."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return tuple(float(v) for v in norms[: len(self.spatial_shape)])

    def display_array(self) -> np.ndarray:
        """The pixels as a viewer shows them: ``(rows, cols)`` or ``(slices, rows, cols)`` (channels last)."""
        nd = len(self.spatial_shape)
        order = tuple(reversed(range(nd))) + ((nd,) if self.channels > 1 else ())
        return np.ascontiguousarray(self.array.transpose(order))
