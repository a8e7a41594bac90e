"""Handling one file of an input tree: DICOM (:mod:`governance.deid.dicom_file`), report text
(:mod:`governance.deid.text_file`), or anything else (not copied, listed in the report as skipped)."""

from __future__ import annotations

from pathlib import Path

from governance.deid.dicom_file import deidentify_dicom_file
from governance.deid.errors import DeidFileError
from governance.deid.keys import KeyedHasher
from governance.deid.outcome import FAILED, FileOutcome
from governance.deid.text_file import TEXT_DELIMITERS, mask_text_file


def process_file(in_root: Path, out_root: Path, rel: str, hasher: KeyedHasher, allow_burned_in: bool) -> FileOutcome:
    """Handle one input file; a file that cannot be de-identified is reported as ``failed``, never written."""
    src = in_root / rel
    try:
        if src.suffix.lower() in TEXT_DELIMITERS:
            return mask_text_file(src, out_root, rel)
        return deidentify_dicom_file(src, out_root, rel, hasher, allow_burned_in)
    except DeidFileError as exc:
        return FileOutcome(rel, FAILED, reason=exc.reason)
    except OSError as exc:
        return FileOutcome(rel, FAILED, reason=f"{exc.strerror or exc}")
