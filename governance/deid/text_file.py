"""Masking PHI in report text (``.txt``) and report tables (``.csv``, ``.tsv``) with
:func:`medvl.text.phi.mask_phi`. A table is masked cell by cell and keeps its header row."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from governance.deid.errors import DeidFileError
from governance.deid.outcome import TEXT_MASKED, FileOutcome, write_atomically
from medvl.text.phi import mask_phi

TEXT_DELIMITERS = {".txt": None, ".csv": ",", ".tsv": "\t"}


def _mask(text: str) -> tuple[str, int]:
    masked, spans = mask_phi(text)
    return masked, len(spans)


def mask_table(text: str, delimiter: str) -> tuple[str, int]:
    """Mask every cell of a delimited table except its header row; returns the table and the number of spans."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    spans = 0
    for number, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)):
        if number == 0:
            writer.writerow(row)
            continue
        masked_row = [_mask(cell) for cell in row]
        writer.writerow([cell for cell, _ in masked_row])
        spans += sum(count for _, count in masked_row)
    return buffer.getvalue(), spans


def mask_text_file(src: Path, out_root: Path, rel: str) -> FileOutcome:
    """Mask PHI in a report text or table into ``out_root/rel``.

    Raises:
        DeidFileError: the file is not UTF-8 text.
    """
    try:
        text = src.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DeidFileError(src, f"not UTF-8 text ({exc.reason} at byte {exc.start}); convert it to UTF-8") from exc
    delimiter = TEXT_DELIMITERS[src.suffix.lower()]
    masked, spans = mask_table(text, delimiter) if delimiter else _mask(text)
    write_atomically(out_root / rel, lambda p: p.write_text(masked, encoding="utf-8"))
    return FileOutcome(rel, TEXT_MASKED, rel, counts={"phi_spans": spans})
