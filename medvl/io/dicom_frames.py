"""Where each frame of a DICOM object lies (position, orientation, pixel spacing) and when it was taken.

One :class:`FramePose` per 2D frame: a single-frame image gives one, an enhanced multi-frame object one per
frame (from its per-frame / shared functional groups), a Siemens mosaic one per tile, an RT dose one per
GridFrameOffsetVector entry.

Objects without ImagePositionPatient (projection radiographs, secondary captures, stripped multi-frames)
get ``position=None`` and a default orientation: the rows run towards the patient's left and the columns
towards the feet (a PA chest film as it is displayed), unless PatientOrientation says otherwise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medvl.io.dicom_file import PixelLayout, functional_group, number, numbers, text
from medvl.io.errors import MetadataError
from medvl.io.siemens_mosaic import is_mosaic, mosaic_layout, tile_positions

DEFAULT_ROW_COSINE = np.array([1.0, 0.0, 0.0])
"""LPS direction of increasing column index when the file gives none: towards the patient's left."""
DEFAULT_COL_COSINE = np.array([0.0, 0.0, -1.0])
"""LPS direction of increasing row index when the file gives none: towards the feet."""

_PATIENT_DIRECTIONS = {
    "L": (1.0, 0.0, 0.0),
    "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0),
    "A": (0.0, -1.0, 0.0),
    "H": (0.0, 0.0, 1.0),
    "F": (0.0, 0.0, -1.0),
}
_ORTHONORMAL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class FramePose:
    """Geometry and timing of one 2D frame.

    Attributes:
        position: ImagePositionPatient (LPS mm, centre of the first pixel); ``None`` when unknown.
        row_cosine: LPS unit vector along a row (increasing column index).
        col_cosine: LPS unit vector down a column (increasing row index).
        pixel_spacing: (distance between rows, distance between columns) in mm.
        spacing_known: False when ``pixel_spacing`` is the 1 mm default.
        temporal: values that can tell frames at one position apart (``TemporalPositionIdentifier``,
            ``TemporalPositionIndex``, ``TriggerTime``, ``AcquisitionNumber``, ``AcquisitionTime`` in
            seconds, ``InstanceNumber``), only those present.
        echo_time: EchoTime in ms, when present.
    """

    position: np.ndarray | None
    row_cosine: np.ndarray
    col_cosine: np.ndarray
    pixel_spacing: tuple[float, float]
    spacing_known: bool
    temporal: dict[str, float] = field(default_factory=dict)
    echo_time: float | None = None


def frame_poses(ds: Dataset, path: Path, layout: PixelLayout) -> list[FramePose]:
    """One pose per decoded 2D frame (per tile for a mosaic).

    Raises:
        MetadataError: position without orientation or pixel spacing, orientation that is not two
            orthogonal unit vectors, a mosaic without the CSA information, or unreadable values.
    """
    if is_mosaic(ds):
        return _mosaic_poses(ds, path, layout)
    file_temporal = _temporal_values(ds, path)
    positions = _frame_positions(ds, path, layout.frames)
    poses = []
    for frame, position in enumerate(positions):
        row, col = _orientation(ds, path, frame, required=position is not None)
        spacing, known = _pixel_spacing(ds, path, frame, required=position is not None)
        temporal = {**file_temporal, **_frame_temporal_values(ds, path, frame)}
        poses.append(FramePose(position, row, col, spacing, known, temporal, _echo_time(ds, path, frame)))
    return poses


def _mosaic_poses(ds: Dataset, path: Path, layout: PixelLayout) -> list[FramePose]:
    row, col = _orientation(ds, path, 0, required=True)
    spacing, known = _pixel_spacing(ds, path, 0, required=True)
    position = _vector(ds, "ImagePositionPatient", 3, path)
    if position is None:
        raise MetadataError(path, "Siemens mosaic without ImagePositionPatient")
    n_tiles, normal = mosaic_layout(ds, path, layout.rows, layout.cols)
    positions = tile_positions(
        ds,
        path,
        n_tiles=n_tiles,
        normal=normal,
        row_cosine=row,
        col_cosine=col,
        pixel_spacing=spacing,
        position=position,
    )
    temporal = _temporal_values(ds, path)
    echo = _echo_time(ds, path, 0)
    return [FramePose(p, row, col, spacing, known, temporal, echo) for p in positions]


def _frame_positions(ds: Dataset, path: Path, n_frames: int) -> list[np.ndarray | None]:
    per_frame = [functional_group(ds, f, "PlanePositionSequence") for f in range(n_frames)]
    if all(item is not None for item in per_frame) and "PerFrameFunctionalGroupsSequence" in ds:
        return [_vector(item, "ImagePositionPatient", 3, path) for item in per_frame]
    position = _vector(ds, "ImagePositionPatient", 3, path)
    if position is None:
        return [None] * n_frames
    if n_frames == 1:
        return [position]
    offsets = numbers(ds, "GridFrameOffsetVector", path)
    if len(offsets) != n_frames:
        return [None] * n_frames  # a multi-frame whose frames have no stated positions
    row, col = _orientation(ds, path, 0, required=True)
    normal = np.cross(row, col)
    return [position + (off - offsets[0]) * normal for off in offsets]


def _orientation(ds: Dataset, path: Path, frame: int, *, required: bool) -> tuple[np.ndarray, np.ndarray]:
    item = functional_group(ds, frame, "PlaneOrientationSequence")
    cosines = _vector(item if item is not None else ds, "ImageOrientationPatient", 6, path)
    if cosines is None:
        if required:
            raise MetadataError(
                path, "ImagePositionPatient without ImageOrientationPatient: orientation unknown"
            )
        return _patient_orientation(ds)
    row, col = cosines[:3], cosines[3:]
    row_norm, col_norm = np.linalg.norm(row), np.linalg.norm(col)
    if (
        abs(row_norm - 1) > _ORTHONORMAL_TOLERANCE
        or abs(col_norm - 1) > _ORTHONORMAL_TOLERANCE
        or abs(float(row @ col)) > _ORTHONORMAL_TOLERANCE
    ):
        raise MetadataError(
            path, f"ImageOrientationPatient {cosines.tolist()} is not two orthogonal unit vectors"
        )
    return row / row_norm, col / col_norm


def _patient_orientation(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    codes = ds.get("PatientOrientation")
    if codes is None or isinstance(codes, str) or len(codes) != 2:
        return DEFAULT_ROW_COSINE, DEFAULT_COL_COSINE
    vectors = []
    for code in codes:
        letters = str(code).upper().strip()
        if not letters or any(ch not in _PATIENT_DIRECTIONS for ch in letters):
            return DEFAULT_ROW_COSINE, DEFAULT_COL_COSINE
        vec = np.sum([_PATIENT_DIRECTIONS[ch] for ch in letters], axis=0)
        vectors.append(vec / np.linalg.norm(vec))
    row, col = vectors
    if abs(float(row @ col)) > _ORTHONORMAL_TOLERANCE:
        return DEFAULT_ROW_COSINE, DEFAULT_COL_COSINE
    return row, col


def _pixel_spacing(
    ds: Dataset, path: Path, frame: int, *, required: bool
) -> tuple[tuple[float, float], bool]:
    item = functional_group(ds, frame, "PixelMeasuresSequence")
    for source, keyword in ((item, "PixelSpacing"), (ds, "PixelSpacing"), (ds, "ImagerPixelSpacing")):
        if source is None:
            continue
        values = numbers(source, keyword, path)
        if len(values) == 2 and min(values) > 0:
            return (values[0], values[1]), True
    if required:
        raise MetadataError(path, "PixelSpacing missing or not positive for an image with a patient position")
    return (1.0, 1.0), False


def _vector(ds: Dataset, keyword: str, length: int, path: Path) -> np.ndarray | None:
    values = numbers(ds, keyword, path)
    if not values:
        return None
    if len(values) != length or not np.all(np.isfinite(values)):
        raise MetadataError(path, f"{keyword} holds {values}, expected {length} finite numbers")
    return np.asarray(values, dtype=float)


def _temporal_values(ds: Dataset, path: Path) -> dict[str, float]:
    values = {
        "TemporalPositionIdentifier": number(ds, "TemporalPositionIdentifier", path),
        "TriggerTime": number(ds, "TriggerTime", path),
        "AcquisitionNumber": number(ds, "AcquisitionNumber", path),
        "AcquisitionTime": _seconds(text(ds, "AcquisitionDateTime"))
        or _seconds(_join(text(ds, "AcquisitionDate"), text(ds, "AcquisitionTime"))),
        "InstanceNumber": number(ds, "InstanceNumber", path),
    }
    return {k: v for k, v in values.items() if v is not None}


def _frame_temporal_values(ds: Dataset, path: Path, frame: int) -> dict[str, float]:
    values: dict[str, float | None] = {}
    content = functional_group(ds, frame, "FrameContentSequence")
    if content is not None:
        values["TemporalPositionIndex"] = number(content, "TemporalPositionIndex", path)
        values["AcquisitionNumber"] = number(content, "FrameAcquisitionNumber", path)
        values["AcquisitionTime"] = _seconds(text(content, "FrameAcquisitionDateTime"))
    cardiac = functional_group(ds, frame, "CardiacSynchronizationSequence")
    if cardiac is not None:
        values["TriggerTime"] = number(cardiac, "NominalCardiacTriggerDelayTime", path)
    return {k: v for k, v in values.items() if v is not None}


def _echo_time(ds: Dataset, path: Path, frame: int) -> float | None:
    echo = functional_group(ds, frame, "MREchoSequence")
    if echo is not None:
        return number(echo, "EffectiveEchoTime", path)
    return number(ds, "EchoTime", path)


def _join(date: str | None, time: str | None) -> str | None:
    if time is None:
        return None
    return (date or "19000101") + time.replace(":", "")


def _seconds(datetime_text: str | None) -> float | None:
    """Seconds since 1900 for a DICOM DT value (``YYYYMMDDHHMMSS.FFFFFF``, offset ignored); None if unparsable."""
    if not datetime_text:
        return None
    value = datetime_text.split("+")[0].split("-")[0].strip()
    whole, _, fraction = value.partition(".")
    try:
        stamp = dt.datetime.strptime(whole.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
        return (stamp - dt.datetime(1900, 1, 1)).total_seconds() + (
            float("0." + fraction) if fraction else 0.0
        )
    except ValueError:
        return None
