"""Helpers the source adapters share: value normalisation, cheap file checks, CheXpert-style labels."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from medvl.data.adapters.base import Rejected
from medvl.text.labels import CHEXPERT_14
from medvl.text.sections import split_sections

CHEXPERT_LABELS: tuple[str, ...] = CHEXPERT_14
"""The 14 observations of the CheXpert labeller, used by CheXpert and MIMIC-CXR."""

XRAY_MODALITY = "DX"
"""Modality code given to projection radiographs that come without DICOM headers (JPEG/PNG releases)."""

_VIEWS = {
    "PA": "PA",
    "POSTERO_ANTERIOR": "PA",
    "AP": "AP",
    "AP SUPINE": "AP",
    "AP ERECT": "AP",
    "AP AXIAL": "AP",
    "ANTERO_POSTERIOR": "AP",
    "L": "LATERAL",
    "LL": "LATERAL",
    "RL": "LATERAL",
    "LAT": "LATERAL",
    "LATERAL": "LATERAL",
    "LEFT LATERAL": "LATERAL",
    "RIGHT LATERAL": "LATERAL",
    "LAO": "OBLIQUE",
    "RAO": "OBLIQUE",
    "LPO": "OBLIQUE",
    "RPO": "OBLIQUE",
    "OBLIQUE": "OBLIQUE",
}
_SIGNATURES = {  # suffix -> (format, leading bytes)
    ".jpg": ("JPEG", b"\xff\xd8\xff"),
    ".jpeg": ("JPEG", b"\xff\xd8\xff"),
    ".png": ("PNG", b"\x89PNG\r\n\x1a\n"),
    ".gz": ("gzip", b"\x1f\x8b"),
}


def normalise_view(raw: object) -> str:
    """A chest X-ray view as ``PA``, ``AP``, ``LATERAL``, ``OBLIQUE`` or empty when unknown.

    Upstream spellings vary (``AP Supine``, ``L``, ``LL``, ``postero_anterior``...); patient position
    (supine/erect) is not a view and is dropped.
    """
    text = "" if _missing(raw) else str(raw).strip().upper().replace("-", "_")
    return _VIEWS.get(text, _VIEWS.get(text.replace("_", " "), ""))


def primary_view(views: Iterable[str]) -> str:
    """The study-level view: PA if any image is PA, else AP, else the first known view."""
    known = [v for v in views if v]
    for preferred in ("PA", "AP"):
        if preferred in known:
            return preferred
    return known[0] if known else ""


def normalise_sex(raw: object) -> str:
    """``M``, ``F`` or empty (``Male``/``female``/``O``/``Unknown``... map to the first letter or empty)."""
    text = "" if _missing(raw) else str(raw).strip().upper()
    return text[0] if text[:1] in ("M", "F") else ""


def parse_age(raw: object) -> float | None:
    """Age in years from ``54``, ``54.0`` or a DICOM age string (``054Y``, ``006M``, ``010W``, ``003D``)."""
    if _missing(raw):
        return None
    text = str(raw).strip().upper()
    units = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}
    scale = units.get(text[-1:], None)
    number = text[:-1] if scale is not None else text
    try:
        value = float(number) * (scale or 1.0)
    except ValueError as exc:
        raise ValueError(f"age '{raw}' is not a number of years nor a DICOM age string") from exc
    if not 0 <= value < 150:
        raise ValueError(f"age '{raw}' is outside 0-150 years")
    return value


def chexpert_labels(record: Mapping[str, object], names: Iterable[str] = CHEXPERT_LABELS) -> dict[str, int]:
    """CheXpert-convention labels (1.0 positive, 0.0 negative, -1.0 uncertain, blank not mentioned).

    Raises:
        ValueError: a label column is absent or holds another value.
    """
    labels: dict[str, int] = {}
    for name in names:
        if name not in record:
            raise ValueError(f"label column '{name}' is missing")
        value = record[name]
        if _missing(value):
            continue
        try:
            number = float(value)  # type: ignore[arg-type]
        except ValueError:
            number = math.nan
        if number not in (1.0, 0.0, -1.0):
            raise ValueError(f"label '{name}' has value {value!r}; expected 1.0, 0.0, -1.0 or blank")
        labels[name] = int(number)
    return labels


def report_sections(text: str) -> dict[str, str]:
    """``findings`` and ``impression`` of a report (empty strings when it has no such headings)."""
    sections = split_sections(text)
    return {key: sections.get(key, "") for key in ("findings", "impression")}


def probe_file(path: str | Path) -> Rejected | None:
    """A cheap readability check without decoding: the file exists, is not empty, and, for JPEG, PNG and
    gzip (``.nii.gz``), starts with its format's signature. Returns the rejection, or None when it looks fine.
    """
    path = Path(path)
    if not path.is_file():
        return Rejected(str(path), "file not found", "MissingFileError")
    size = path.stat().st_size
    if size == 0:
        return Rejected(str(path), "file is empty", "NotAnImageError")
    expected = _SIGNATURES.get(path.suffix.lower())
    if expected is not None:
        kind, magic = expected
        with path.open("rb") as handle:
            head = handle.read(len(magic))
        if head != magic:
            return Rejected(str(path), f"does not start with the {kind} signature (corrupt or misnamed)",
                            "NotAnImageError")
    return None


def keep_readable(refs: Iterable[Mapping[str, str]]) -> tuple[list[dict], list[Rejected]]:
    """Split image references into those whose files pass :func:`probe_file` and the rejections.

    An unreadable mask is dropped from its (readable) image and reported; an unreadable image is dropped.
    """
    kept: list[dict] = []
    rejected: list[Rejected] = []
    for ref in refs:
        problem = probe_file(ref["path"])
        if problem is not None:
            rejected.append(problem)
            continue
        ref = dict(ref)
        if ref.get("mask"):
            mask_problem = probe_file(ref["mask"])
            if mask_problem is not None:
                rejected.append(mask_problem)
                ref["mask"] = ""
        kept.append(ref)
    return kept, rejected


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""
