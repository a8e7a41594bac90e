"""Medical image input: one loader for DICOM (files, series folders), NIfTI, NRRD, PNG and JPEG.

Every reader returns an :class:`ImageRecord` (float32 physical values, RAS affine, metadata) or raises a
:class:`MedvlIOError` subclass naming the file and the reason. See ``docs/io.md``.

The names below are imported on first use, so ``import medvl.io.errors`` (or a command's ``--help``) does not
pay for pydicom, nibabel and the decoders.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "IDENTIFYING_KEYS": "medvl.io.metadata",
    "MAX_DECODED_BYTES_ENV": "medvl.io.limits",
    "METADATA_KEYS": "medvl.io.metadata",
    "WINDOW_PRESETS": "medvl.io.windowing",
    "DecodedSizeError": "medvl.io.limits",
    "ImageRecord": "medvl.io.record",
    "MedvlIOError": "medvl.io.errors",
    "SeriesInfo": "medvl.io.dicom_series",
    "apply_voi_lut": "medvl.io.windowing",
    "apply_window": "medvl.io.windowing",
    "axis_codes": "medvl.io.orientation",
    "check_decoded_size": "medvl.io.limits",
    "check_gzip_stream": "medvl.io.limits",
    "list_series": "medvl.io.dicom_series",
    "load": "medvl.io.loader",
    "max_decoded_bytes": "medvl.io.limits",
    "public_metadata": "medvl.io.metadata",
    "reorient": "medvl.io.orientation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'medvl.io' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
