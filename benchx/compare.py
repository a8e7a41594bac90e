"""Paired comparison of two evaluations (``benchx compare A.json B.json``).

Both evaluations resample the same test cases with the same bootstrap weights (they depend only on the test
set), so the difference of their seed-averaged replicates is a paired bootstrap distribution of ``A - B``.
The datasets must have the same split hash and bootstrap count; rows are matched by dataset, task, fraction,
metric and subgroup. A difference is marked significant (``*``) when its p-value is below :data:`ALPHA`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchx.errors import ResultsError
from benchx.results import BenchResults
from benchx.stats import format_p, paired_p_value, percentile_ci

ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """One shared row: means of A and B, the difference, its 95% CI, the paired p-value and the number of
    finite paired replicates it came from."""

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
    n_resamples: int

    @property
    def significant(self) -> bool:
        """Whether ``p < ALPHA``."""
        return bool(self.p_value < ALPHA)


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
                              rb.mean, ra.mean - rb.mean, low, high, paired_p_value(rep_a[ra.key], rep_b[rb.key]),
                              int(np.isfinite(diff).sum())))
    if not out:
        raise ResultsError(f"{a.path} and {b.path} share no result rows (different suites, tasks or fractions?)")
    return out


def format_table(rows: list[Comparison]) -> str:
    """A plain-text table of comparisons, columns as wide as their longest cell, and a legend line."""
    header = ("dataset", "task", "frac", "metric", "A", "B", "A-B", "95% CI", "p", "")
    cells = [header] + [
        (r.dataset, r.task, f"{r.fraction:g}", r.metric + (f" [{r.group}={r.group_value}]" if r.group else ""),
         f"{r.mean_a:.3f}", f"{r.mean_b:.3f}", f"{r.diff:+.3f}", f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
         format_p(r.p_value, r.n_resamples), "*" if r.significant else "")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    left = {0, 1, 3, 9}  # text columns; numbers are right-aligned
    lines = [" ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             .rstrip() for row in cells]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(f"A-B: difference of means; 95% CI and p: paired bootstrap; * p < {ALPHA:g}")
    return "\n".join(lines)
