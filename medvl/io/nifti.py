"""NIfTI-1/2 (``.nii``, ``.nii.gz``) to an image record, with nibabel.

The array keeps the file's voxel order and the affine is nibabel's (sform, else qform), already RAS+.
Scaling (``scl_slope``/``scl_inter``) is applied. RGB24/RGBA32 voxels become ``channels == 3`` (alpha
dropped); trailing singleton axes beyond the third are squeezed; more than four axes are refused.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medvl.io.errors import CorruptFileError, CorruptPixelDataError, NotAnImageError, UnsupportedLayoutError
from medvl.io.metadata import empty_metadata
from medvl.io.record import ImageRecord
from medvl.io.validation import checked_affine

_SUFFIXES = (".nii", ".nii.gz", ".hdr")
_TIME_UNIT_SECONDS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def load_nifti(path: Path) -> ImageRecord:
    """Load a NIfTI file.

    Raises:
        NotAnImageError: the name does not end with ``.nii``, ``.nii.gz`` or ``.hdr`` (nibabel needs it).
        CorruptFileError: nibabel cannot parse the header.
        CorruptPixelDataError: the voxel data is truncated or unreadable.
        UnsupportedLayoutError: more than four axes, a 1-D image, or CIFTI (not a volume).
        MetadataError: the affine is singular or not finite.
    """
    if not path.name.lower().endswith(_SUFFIXES):
        raise NotAnImageError(path, f"NIfTI content in a file not named {' / '.join(_SUFFIXES)}: rename it")
    try:
        image = nib.load(path)
    except Exception as exc:  # nibabel raises ImageFileError, HeaderDataError, OSError, EOFError...
        raise CorruptFileError(path, f"NIfTI header cannot be read: {exc}") from exc
    if not isinstance(image, nib.spatialimages.SpatialImage):
        raise UnsupportedLayoutError(
            path, f"a {type(image).__name__} (surface/connectivity data), not a volume"
        )
    try:
        raw = np.asanyarray(image.dataobj)
    except Exception as exc:
        raise CorruptPixelDataError(
            path, f"NIfTI voxel data cannot be read (truncated file?): {exc}"
        ) from exc
    array, channels = _voxels(raw, path)
    metadata = empty_metadata(spacing_known=True, frame_times=_frame_times(image, array, channels))
    return ImageRecord(
        array=array,
        affine=checked_affine(image.affine, path),
        modality="OT",
        photometric="RGB" if channels == 3 else "MONOCHROME2",
        metadata=metadata,
        source=str(path),
        channels=channels,
    )


def _voxels(raw: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    channels = 1
    if raw.dtype.names:
        fields = [name for name in ("R", "G", "B") if name in raw.dtype.names]
        if len(fields) != 3:
            raise UnsupportedLayoutError(path, f"structured voxels {raw.dtype.names} are not RGB")
        raw, channels = np.stack([raw[name] for name in fields], axis=-1), 3
    array = np.asarray(raw, dtype=np.float32)
    n_axes = array.ndim - (1 if channels == 3 else 0)
    while n_axes > 3 and array.shape[n_axes - 1] == 1:
        array = array.reshape(array.shape[: n_axes - 1] + array.shape[n_axes:])
        n_axes -= 1
    if not 2 <= n_axes <= 4 or (channels == 3 and n_axes == 4):
        raise UnsupportedLayoutError(
            path, f"voxel array of shape {raw.shape} has {n_axes} axes; medvl reads 2 to 4 (X, Y, Z, T)"
        )
    return array, channels


def _frame_times(image: nib.Nifti1Image, array: np.ndarray, channels: int) -> list[float] | None:
    if array.ndim - (1 if channels == 3 else 0) != 4:
        return None
    step = float(image.header.get_zooms()[3]) if len(image.header.get_zooms()) > 3 else 0.0
    scale = _TIME_UNIT_SECONDS.get(image.header.get_xyzt_units()[1])
    if step <= 0 or scale is None:
        return None
    return [k * step * scale for k in range(array.shape[3])]
