"""Writing real DICOM files from arrays (pydicom): synthetic test data, phantoms, round trips.

The inverse of the loader: a ``(X, Y, Z)`` volume with a RAS affine becomes one single-frame file per slice
with ImagePositionPatient / ImageOrientationPatient / PixelSpacing derived from the affine and stored
integers ``round((value - intercept) / slope)``; a ``(X, Y)`` image becomes one projection-style file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from medvl.io.stacking import LPS_TO_RAS

SOP_CLASSES: dict[str, UID] = {
    "CT": CTImageStorage,
    "MR": MRImageStorage,
    "CR": ComputedRadiographyImageStorage,
    "DX": DigitalXRayImageStorageForPresentation,
}


def write_series(
    volume: np.ndarray,
    affine: np.ndarray,
    folder: str | Path,
    *,
    modality: str = "CT",
    rescale_slope: float = 1.0,
    rescale_intercept: float | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    attributes: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write a volume as a DICOM series, one file per slice (``slice_0000.dcm``...).

    Args:
        volume: ``(X, Y, Z)`` physical values (HU for CT).
        affine: 4x4 voxel-to-RAS matrix whose first two columns are orthogonal.
        folder: output folder (created).
        modality: DICOM modality; sets the SOP class (CT, MR, else secondary capture).
        rescale_slope: stored-to-physical slope.
        rescale_intercept: stored-to-physical intercept (-1024 for CT, 0 otherwise, when ``None``).
        series_uid: SeriesInstanceUID (new when ``None``); study_uid likewise.
        transfer_syntax: any syntax pydicom can encode (native ones, RLE Lossless...).
        attributes: extra DICOM keywords and values set on every file (PatientID, SeriesDescription...).

    Returns:
        The written files in slice order.

    Raises:
        ValueError: the volume is not 3-D, the affine's in-plane axes are not orthogonal, or values do not fit
            in 16-bit stored integers with this slope/intercept.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be (X, Y, Z), got shape {volume.shape}")
    intercept = (-1024.0 if modality == "CT" else 0.0) if rescale_intercept is None else rescale_intercept
    stored = _stored_values(volume, rescale_slope, intercept)
    lps = np.linalg.inv(LPS_TO_RAS) @ np.asarray(affine, dtype=float)
    row, col = lps[:3, 0], lps[:3, 1]
    if abs(row @ col) > 1e-6 * np.linalg.norm(row) * np.linalg.norm(col):
        raise ValueError("the affine's first two columns (in-plane axes) must be orthogonal")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid = series_uid or generate_uid(), study_uid or generate_uid()
    paths = []
    for k in range(volume.shape[2]):
        ds = _anonymous_dataset(modality, series_uid, study_uid)
        ds.ImageOrientationPatient = [*_ds(row / np.linalg.norm(row)), *_ds(col / np.linalg.norm(col))]
        ds.ImagePositionPatient = _ds((lps @ [0, 0, k, 1])[:3])
        ds.PixelSpacing = _ds([np.linalg.norm(col), np.linalg.norm(row)])
        ds.SliceThickness = _ds([np.linalg.norm(lps[:3, 2])])[0]
        ds.InstanceNumber = k + 1
        ds.RescaleSlope, ds.RescaleIntercept = _ds([rescale_slope, intercept])
        _set_attributes(ds, attributes)
        paths.append(save_dataset(ds, stored[:, :, k].T, folder / f"slice_{k:04d}.dcm", transfer_syntax))
    return paths


def write_image(
    image: np.ndarray,
    path: str | Path,
    *,
    modality: str = "DX",
    photometric: str = "MONOCHROME2",
    pixel_spacing: tuple[float, float] | None = None,
    bits_stored: int = 12,
    transfer_syntax: str = ExplicitVRLittleEndian,
    attributes: Mapping[str, Any] | None = None,
) -> Path:
    """Write a 2D grayscale image (projection radiograph style: no patient position) as one DICOM file.

    Args:
        image: ``(X, Y)`` stored integer values (0 .. 2**bits_stored - 1).
        path: output file.
        modality: DICOM modality (``DX``, ``CR``...).
        photometric: ``MONOCHROME2`` or ``MONOCHROME1``.
        pixel_spacing: (between rows, between columns) mm written as PixelSpacing; none when ``None``.
        bits_stored: bits per stored value (unsigned).
        transfer_syntax: any syntax pydicom can encode.
        attributes: extra DICOM keywords and values (ViewPosition, WindowCenter...).

    Raises:
        ValueError: values outside ``0 .. 2**bits_stored - 1`` or not 2-D.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.min() < 0 or image.max() >= 2**bits_stored:
        raise ValueError(f"image must be 2-D with values in 0..{2**bits_stored - 1}")
    ds = _anonymous_dataset(modality, generate_uid(), generate_uid())
    if pixel_spacing is not None:
        ds.PixelSpacing = _ds(pixel_spacing)
    _set_attributes(ds, attributes)
    return save_dataset(ds, image.T.astype(np.uint16), Path(path), transfer_syntax, photometric, bits_stored)


def _stored_values(volume: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    stored = np.rint((volume.astype(np.float64) - intercept) / slope)
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError("values do not fit 16-bit signed stored integers with this slope/intercept")
    return stored.astype(np.int16)


def new_dataset(modality: str, sop_uid: str | None = None) -> Dataset:
    """An empty image of ``modality``'s storage SOP class (secondary capture for others), with file meta."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SOP_CLASSES.get(modality, SecondaryCaptureImageStorage)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    ds.Modality = modality
    return ds


def save_dataset(
    ds: Dataset,
    pixels: np.ndarray,
    path: Path,
    transfer_syntax: str = ExplicitVRLittleEndian,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
) -> Path:
    """Attach ``(rows, cols)`` pixels (``int16``: signed, ``uint16``: unsigned; ``bits_stored`` defaults to all
    16), encode them in ``transfer_syntax`` and write a DICOM Part 10 file."""
    syntax = UID(transfer_syntax)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if syntax.is_compressed else syntax
    pixels = np.ascontiguousarray(pixels)
    ds.set_pixel_data(pixels, photometric, bits_stored or 8 * pixels.itemsize, generate_instance_uid=False)
    if syntax.is_compressed:
        ds.compress(syntax, generate_instance_uid=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _anonymous_dataset(modality: str, series_uid: str, study_uid: str) -> Dataset:
    ds = new_dataset(modality)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientID, ds.PatientName = "ANON", "Anon^Anon"
    ds.SeriesNumber = 1
    return ds


def _set_attributes(ds: Dataset, attributes: Mapping[str, Any] | None) -> None:
    for keyword, value in (attributes or {}).items():
        setattr(ds, keyword, value)


def _ds(values: Any) -> list[str]:
    """Decimal strings (at most 16 characters, as DICOM DS allows) for numbers."""
    return [f"{float(v):.10g}" for v in np.atleast_1d(values)]
