"""NIfTI-1/2 (``.nii``, ``.nii.gz``) to an image record, with nibabel.

The array keeps the file's voxel order and the affine is nibabel's (sform, else qform), already RAS+.
Geometry policy:

- ``qform_code = sform_code = 0``: the header states no orientation or position. The affine is nibabel's
  fallback from the voxel sizes, marked nominal: ``geometry_known`` and ``spacing_known`` are False.
- both codes set and the two matrices place some corner voxel more than :data:`FORM_TOLERANCE_VOXELS` of a
  voxel apart: if they differ in the direction of an axis (a flip or an axis swap) the file is refused
  (:class:`MetadataError`: nothing says which is right); otherwise the sform is used and a warning says by
  how much the qform differs (a registration stored in the sform is the usual cause).

Scaling (``scl_slope``/``scl_inter``) is applied; values beyond float32 are refused. RGB24/RGBA32 voxels
become ``channels == 3`` (alpha dropped); trailing singleton axes beyond the third are squeezed; more than four
axes are refused. The decoded size is checked against :mod:`medvl.io.limits` before any voxel is read.
"""

from __future__ import annotations

import warnings
from itertools import product
from pathlib import Path

import nibabel as nib
import numpy as np

from medvl.io.errors import (
    CorruptFileError,
    CorruptPixelDataError,
    MedvlIOError,
    MetadataError,
    NotAnImageError,
    UnsupportedLayoutError,
)
from medvl.io.limits import DecodedSizeError, check_decoded_size
from medvl.io.metadata import empty_metadata
from medvl.io.record import ImageRecord
from medvl.io.validation import checked_affine

_SUFFIXES = (".nii", ".nii.gz", ".hdr")
_TIME_UNIT_SECONDS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
FORM_TOLERANCE_VOXELS = 0.1
"""sform and qform agree when no corner voxel is placed further apart than this fraction of the smallest voxel."""


def load_nifti(path: Path) -> ImageRecord:
    """Load a NIfTI file.

    Raises:
        NotAnImageError: the name does not end with ``.nii``, ``.nii.gz`` or ``.hdr`` (nibabel needs it).
        CorruptFileError: nibabel cannot parse the header.
        CorruptPixelDataError: the voxel data is truncated or unreadable.
        UnsupportedLayoutError: more than four axes, a 1-D image, or CIFTI (not a volume).
        MetadataError: the affine is singular or not finite, sform and qform disagree on the axis directions,
            or the scaling takes values beyond float32.
        DecodedSizeError: the declared voxels exceed the decoded-size limit, or memory runs out.
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
    shape, dtype = image.header.get_data_shape(), image.header.get_data_dtype()
    check_decoded_size(path, int(np.prod(shape, dtype=np.int64)) * (3 if dtype.names else 1) * 4)
    try:
        known = _geometry_known(image, path)
    except (np.linalg.LinAlgError, ValueError) as exc:  # NaN forms, an invalid qform quaternion
        raise MetadataError(path, f"the sform / qform cannot be used: {' '.join(str(exc).split())}") from exc
    try:
        with np.errstate(over="raise"):
            array, channels = _voxels(np.asanyarray(image.dataobj), path)
    except MedvlIOError:
        raise
    except MemoryError as exc:
        raise DecodedSizeError(path, f"not enough memory to read {shape} voxels of {dtype}") from exc
    except FloatingPointError as exc:
        raise MetadataError(
            path,
            f"scl_slope {image.dataobj.slope:g} / scl_inter {image.dataobj.inter:g} take voxel values "
            "beyond the float32 range (about 3.4e38): they would all become infinite",
        ) from exc
    except Exception as exc:  # nibabel / gzip raise OSError, EOFError, ValueError, zlib.error...
        raise CorruptPixelDataError(
            path,
            f"NIfTI voxel data cannot be read (truncated file?): {' '.join(str(exc).split()) or type(exc).__name__}",
        ) from exc
    metadata = empty_metadata(
        spacing_known=known, geometry_known=known, frame_times=_frame_times(image, array, channels)
    )
    return ImageRecord(
        array=array,
        affine=checked_affine(image.affine, path),
        modality="OT",
        photometric="RGB" if channels == 3 else "MONOCHROME2",
        metadata=metadata,
        source=str(path),
        channels=channels,
    )


def _geometry_known(image: nib.Nifti1Image, path: Path) -> bool:
    """False without qform and sform; refuses contradicting ones and warns about differing ones."""
    sform, sform_code = image.get_sform(coded=True)
    qform, qform_code = image.get_qform(coded=True)
    if not sform_code and not qform_code:
        return False
    if not sform_code or not qform_code:
        return True
    shape = (*image.header.get_data_shape(), 1, 1)[:3]
    corners = np.array([[*c, 1.0] for c in product(*[(0, max(n, 1) - 1) for n in shape])]).T
    apart = float(np.linalg.norm((sform - qform)[:3] @ corners, axis=0).max())
    voxel = float(min(image.header.get_zooms()[:3]))
    if apart <= FORM_TOLERANCE_VOXELS * voxel:
        return True
    if not _same_directions(sform, qform):
        s_axes, q_axes = (_axes(form) for form in (sform, qform))
        raise MetadataError(
            path,
            f"sform (code {sform_code}, axes {s_axes}) and qform (code {qform_code}, axes {q_axes}) disagree on "
            "the direction of the axes (a flip or swap): nothing says which is right; fix the header (e.g. "
            "fslorient -copysform2qform or -copyqform2sform, after checking which one is right)",
        )
    warnings.warn(
        f"{path}: sform (code {sform_code}) and qform (code {qform_code}) place voxels up to {apart:.3g} mm "
        "apart (same axis directions); using the sform",
        UserWarning,
        stacklevel=3,
    )
    return True


def _same_directions(a: np.ndarray, b: np.ndarray) -> bool:
    """True when every voxel axis points within 45 degrees of the same way in both affines (an oblique scan whose
    two forms differ slightly stays the same; a flip or a swap of axes does not)."""
    cols_a, cols_b = a[:3, :3], b[:3, :3]
    norms = np.linalg.norm(cols_a, axis=0) * np.linalg.norm(cols_b, axis=0)
    cosines = (cols_a * cols_b).sum(axis=0) / np.where(norms > 0, norms, np.inf)
    return bool(np.all(cosines > np.cos(np.pi / 4)))


def _axes(affine: np.ndarray) -> str:
    return "".join(code or "?" for code in nib.aff2axcodes(affine))  # "?" for a degenerate axis


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
