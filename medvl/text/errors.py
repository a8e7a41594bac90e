"""Typed refusals raised by :mod:`medvl.text`.

They subclass :class:`medvl.io.errors.MedvlIOError`, so they carry ``.path`` and ``.reason`` and ingestion can
quarantine the offending file the same way it does for images.
"""

from __future__ import annotations

from medvl.io.errors import MedvlIOError


class ReportSourceError(MedvlIOError):
    """A report file, archive or table that cannot be read as report text (missing, malformed, wrong column)."""


class LabelSpaceError(MedvlIOError):
    """A label-space or lexicon YAML file that does not follow the schema (the reason names the entry and field)."""
