"""The source-adapter contract: how a public or hospital layout becomes manifest rows.

An adapter splits its source into independent *units* (a study folder, a CSV row range, a report file...)
in a deterministic order, so ``medvl ingest --shard i/n`` can take every n-th unit, and turns one unit into
manifest rows (:func:`medvl.data.manifest.make_row`). A unit that cannot be read raises
:class:`medvl.io.errors.MedvlIOError` (or ``ValueError``) naming the file and reason: ingestion quarantines
it and goes on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

ADAPTERS: dict[str, type[SourceAdapter]] = {}


class SourceAdapter(ABC):
    """Turns a source tree into manifest rows, one unit at a time."""

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, root: str | Path, **options: str) -> None:
        self.root = Path(root)
        self.options = options

    @abstractmethod
    def units(self) -> list[str]:
        """Independent units of work in a deterministic order."""

    @abstractmethod
    def rows(self, unit: str) -> list[dict]:
        """Manifest rows for one unit; raise ``MedvlIOError``/``ValueError`` to quarantine it."""

    def merge(self, rows: list[dict]) -> list[dict]:
        """Combine rows from all units (e.g. several series of one study); identity by default."""
        return rows


def register(cls: type[SourceAdapter]) -> type[SourceAdapter]:
    """Class decorator adding an adapter to :data:`ADAPTERS` under ``cls.name``."""
    ADAPTERS[cls.name] = cls
    return cls


def get_adapter(name: str) -> Callable[..., SourceAdapter]:
    """The adapter class registered as ``name``; the error lists the known names."""
    from medvl.data import adapters as _  # noqa: F401  (registers the built-in adapters)

    if name not in ADAPTERS:
        raise KeyError(f"unknown source '{name}'; known sources: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name]
