"""The task runs of an evaluation, and whether they cover a suite's whole protocol.

A suite's protocol is every (dataset, task, fraction, seed) of its datasets, tasks, fractions and seeds
(training-free tasks once, at fraction 1.0 and the first seed) with at least its number of bootstrap resamples.
Results are *complete* only when every one of those runs succeeded; anything less (a restriction of datasets,
tasks, fractions or seeds, fewer resamples, a failed run) makes them *partial*, and a partial result can never
satisfy a promotion gate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from benchx.cards import DatasetCard
from benchx.tasks.base import TRAINING_FREE

MAX_LISTED = 12


@dataclass(frozen=True)
class Unit:
    """One task run of the plan."""

    dataset: str
    task: str
    fraction: float
    seed: int


def plan_units(cards: list[DatasetCard], tasks: list[str] | None, fractions: list[float] | None,
               seeds: list[int]) -> list[Unit]:
    """Every task run of an evaluation, in order (``tasks`` / ``fractions`` None: the cards' own)."""
    units = []
    for card in cards:
        for task in (t for t in card.tasks if tasks is None or t in tasks):
            if task in TRAINING_FREE:
                units.append(Unit(card.name, task, 1.0, seeds[0]))
                continue
            units.extend(Unit(card.name, task, f, s) for f in (fractions or card.fractions) for s in seeds)
    return units


@dataclass(frozen=True)
class Completeness:
    """Whether results cover the suite's whole protocol, and what is missing when they do not."""

    complete: bool
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The ``completeness`` field of ``results.json``."""
        return {"complete": self.complete, "missing": list(self.missing)}


def completeness(required: Iterable[Unit], succeeded: Iterable[Unit], bootstrap: int,
                 required_bootstrap: int) -> Completeness:
    """Compare the runs that succeeded with the protocol's runs (and the resamples with its number).

    ``missing`` names, per dataset and task, the fractions and seeds not covered (at most :data:`MAX_LISTED`
    lines, then a count).
    """
    done = set(succeeded)
    absent: dict[tuple[str, str], set[Unit]] = {}
    for unit in required:
        if unit not in done:
            absent.setdefault((unit.dataset, unit.task), set()).add(unit)
    missing = []
    for (dataset, task), units in sorted(absent.items()):
        fractions = ", ".join(f"{f:g}" for f in sorted({u.fraction for u in units}))
        seeds = ", ".join(str(s) for s in sorted({u.seed for u in units}))
        missing.append(f"{dataset}/{task}: fraction(s) {fractions}, seed(s) {seeds}")
    if len(missing) > MAX_LISTED:
        missing = [*missing[:MAX_LISTED], f"... and {len(missing) - MAX_LISTED} more dataset/task pairs"]
    if bootstrap < required_bootstrap:
        missing.append(f"bootstrap: {bootstrap} resamples, the protocol needs {required_bootstrap}")
    return Completeness(not missing, tuple(missing))
