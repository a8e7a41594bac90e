"""Typed refusals raised by :mod:`medvl.io`.

Every error names the file (or folder) it concerns and the reason, so batch jobs can quarantine the input
and report it. Catch :class:`MedvlIOError` to handle all of them.
"""

from __future__ import annotations

from pathlib import Path


class MedvlIOError(Exception):
    """Base class: an input that medvl refuses to turn into an image, with the path and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotAnImageError(MedvlIOError):
    """The file is empty, not DICOM, or of a format medvl does not read."""


class NoPixelDataError(MedvlIOError):
    """A DICOM object without pixel data (structured report, RT plan, presentation state...)."""


class CorruptPixelDataError(MedvlIOError):
    """Pixel data is truncated, corrupt, or inconsistent with the declared size."""


class UnsupportedTransferSyntaxError(MedvlIOError):
    """No installed decoder handles the file's transfer syntax."""


class SeriesGeometryError(MedvlIOError):
    """A series cannot be stacked into a correct volume: missing or duplicate slices, non-uniform spacing,
    gantry tilt, mixed orientation or matrix size."""


class MetadataError(MedvlIOError):
    """A required attribute is missing or holds an impossible value."""
