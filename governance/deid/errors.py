"""Typed refusals raised by :mod:`governance.deid`.

Every error names the file or folder (or setting) it concerns and the reason. :class:`DeidConfigError` is a bad
invocation (no key, wrong folders, an output folder begun with another key): nothing is processed.
:class:`DeidFileError` is one input that cannot be de-identified: batch runs record it and go on.
"""

from __future__ import annotations

from pathlib import Path


class DeidError(Exception):
    """Base class: something de-identification refuses to do, with the path and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DeidConfigError(DeidError):
    """The run is set up wrongly (key, folders, options); fix the invocation and run again."""


class DeidFileError(DeidError):
    """One input file cannot be de-identified safely; it is reported and never written to the output tree."""
