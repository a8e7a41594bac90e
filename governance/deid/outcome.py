"""What happened to one input file of a de-identification run, and how outputs are written."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DEIDENTIFIED = "deidentified"
QUARANTINED = "quarantined"
TEXT_MASKED = "text-masked"
SKIPPED = "skipped"
FAILED = "failed"


@dataclass
class FileOutcome:
    """What happened to one input file.

    Attributes:
        file: path relative to the input folder (POSIX separators).
        status: ``deidentified``, ``quarantined``, ``text-masked``, ``skipped`` or ``failed``.
        output: path of the written file relative to the output folder, empty when nothing was written.
        reason: why a file was quarantined, skipped or failed (and notes such as an allowed burned-in image).
        counts: action counts (DICOM) or ``phi_spans`` (text).
    """

    file: str
    status: str
    output: str = ""
    reason: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def write_atomically(dst: Path, write: Callable[[Path], object]) -> None:
    """Write ``dst`` through ``write(temporary_path)`` and rename it into place (no half-written ``dst``)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(dst.name + ".partial")
    try:
        write(partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, dst)
