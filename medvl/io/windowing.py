"""Display windowing: physical values to ``[0, 1]`` grey levels (DICOM PS3.3 C.11.2, VOI LUT module)."""

from __future__ import annotations

import numpy as np

from medvl.io.errors import MetadataError
from medvl.io.record import ImageRecord

WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}
"""Named CT windows as (center, width) in HU."""

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def apply_window(array: np.ndarray, center: float, width: float, *, function: str = "LINEAR") -> np.ndarray:
    """Map values through a window to ``[0, 1]`` (float32), as DICOM defines it.

    Args:
        array: values in the record's units (HU for CT).
        center: window centre.
        width: window width (at least 1 for ``LINEAR``, above 0 otherwise).
        function: the DICOM VOI LUT Function, ``LINEAR`` (default), ``LINEAR_EXACT`` or ``SIGMOID``.

    Raises:
        ValueError: unknown function or a width it does not allow.
    """
    function = function.upper()
    if function not in VOI_FUNCTIONS:
        raise ValueError(f"VOI LUT function {function!r} is not one of {VOI_FUNCTIONS}")
    allowed = width >= 1 if function == "LINEAR" else width > 0
    if not allowed:
        raise ValueError(f"window width {width} is not allowed for {function} (DICOM needs >= 1 / > 0)")
    x = np.asarray(array, dtype=np.float64)
    if function == "SIGMOID":
        out = 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    elif function == "LINEAR_EXACT":
        out = (x - center) / width + 0.5
    elif width == 1:
        out = (x > center - 0.5).astype(np.float64)
    else:
        out = (x - (center - 0.5)) / (width - 1) + 0.5
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def apply_voi_lut(record: ImageRecord) -> np.ndarray:
    """The record as the file says to display it, in ``[0, 1]`` (float32, same shape as ``record.array``).

    Uses the VOI LUT Sequence when the file has one, else its WindowCenter / WindowWidth with its VOI LUT
    Function. Both are kept in the record's units (MONOCHROME1 sources already inverted), so bright means
    dense either way.

    Raises:
        ValueError: the record is RGB (windowing applies to grayscale).
        MetadataError: the file carries neither a VOI LUT nor a window; use :func:`apply_window` with a
            :data:`WINDOW_PRESETS` entry instead.
    """
    if record.channels != 1:
        raise ValueError("VOI LUT / windowing applies to grayscale records; this one is RGB")
    lut = record.metadata.get("voi_lut")
    if lut:
        table = np.asarray(lut["values"], dtype=np.float64) / lut["max_value"]
        index = np.clip(np.rint(record.array - lut["first_mapped"]), 0, len(table) - 1).astype(np.int64)
        return table[index].astype(np.float32)
    center, width = record.metadata.get("window_center"), record.metadata.get("window_width")
    if center is None or width is None:
        raise MetadataError(
            record.source,
            "no VOI LUT and no WindowCenter/WindowWidth in the file: use apply_window with a WINDOW_PRESETS "
            "entry or the value range",
        )
    return apply_window(
        record.array, center, width, function=record.metadata.get("voi_lut_function") or "LINEAR"
    )
