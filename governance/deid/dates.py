"""Shifting DICOM dates (DA) and date-times (DT) by a whole number of days.

A DT keeps its time of day and loses its UTC offset (the offset hints at where the patient was). Values that are
not a full calendar date (``2019``, ``201903``, ``20190230``, ACR-NEMA ``2019.03.01``) cannot be shifted safely:
the functions return None and the caller empties the element.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

_DT_TIME_RE = re.compile(r"^(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?$")


def shift_date(value: str, days: int) -> str | None:
    """``YYYYMMDD`` moved by ``days``, or None when ``value`` is not a full valid date."""
    text = value.strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        shifted = date(int(text[:4]), int(text[4:6]), int(text[6:])) + timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}"


def shift_datetime(value: str, days: int) -> str | None:
    """``YYYYMMDD[HH[MM[SS[.F]]]]`` moved by ``days`` without its UTC offset, or None when it has no full date."""
    text = value.strip()
    local = re.split(r"[+-]", text, maxsplit=1)[0]
    shifted = shift_date(local[:8], days)
    if shifted is None or not _DT_TIME_RE.match(local[8:]):
        return None
    return shifted + local[8:]
