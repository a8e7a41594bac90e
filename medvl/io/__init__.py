"""Medical image input: one loader for DICOM (files, series folders), NIfTI, NRRD, PNG and JPEG.

Every reader returns an :class:`ImageRecord` (float32 physical values, RAS affine, metadata) or raises a
:class:`MedvlIOError` subclass naming the file and the reason. See ``docs/io.md``.
"""

from medvl.io.dicom_series import SeriesInfo, list_series
from medvl.io.errors import MedvlIOError
from medvl.io.loader import load
from medvl.io.metadata import IDENTIFYING_KEYS, METADATA_KEYS, public_metadata
from medvl.io.orientation import axis_codes, reorient
from medvl.io.record import ImageRecord
from medvl.io.windowing import WINDOW_PRESETS, apply_voi_lut, apply_window

__all__ = [
    "IDENTIFYING_KEYS",
    "METADATA_KEYS",
    "WINDOW_PRESETS",
    "ImageRecord",
    "MedvlIOError",
    "SeriesInfo",
    "apply_voi_lut",
    "apply_window",
    "axis_codes",
    "list_series",
    "load",
    "public_metadata",
    "reorient",
]
