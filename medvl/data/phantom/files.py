"""PNG and NIfTI files of phantom studies, and reading their bit-coded masks back."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from medvl.data.phantom.labels import decode_mask


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write a 2D ``uint8`` or ``uint16`` array ``(rows, cols)`` as a grayscale PNG."""
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"{path}: a grayscale PNG needs a 2D uint8/uint16 array, got {pixels.dtype} {pixels.shape}"
        )
    Image.fromarray(pixels).save(path, compress_level=1)


def write_nifti(path: Path, volume: np.ndarray, affine: np.ndarray) -> None:
    """Write a volume indexed ``(X, Y, Z)`` with its voxel-to-RAS affine (qform and sform, millimetres)."""
    image = nib.Nifti1Image(volume, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    image.header.set_xyzt_units(xyz="mm")
    nib.save(image, path)


def read_mask(path: str | Path) -> dict[str, np.ndarray]:
    """One boolean array per finding from a phantom mask file.

    A ``.png`` mask (a radiograph's) gives ``(rows, cols)`` arrays aligned with the study's PNG, one per
    radiograph finding; a ``.nii.gz`` mask (a CT's) gives ``(X, Y, Z)`` arrays aligned with the study's NIfTI
    volume (and with the DICOM series once stacked along the slice normal), one per CT finding.

    Raises:
        FileNotFoundError: the mask file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such mask file")
    if path.suffix == ".png":
        with Image.open(path) as image:
            return decode_mask(np.asarray(image), "2d")
    return decode_mask(np.asanyarray(nib.load(path).dataobj), "3d")
