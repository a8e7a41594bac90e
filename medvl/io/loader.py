"""``load(path)``: any supported file or DICOM folder to one :class:`ImageRecord`."""

from __future__ import annotations

from pathlib import Path

from medvl.io.dicom_series import load_dicom_file, load_dicom_folder
from medvl.io.errors import MissingFileError, NotAnImageError
from medvl.io.formats import read_head, sniff_format
from medvl.io.nifti import load_nifti
from medvl.io.nrrd_file import load_nrrd
from medvl.io.raster import load_raster
from medvl.io.record import ImageRecord


def load(path: str | Path, *, series_uid: str | None = None, progress: bool = False) -> ImageRecord:
    """Load a DICOM file, a DICOM folder (one series), NIfTI, NRRD, PNG or JPEG into one record.

    The format is recognised from the file's first bytes, not its name. ``record.metadata["format"]`` says
    which it was (``dicom``, ``nifti``, ``nrrd``, ``png``, ``jpeg``).

    Args:
        path: a file, or a folder searched recursively for one DICOM series.
        series_uid: the SeriesInstanceUID to load from a folder holding several series (for a file: the
            series it must belong to).
        progress: show progress bars (headers read, files decoded) for folders.

    Returns:
        The record: float32 physical values, RAS affine, modality, metadata (see ``docs/io.md``).

    Raises:
        MissingFileError: the path does not exist.
        NotAnImageError: empty file, unknown format, no DICOM image in the folder, no such series.
        MultipleSeriesError: several series in the folder and no ``series_uid``; lists them.
        MedvlIOError: (other subclasses) any refusal of corrupt, undecodable or inconsistent input.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, "no such file or directory")
    if path.is_dir():
        record = load_dicom_folder(path, series_uid, progress=progress)
        record.metadata["format"] = "dicom"
        return record
    if path.stat().st_size == 0:
        raise NotAnImageError(path, "empty file (0 bytes)")
    head = read_head(path)
    kind = sniff_format(path, head)
    if kind == "dicom":
        record = load_dicom_file(path, head)
    elif kind == "nifti":
        record = load_nifti(path)
    elif kind == "nrrd":
        record = load_nrrd(path)
    else:
        record = load_raster(path)
    if series_uid is not None and record.metadata.get("series_uid") != series_uid:
        raise NotAnImageError(
            path, f"belongs to series {record.metadata.get('series_uid')!r}, not {series_uid!r}"
        )
    record.metadata["format"] = kind
    return record
