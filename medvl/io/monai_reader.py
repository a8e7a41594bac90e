"""A MONAI ``ImageReader`` backed by :func:`medvl.io.load`, so MONAI pipelines get the same checked geometry.

Usage::

    from monai.transforms import LoadImage
    from medvl.io.monai_reader import MedvlImageReader

    image = LoadImage(reader=MedvlImageReader(), image_only=True)("ct_series_folder/")
    image.affine  # RAS, as medvl.io.load gives it

The array keeps medvl's axis order (``X, Y[, Z]``); RGB channels and the time axis of a volume time series
are the trailing "channel" axis (``original_channel_dim == -1``), so ``EnsureChannelFirst`` moves them in
front. Several files are stacked on a new first axis (all must share shape and affine). The meta dict holds
``affine``, ``original_affine``, ``spatial_shape``, ``original_channel_dim``, ``space`` (``RAS``),
``modality``, ``photometric`` and the record's scalar metadata, without patient identifiers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.utils import ensure_tuple

from medvl.io.loader import load
from medvl.io.metadata import IDENTIFYING_KEYS
from medvl.io.record import ImageRecord

SUFFIXES = (".dcm", ".dicom", ".ima", ".nii", ".nii.gz", ".nrrd", ".nhdr", ".png", ".jpg", ".jpeg")
"""File names the reader claims (plus folders and names without a suffix, as DICOM files often are)."""


class MedvlImageReader(ImageReader):
    """Load DICOM files/folders, NIfTI, NRRD, PNG and JPEG through :func:`medvl.io.load`.

    Args:
        series_uid: SeriesInstanceUID to pick from folders holding several series.
    """

    def __init__(self, series_uid: str | None = None) -> None:
        super().__init__()
        self.series_uid = series_uid

    def verify_suffix(self, filename: Sequence[str | Path] | str | Path) -> bool:
        """True when every name is a folder, has no suffix, or ends with one of :data:`SUFFIXES`."""
        return all(_claims(Path(name)) for name in ensure_tuple(filename))

    def read(self, data: Sequence[str | Path] | str | Path, **kwargs: Any) -> ImageRecord | list[ImageRecord]:
        """Load each path; one record for one path, a list for several.

        Args:
            data: path or paths.
            kwargs: ``series_uid`` overrides the reader's.

        Raises:
            MedvlIOError: (subclasses) as :func:`medvl.io.load`.
        """
        series_uid = kwargs.get("series_uid", self.series_uid)
        records = [load(name, series_uid=series_uid) for name in ensure_tuple(data)]
        return records[0] if len(records) == 1 else records

    def get_data(self, img: ImageRecord | Sequence[ImageRecord]) -> tuple[np.ndarray, dict]:
        """Array and MONAI meta dict of one record, or of several stacked on a new first axis.

        Raises:
            ValueError: several records whose spatial shapes or affines differ.
        """
        records = list(ensure_tuple(img))
        first = records[0]
        for other in records[1:]:
            if other.spatial_shape != first.spatial_shape or not np.allclose(other.affine, first.affine):
                raise ValueError(
                    f"{other.source} differs from {first.source} in shape or affine: cannot stack"
                )
        meta = _meta(first)
        if len(records) == 1:
            return first.array, meta
        meta["original_channel_dim"] = 0
        return np.stack([r.array for r in records]), meta


def _claims(path: Path) -> bool:
    name = path.name.lower()
    return path.is_dir() or "." not in name or name.endswith(SUFFIXES)


def _meta(record: ImageRecord) -> dict[str, Any]:
    has_channel_axis = record.array.ndim > len(record.spatial_shape)
    meta: dict[str, Any] = {
        key: value
        for key, value in record.metadata.items()
        if key not in IDENTIFYING_KEYS and isinstance(value, str | int | float | bool)
    }
    meta.update(
        affine=np.array(record.affine, dtype=np.float64),
        original_affine=np.array(record.affine, dtype=np.float64),
        spatial_shape=np.array(record.spatial_shape),
        original_channel_dim=-1 if has_channel_axis else float("nan"),
        space="RAS",
        modality=record.modality,
        photometric=record.photometric,
    )
    return meta
