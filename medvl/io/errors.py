"""Typed refusals raised by :mod:`medvl.io`.

Every error names the file (or folder) it concerns and the reason, so batch jobs can quarantine the input
and report it. Catch :class:`MedvlIOError` to handle all of them.

Hierarchy::

    MedvlIOError
    ├── MissingFileError              (also a FileNotFoundError)
    ├── NotAnImageError               empty, not DICOM/NIfTI/NRRD/PNG/JPEG
    ├── CorruptFileError              the file's structure cannot be parsed
    ├── NoPixelDataError              SR, RT plan, DICOMDIR, waveform, image stored without pixels
    ├── CorruptPixelDataError         truncated (frame cut short) or undecodable pixel data
    ├── UnsupportedTransferSyntaxError
    ├── UnsupportedLayoutError        valid data that medvl cannot represent (5-D, RGB time series...)
    ├── MetadataError                 required attribute missing or impossible
    ├── DecodedSizeError              declared or inflated size over the limit, out of memory
    │                                 (defined in medvl.io.limits, with the limit itself)
    ├── MultipleSeriesError           a folder holds several series and none was chosen
    └── SeriesGeometryError           slices cannot be stacked into a correct volume
        ├── MissingSliceError
        ├── DuplicateSliceError
        ├── NonUniformSpacingError
        ├── GantryTiltError
        ├── MixedOrientationError
        └── MixedMatrixSizeError
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medvl.errors import MedvlError


class MedvlIOError(MedvlError):
    """Base class: an input that medvl refuses to turn into an image, with the path and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MissingFileError(MedvlIOError, FileNotFoundError):
    """The path does not exist (also catchable as ``FileNotFoundError``)."""


class NotAnImageError(MedvlIOError):
    """The file is empty, not DICOM, or of a format medvl does not read."""


class CorruptFileError(MedvlIOError):
    """The file claims a known format but its structure cannot be parsed (truncated header, bad lengths)."""


class NoPixelDataError(MedvlIOError):
    """A DICOM object without pixel data (structured report, RT plan, presentation state...), or an image object
    stored without its pixels."""


class CorruptPixelDataError(MedvlIOError):
    """Pixel data is truncated (a compressed frame cut short, the file ending inside it), corrupt, inconsistent
    with the declared size, or made the decoder warn."""


class UnsupportedTransferSyntaxError(MedvlIOError):
    """No installed decoder handles the file's transfer syntax."""


class UnsupportedLayoutError(MedvlIOError):
    """Valid pixel data in a layout the image record cannot represent (more than 4 axes, RGB time series...)."""


class MetadataError(MedvlIOError):
    """A required attribute is missing or holds an impossible value."""


class MultipleSeriesError(MedvlIOError):
    """A folder holds several DICOM series; pass ``series_uid`` to choose one.

    Attributes:
        series: the :class:`medvl.io.SeriesInfo` of every series found.
    """

    def __init__(self, path: str | Path, reason: str, series: Sequence[Any] = ()) -> None:
        super().__init__(path, reason)
        self.series = list(series)


class SeriesGeometryError(MedvlIOError):
    """A series cannot be stacked into a correct volume: missing or duplicate slices, non-uniform spacing,
    gantry tilt, mixed orientation or matrix size."""


class MissingSliceError(SeriesGeometryError):
    """A gap of (about) a whole number of slice spacings: one or more slices are absent."""


class DuplicateSliceError(SeriesGeometryError):
    """Several frames at one position with nothing (no temporal attribute) telling them apart."""


class NonUniformSpacingError(SeriesGeometryError):
    """Slice spacing varies by more than the documented tolerance."""


class GantryTiltError(SeriesGeometryError):
    """Slice origins do not lie along the image normal (tilted gantry or shifted slices)."""


class MixedOrientationError(SeriesGeometryError):
    """Frames of one series have different image orientations."""


class MixedMatrixSizeError(SeriesGeometryError):
    """Frames of one series differ in rows, columns, samples per pixel or pixel spacing."""
