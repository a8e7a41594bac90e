"""The source-adapter contract: how a public or hospital layout becomes manifest rows.

An adapter splits its source into independent *units* (a study folder, a CSV row range, a report file...)
in a deterministic order, so ``medvl ingest --shard i/n`` can take every n-th unit, and turns one unit into
manifest rows (:func:`medvl.data.manifest.make_row`) with :meth:`SourceAdapter.read_unit`. A unit that cannot be
read raises :class:`medvl.io.errors.MedvlIOError` (or ``ValueError`` / ``OSError``) naming the file and reason:
ingestion quarantines it and goes on. A unit that is only partly unreadable (one missing image of a study, a stray
non-DICOM file in a series folder) returns its rows plus the :class:`Rejected` files.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class Rejected:
    """A file (or unit) left out of the manifest, with the reason; it goes to the quarantine report."""

    path: str
    reason: str
    error_type: str

    @classmethod
    def from_exception(cls, path: str | Path, exc: BaseException) -> Rejected:
        """A rejection from an exception; uses the exception's own ``path``/``reason`` when it has them."""
        return cls(str(getattr(exc, "path", path)), str(getattr(exc, "reason", exc)), type(exc).__name__)


@dataclass
class UnitResult:
    """What one unit gave: manifest rows and the files that were left out."""

    rows: list[dict]
    rejected: list[Rejected] = field(default_factory=list)


class SourceAdapter(ABC):
    """Turns a source tree into manifest rows, one unit at a time.

    ``synthetic`` says whether the data is generated (phantoms) rather than from patients, and ``licence`` under
    which terms it may be used: model cards state both.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    synthetic: ClassVar[bool] = False
    licence: ClassVar[str] = "the terms of the data's owner"

    def __init__(self, root: str | Path, **options: str) -> None:
        self.root = Path(root)
        self.options = options

    @abstractmethod
    def units(self) -> list[str]:
        """Independent units of work in a deterministic order."""

    @abstractmethod
    def read_unit(self, unit: str) -> UnitResult:
        """Manifest rows of one unit plus the files left out of it; raise ``MedvlIOError``, ``ValueError`` or
        ``OSError`` naming the file to quarantine the whole unit."""

    def merge(self, rows: list[dict]) -> list[dict]:
        """Combine rows from all units (e.g. several series of one study); identity by default.

        Sharded ingestion merges each shard and then the shards together, so ``merge`` must give the same
        result on rows it has already merged.
        """
        return rows
