"""The metadata schema of :class:`medvl.io.ImageRecord`: the same keys for every format.

Every record's ``metadata`` holds all of :data:`METADATA_KEYS` (``None`` when the source does not say), so
consumers can index it without guarding. Readers may add further keys (``series_number``, ``n_files``,
``voi_lut``...); ``docs/io.md`` lists them.
"""

from __future__ import annotations

from typing import Any

METADATA_KEYS: tuple[str, ...] = (
    "patient_id",
    "patient_name",
    "patient_sex",
    "patient_age",
    "study_uid",
    "series_uid",
    "sop_uids",
    "accession",
    "study_date",
    "study_description",
    "series_description",
    "view_position",
    "body_part",
    "manufacturer",
    "window_center",
    "window_width",
    "transfer_syntax",
    "rescale_slope",
    "rescale_intercept",
    "bits_stored",
    "spacing_known",
    "geometry_known",
    "slice_positions_mm",
    "frame_times",
)
"""Keys present in every record's metadata."""

IDENTIFYING_KEYS: tuple[str, ...] = ("patient_name", "patient_id", "accession")
"""Keys that identify a patient: kept for governance checks, never printed by medvl's own tools."""


def empty_metadata(**values: Any) -> dict[str, Any]:
    """A metadata dict with every key of :data:`METADATA_KEYS` set to ``None`` (``sop_uids`` to ``[]``),
    then updated with ``values``.

    Raises:
        KeyError: a value is given for a key that is not in the schema (catches typos in readers).
    """
    unknown = sorted(set(values) - set(METADATA_KEYS))
    if unknown:
        raise KeyError(f"not metadata schema keys: {unknown}")
    metadata: dict[str, Any] = dict.fromkeys(METADATA_KEYS)
    metadata["sop_uids"] = []
    metadata.update(values)
    return metadata


def public_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``metadata`` without the :data:`IDENTIFYING_KEYS`, for printing and logging."""
    return {k: v for k, v in metadata.items() if k not in IDENTIFYING_KEYS}
