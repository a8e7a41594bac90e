"""The metadata dict of a DICOM record (see :mod:`medvl.io.metadata` for the schema).

Window centre and VOI LUT are expressed in the record's array units: for MONOCHROME1 sources (stored
inverted, see :mod:`medvl.io.dicom_pixels`) the centre is reflected and the LUT reversed, so
:func:`medvl.io.apply_voi_lut` gives the display the file intends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medvl.io.dicom_file import PixelLayout, functional_group, integer, number, numbers, text
from medvl.io.errors import MetadataError
from medvl.io.metadata import empty_metadata


def dicom_metadata(
    ds: Dataset,
    path: Path,
    *,
    layout: PixelLayout,
    syntax: str,
    sop_uids: list[str],
    inversion: float | None,
    rescale: tuple[float, float] | None,
    spacing_known: bool,
    slice_positions_mm: list[float] | None,
    frame_times: list[float] | None,
) -> dict[str, Any]:
    """Metadata of a record built from ``ds`` (the first file of the series in slice order); the geometry is
    known when the frames have positions (``slice_positions_mm``).

    Raises:
        MetadataError: a window or VOI LUT attribute holds an impossible value.
    """
    center, width = _window(ds, path)
    if center is not None and inversion is not None:
        center = inversion - center
    metadata = empty_metadata(
        patient_id=text(ds, "PatientID"),
        patient_name=text(ds, "PatientName"),
        patient_sex=text(ds, "PatientSex"),
        patient_age=text(ds, "PatientAge"),
        study_uid=text(ds, "StudyInstanceUID"),
        series_uid=text(ds, "SeriesInstanceUID"),
        sop_uids=sop_uids,
        accession=text(ds, "AccessionNumber"),
        study_date=text(ds, "StudyDate"),
        study_description=text(ds, "StudyDescription"),
        series_description=text(ds, "SeriesDescription"),
        view_position=text(ds, "ViewPosition"),
        body_part=text(ds, "BodyPartExamined"),
        manufacturer=text(ds, "Manufacturer"),
        window_center=center,
        window_width=width,
        transfer_syntax=syntax,
        rescale_slope=rescale[0] if rescale else None,
        rescale_intercept=rescale[1] if rescale else None,
        bits_stored=layout.bits_stored,
        spacing_known=spacing_known,
        geometry_known=slice_positions_mm is not None,
        slice_positions_mm=slice_positions_mm,
        frame_times=frame_times if frame_times is not None else _cine_times(ds, path, layout.frames),
    )
    metadata["series_number"] = integer(ds, "SeriesNumber", path)
    metadata["voi_lut_function"] = text(ds, "VOILUTFunction") or "LINEAR"
    metadata["voi_lut"] = _voi_lut(ds, path, inversion)
    metadata["monochrome1_inversion"] = inversion
    return metadata


def _window(ds: Dataset, path: Path) -> tuple[float | None, float | None]:
    item = functional_group(ds, 0, "FrameVOILUTSequence")
    source = item if item is not None and "WindowCenter" in item else ds
    centers = numbers(source, "WindowCenter", path)
    widths = numbers(source, "WindowWidth", path)
    if not centers or not widths:
        return None, None
    if widths[0] < 1:
        raise MetadataError(path, f"WindowWidth {widths[0]} is below 1, which DICOM does not allow")
    return centers[0], widths[0]


def _voi_lut(ds: Dataset, path: Path, inversion: float | None) -> dict[str, Any] | None:
    sequence = ds.get("VOILUTSequence")
    if not sequence:
        return None
    item = sequence[0]
    descriptor = numbers(item, "LUTDescriptor", path)
    data = item.get("LUTData")
    if len(descriptor) != 3 or data is None:
        raise MetadataError(path, "VOILUTSequence item without a 3-value LUTDescriptor and LUTData")
    entries, first, bits = int(descriptor[0]) or 65536, descriptor[1], int(descriptor[2])
    if first >= 2**15 and integer(ds, "PixelRepresentation", path, 0) == 1:
        first -= 2**16  # the first mapped value is stored as US but means SS for signed pixels
    if isinstance(data, bytes):  # OW: 16-bit words in the file's byte order
        little = ds.original_encoding[1] is not False
        table = np.frombuffer(data[: 2 * (len(data) // 2)], dtype="<u2" if little else ">u2")
    else:
        table = np.asarray(data)
    if len(table) < entries:
        raise MetadataError(path, f"VOI LUT declares {entries} entries but holds {len(table)}")
    table = table[:entries].astype(np.int64)
    top = 2**bits - 1
    if inversion is not None:
        table = top - table[::-1]
        first = inversion - first - entries + 1
    return {"first_mapped": float(first), "max_value": top, "values": table.tolist()}


def _cine_times(ds: Dataset, path: Path, n_frames: int) -> list[float] | None:
    """Seconds from the first frame for a multi-frame cine (FrameTimeVector or FrameTime, in ms)."""
    if n_frames < 2:
        return None
    vector = numbers(ds, "FrameTimeVector", path)
    if len(vector) == n_frames:
        return [float(v) / 1000 for v in np.cumsum(vector) - vector[0]]
    frame_time = number(ds, "FrameTime", path)
    return [k * frame_time / 1000 for k in range(n_frames)] if frame_time else None
