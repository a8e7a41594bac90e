"""Suites: named lists of datasets evaluated together (``benchx/suites/*.yaml`` or a YAML path).

A suite file has ``name``, ``description``, ``datasets`` (cards that must be usable) and optionally
``optional`` (cards included only when the card exists and its data is present), ``tasks`` (a restriction),
``fractions`` (default: each card's), ``seeds`` (default 0, 1, 2) and ``bootstrap`` (resamples of the 95% CIs,
default 1000). Together they are the suite's *protocol*: results are complete only when they cover all of it
(:mod:`benchx.plan`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import yaml

from benchx.cards import TASKS, card_files, find_card
from benchx.errors import BenchxError, CardError, UnknownNameError, card_error
from medvl.config import build, check_range, field_error

SUITE_DIR = Path(__file__).parent / "suites"
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_BOOTSTRAP = 1000


@dataclass(frozen=True)
class Suite:
    """A validated suite: required and optional dataset names, and an optional task restriction."""

    config_noun: ClassVar[str] = "field"
    name: str = ""
    description: str = ""
    datasets: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    tasks: tuple[str, ...] | None = None
    fractions: tuple[float, ...] | None = None
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    bootstrap: int = DEFAULT_BOOTSTRAP

    def __post_init__(self) -> None:
        if not self.datasets:
            raise field_error("datasets", "a suite needs a non-empty 'datasets' list")
        if self.tasks is not None and (not self.tasks or any(t not in TASKS for t in self.tasks)):
            raise field_error("tasks", f"must be a list of tasks from {', '.join(TASKS)}, got {list(self.tasks)!r}")
        if self.fractions is not None and (not self.fractions or any(not 0 < f <= 1 for f in self.fractions)):
            raise field_error("fractions", f"must be a list of numbers in (0, 1], got {list(self.fractions)!r}")
        if not self.seeds:
            raise field_error("seeds", "must be a non-empty list of integers")
        check_range("bootstrap", self.bootstrap, 1)

    def available_datasets(self) -> list[str]:
        """The required datasets plus the optional ones whose card exists and whose data is present."""
        cards = card_files()
        chosen = list(self.datasets)
        for name in self.optional:
            if name in cards and data_present(name):
                chosen.append(name)
        return chosen


def suite_names() -> list[str]:
    """Names of the built-in suites."""
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name or a suite YAML file by path (its ``name`` defaults to the file's stem).

    Raises:
        UnknownNameError: no such suite; CardError: the file breaks the schema.
    """
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UnknownNameError("suite", name_or_path, suite_names())
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CardError(path, "<file>", f"not valid YAML ({exc})") from exc
    suite = build(Suite, data, error=card_error(path))
    return suite if suite.name else dataclasses.replace(suite, name=path.stem)


def data_present(card_name: str) -> bool:
    """Whether a card's data can be used here: generated cards always, path cards when the folder exists."""
    try:
        card = find_card(card_name)
        path = card.data_path()
    except BenchxError:
        return False
    return path is None or path.exists()
