"""Typed refusals of benchx; each message names the file or field, the reason, and what to do.

Hierarchy::

    BenchxError (ValueError)
    ├── CardError            a dataset card or suite file breaks the schema (also a medvl ConfigError)
    ├── UnknownNameError     unknown dataset, suite, task or model; lists what exists
    ├── DataMissingError     a card's data path does not exist
    │   └── IncompleteDataError   the data lists files that cannot be read (also a FileNotFoundError)
    ├── LabelSpaceError      the card's label space does not match the data
    ├── SplitChangedError    the data's split differs from the frozen split
    └── ResultsError         a results file that is not ``benchx.results/1`` or cannot be compared
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from medvl.config import ConfigError
from medvl.errors import MedvlError


class BenchxError(MedvlError, ValueError):
    """Base class of every benchx refusal (the CLI turns it into exit status 2)."""


class CardError(BenchxError, ConfigError):
    """A dataset card or suite file that breaks the schema, naming the file and the field."""

    def __init__(self, path: str | Path, field: str, reason: str) -> None:
        self.path, self.field = str(path), field
        super().__init__(f"{path}: field '{field}': {reason}", field, reason)


def card_error(path: str | Path) -> Callable[[ConfigError], CardError]:
    """The ``error`` of :func:`medvl.config.build` for a card or suite file: the refusal as a CardError."""
    return lambda exc: CardError(path, exc.key or "<file>", exc.reason)


class UnknownNameError(BenchxError):
    """A dataset, suite, task or model name that does not exist; the message lists the known ones."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} '{name}'; known: {', '.join(self.known) or 'none'}")


class DataMissingError(BenchxError):
    """A dataset card whose data folder is absent."""


class IncompleteDataError(DataMissingError, FileNotFoundError):
    """A dataset whose tables list images or reports that are missing or unreadable; names the first."""


class LabelSpaceError(BenchxError):
    """A card label space that the data does not have."""


class SplitChangedError(BenchxError):
    """The data's train/val/test split differs from the split frozen by an earlier run."""


class ResultsError(BenchxError):
    """A results file that cannot be read or compared."""
