"""Paired comparison of two evaluations (``benchx compare A.json B.json``).

Both evaluations resample the same test cases with the same bootstrap weights (they depend only on the test
set), so the difference of their seed-averaged replicates is a paired bootstrap distribution of ``A - B``.
The datasets must have the same split hash and bootstrap count; rows are matched by dataset, task, fraction,
metric and subgroup.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchx.errors import ResultsError
from benchx.results import BenchResults
from benchx.stats import paired_p_value, percentile_ci


@dataclass(frozen=True)
class Comparison:
    """One shared row: means of A and B, the difference, its 95% CI and the paired p-value."""

    dataset: str
    task: str
    fraction: float
    metric: str
    group: str
    group_value: str
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float


def compare(a: BenchResults, b: BenchResults, all_groups: bool = False) -> list[Comparison]:
    """Paired comparison of every result row A and B share.

    Raises:
        ResultsError: different test splits or bootstrap counts, no shared rows, missing replicates.
    """
    for name in set(a.datasets) & set(b.datasets):
        if a.datasets[name]["split_hash"] != b.datasets[name]["split_hash"]:
            raise ResultsError(f"dataset '{name}' has different splits in {a.path} and {b.path}; "
                               f"a paired comparison needs the same test set")
    if a.protocol.get("bootstrap") != b.protocol.get("bootstrap"):
        raise ResultsError(f"bootstrap counts differ ({a.protocol.get('bootstrap')} vs {b.protocol.get('bootstrap')}); "
                           f"re-run one with --bootstrap to match")
    rep_a, rep_b = a.replicates(), b.replicates()
    rows_b = {r.key: r for r in b.results}
    out = []
    for ra in a.results:
        rb = rows_b.get(ra.key)
        if rb is None or (ra.group and not all_groups) or ra.key not in rep_a or rb.key not in rep_b:
            continue
        diff = rep_a[ra.key] - rep_b[rb.key]
        low, high = percentile_ci(diff)
        out.append(Comparison(ra.dataset, ra.task, ra.fraction, ra.metric, ra.group, ra.group_value, ra.mean,
                              rb.mean, ra.mean - rb.mean, low, high, paired_p_value(rep_a[ra.key], rep_b[rb.key])))
    if not out:
        raise ResultsError(f"{a.path} and {b.path} share no result rows (different suites, tasks or fractions?)")
    return out


def format_table(rows: list[Comparison]) -> str:
    """A plain-text table of comparisons."""
    header = f"{'dataset':14s} {'task':16s} {'frac':>5s} {'metric':28s} {'A':>7s} {'B':>7s} {'A-B':>7s} {'95% CI':>17s} {'p':>6s}"
    lines = [header, "-" * len(header)]
    for r in rows:
        metric = r.metric + (f" [{r.group}={r.group_value}]" if r.group else "")
        lines.append(f"{r.dataset:14s} {r.task:16s} {r.fraction:5g} {metric:28s} {r.mean_a:7.3f} {r.mean_b:7.3f} "
                     f"{r.diff:+7.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] {_p(r.p_value):>6s}")
    return "\n".join(lines)


def _p(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{value:.3f}"
