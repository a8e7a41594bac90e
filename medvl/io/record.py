"""The one in-memory record for medical images that every reader returns and every consumer takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ImageRecord:
    """An image, volume or volume time series in physical units with its geometry.

    Attributes:
        array: pixel values in physical units (HU for CT after rescale, MONOCHROME1 already inverted), float32.
            Axes follow the voxel index order of ``affine`` (the NIfTI / MONAI convention), X = DICOM column,
            Y = DICOM row, Z = slice in order along the slice normal, T = time point:

            - ``(X, Y)`` a single image; ``(X, Y, 3)`` an RGB image (``channels == 3``);
            - ``(X, Y, Z)`` a volume or multi-frame object; ``(X, Y, Z, 3)`` an RGB volume;
            - ``(X, Y, Z, T)`` a grayscale volume time series (fMRI, perfusion, cine), as dcm2niix writes it.
        affine: 4x4 matrix mapping voxel indices ``(i, j, k, 1)`` to RAS+ millimetres (the time axis, when
            present, is not part of it). A 2D record's third column is the image normal scaled by the
            slice thickness (1 mm when unknown).
        modality: DICOM modality code (``CT``, ``MR``, ``CR``, ``DX``...) or ``OT`` when unknown.
        photometric: photometric interpretation of the source (``MONOCHROME1``, ``MONOCHROME2``, ``RGB``,
            ``YBR_FULL_422``, ``PALETTE COLOR``...). Colour sources are always converted to RGB in ``array``.
        metadata: source metadata; see ``docs/io.md`` for the keys (``patient_id``, ``study_uid``,
            ``series_uid``, ``spacing_known``, ``window_center``, ``slice_positions_mm``, ``frame_times``...).
        source: the file or folder the record was read from.
        channels: 1 for grayscale, 3 for RGB (a trailing axis of length 3).
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = "OT"
    photometric: str = "MONOCHROME2"
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    channels: int = 1

    def __post_init__(self) -> None:
        if np.shape(self.affine) != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {np.shape(self.affine)}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.channels == 3 and (self.array.ndim == 0 or self.array.shape[-1] != 3):
            raise ValueError(f"an RGB record needs a trailing axis of 3, got shape {self.array.shape}")
        n_axes = self._n_axes
        if not 2 <= n_axes <= 4 or (n_axes == 4 and self.channels == 3):
            raise ValueError(
                f"array shape {self.array.shape} with channels={self.channels} is not (X, Y[, Z[, T]])[, 3] "
                "(RGB time series are not represented)"
            )

    @property
    def _n_axes(self) -> int:
        return self.array.ndim - (1 if self.channels > 1 else 0)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape of the spatial axes: ``(X, Y)`` or ``(X, Y, Z)``, without time or colour axes."""
        return tuple(int(v) for v in self.array.shape[: min(self._n_axes, 3)])

    @property
    def n_timepoints(self) -> int:
        """Number of time points: the length of the T axis, 1 when there is none."""
        return int(self.array.shape[3]) if self._n_axes == 4 else 1

    @property
    def is_volume(self) -> bool:
        """True when the record has three spatial axes (with or without a time axis)."""
        return len(self.spatial_shape) == 3

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each spatial axis, from the affine's column norms."""
        norms = np.linalg.norm(np.asarray(self.affine, dtype=float)[:3, :3], axis=0)
        return tuple(float(v) for v in norms[: len(self.spatial_shape)])

    def display_array(self) -> np.ndarray:
        """The pixels as a viewer shows them: ``(rows, cols)``, ``(slices, rows, cols)`` or
        ``(time, slices, rows, cols)``, channels last.

        Rows and columns follow the array axes; call :func:`medvl.io.reorient` with ``"LPS"`` first to get
        axial slices the radiological way (patient right on the viewer's left, anterior up).
        """
        nd = len(self.spatial_shape)
        time = (3,) if self._n_axes == 4 else ()
        order = time + tuple(reversed(range(nd))) + ((self.array.ndim - 1,) if self.channels > 1 else ())
        return np.ascontiguousarray(self.array.transpose(order))
