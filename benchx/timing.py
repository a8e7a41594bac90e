"""How long task runs take on this machine, and the plan of an evaluation with an estimate of its time.

Every computed task run's wall time is kept in ``DATA_DIR/timings.json`` (the last :data:`KEEP` per dataset,
task and fraction, whatever the model); the estimate of a run is the median of those, cached runs cost nothing,
and runs never timed here are counted apart (a first run also extracts the model's features).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections import Counter
from pathlib import Path

from benchx.plan import Unit

TIMINGS_FILE = "timings.json"
KEEP = 5


def unit_key(unit: Unit) -> str:
    """The timing key of a run: dataset, task and fraction (seeds take about as long as each other)."""
    return f"{unit.dataset}/{unit.task}/{unit.fraction:g}"


class TimingLog:
    """Past wall times of task runs (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / TIMINGS_FILE
        try:
            self.times: dict[str, list[float]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.times = {}

    def estimate(self, unit: Unit) -> float | None:
        """The median recorded time of runs like ``unit``, None when none was timed here."""
        times = self.times.get(unit_key(unit))
        return statistics.median(times) if times else None

    def record(self, unit: Unit, seconds: float) -> None:
        """Keep one run's wall time (the file is replaced atomically)."""
        self.times[unit_key(unit)] = [*self.times.get(unit_key(unit), []), round(seconds, 3)][-KEEP:]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".timings-")
        with os.fdopen(fd, "w") as handle:
            json.dump(self.times, handle)
        os.replace(tmp, self.path)


def format_duration(seconds: float) -> str:
    """``45 s``, ``3 min 20 s`` or ``1 h 05 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def plan_text(suite: str, units: list[Unit], cached: set[Unit], log: TimingLog) -> str:
    """The plan of an evaluation: runs per dataset and task, how many are cached, and the estimated time."""
    datasets = list(dict.fromkeys(u.dataset for u in units))
    lines = [f"benchx plan: suite {suite}, {len(units)} task runs on {len(datasets)} dataset(s), "
             f"{len(cached)} cached, {len(units) - len(cached)} to run"]  # fmt: skip
    for dataset in datasets:
        counts = Counter(u.task for u in units if u.dataset == dataset)
        lines.append(f"  {dataset}: " + ", ".join(f"{task} x{n}" for task, n in counts.items()))
    todo = [u for u in units if u not in cached]
    known = [t for t in (log.estimate(u) for u in todo) if t is not None]
    untimed = len(todo) - len(known)
    if not todo:
        lines.append("  estimate: everything is cached (seconds)")
    elif known:
        lines.append(f"  estimate: about {format_duration(sum(known))} from earlier runs on this machine"
                     + (f", plus {untimed} run(s) never timed here" if untimed else ""))
    else:
        lines.append(f"  estimate: none yet ({untimed} runs never timed here; this run's times make the next "
                     "estimate)")
    return "\n".join(lines)
