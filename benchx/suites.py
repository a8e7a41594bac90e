"""Suites: named lists of datasets evaluated together (``benchx/suites/*.yaml`` or a YAML path).

A suite file has ``name``, ``description``, ``datasets`` (cards that must be usable) and optionally
``optional`` (cards included only when the card exists and its data is present) and ``tasks`` (a restriction).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from benchx.cards import TASKS, card_files, find_card
from benchx.errors import BenchxError, CardError, UnknownNameError

SUITE_DIR = Path(__file__).parent / "suites"


@dataclass(frozen=True)
class Suite:
    """A validated suite: required and optional dataset names, and an optional task restriction."""

    name: str
    description: str
    datasets: tuple[str, ...]
    optional: tuple[str, ...] = ()
    tasks: tuple[str, ...] | None = None

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
    """A built-in suite by name or a suite YAML file by path.

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
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), list) or not data["datasets"]:
        raise CardError(path, "datasets", "a suite needs a non-empty 'datasets' list")
    tasks = data.get("tasks")
    if tasks is not None and (not isinstance(tasks, list) or any(t not in TASKS for t in tasks)):
        raise CardError(path, "tasks", f"must be a list of tasks from {', '.join(TASKS)}, got {tasks!r}")
    return Suite(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description", "")),
        datasets=tuple(str(d) for d in data["datasets"]),
        optional=tuple(str(d) for d in data.get("optional") or ()),
        tasks=tuple(tasks) if tasks else None,
    )


def data_present(card_name: str) -> bool:
    """Whether a card's data can be used here: generated cards always, path cards when the folder exists."""
    try:
        card = find_card(card_name)
        path = card.data_path()
    except BenchxError:
        return False
    return path is None or path.exists()
