"""The report's tables: per dataset and task, one row per metric, fraction and model with its mean and 95% CI,
the difference against the baseline with its paired 95% CI, p-value and significance mark, and the chance
level; rendered as Markdown, LaTeX (booktabs) or HTML from the same cells. Metrics where lower is better (ECE,
Brier score) carry :data:`LOWER` after their name, say so in the metric column's header and rank models by
increasing mean.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchx.compare import ALPHA
from benchx.headline import HEADLINE, lower_is_better
from benchx.stats import format_p

DIFF = "Δ vs baseline [95% CI]"
LOWER = "↓"
LEGEND = (f"mean [95% CI]: mean over seeds, 95% percentile bootstrap CI over test cases. Δ: model - baseline, "
          f"95% CI and two-sided p-value of the paired bootstrap (both models on the same resampled test cases); "
          f"* p < {ALPHA:g}, not corrected for multiple comparisons. chance: the value of an uninformative model "
          f"(AUROC 0.5; recall@k k/N over N gallery items); (at chance): the 95% CI contains it. {LOWER}: lower is "
          f"better (calibration: ECE, Brier score); higher is better for every other metric.")


@dataclass(frozen=True)
class Table:
    """Formatted cells, and per row its flags (``baseline``, ``significant``, ``at-chance``)."""

    columns: list[str]
    rows: list[list[str]]
    flags: list[tuple[str, ...]]


def headline_metrics(task: str, metrics: list[str]) -> list[str]:
    """The task's headline metrics among ``metrics``, in :data:`HEADLINE` order (all of them for other tasks)."""
    chosen = [m for m in HEADLINE.get(task, ()) if m in metrics]
    return chosen or sorted(metrics)


def task_table(part: pd.DataFrame, metrics: list[str]) -> Table:
    """The rows of ``part`` (one dataset and task of the report frame) for ``metrics``, in that order; within a
    metric and fraction, models best first (by decreasing mean; increasing where lower is better). A fraction
    column when there are several fractions, the difference and p columns when there are several models."""
    part = part[part["metric"].isin(metrics)]
    lower = part["metric"].map(lower_is_better).astype(bool)
    part = part.assign(order=part["metric"].map(metrics.index), rank=part["mean"].where(lower, -part["mean"]))
    part = part.sort_values(["order", "fraction", "rank"])
    fractions, compared = part["fraction"].nunique() > 1, part["model"].nunique() > 1
    metric_header = f"metric ({LOWER} lower is better)" if lower.any() else "metric"
    columns = [metric_header, *(["fraction"] if fractions else []), "model", "mean [95% CI]",
               *([DIFF, "p"] if compared else []), "chance"]
    rows, flags = [], []
    for r in part.itertuples(index=False):
        at_chance = _at_chance(r.chance, r.ci_low, r.ci_high)
        row = [metric_label(r.metric), *([f"{r.fraction:g}"] if fractions else []), r.model,
               _interval(r.mean, r.ci_low, r.ci_high, "") + (" (at chance)" if at_chance else "")]
        if compared:
            row += _difference(r)
        row.append("" if math.isnan(r.chance) else f"{r.chance:.3f}")
        rows.append(row)
        flags.append(tuple(name for name, on in (("baseline", r.is_baseline), ("significant", r.p_value < ALPHA),
                                                 ("at-chance", at_chance)) if on))
    return Table(columns, rows, flags)


def metric_label(metric: str) -> str:
    """The metric's name, followed by :data:`LOWER` where lower is better."""
    return f"{metric} {LOWER}" if lower_is_better(metric) else metric


def _at_chance(chance: float, low: float, high: float) -> bool:
    return bool(low <= chance <= high)  # False when any is NaN


def _interval(mean: float, low: float, high: float, sign: str) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}]"


def _difference(r: Any) -> list[str]:
    if r.is_baseline:
        return ["baseline", ""]
    if math.isnan(r.diff):
        return ["n/a", ""]
    mark = " *" if r.p_value < ALPHA else ""
    return [_interval(r.diff, r.diff_low, r.diff_high, "+") + mark, format_p(r.p_value, int(r.n_resamples))]


def markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table."""

    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")

    lines = ["| " + " | ".join(map(cell, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table.rows]
    return "\n".join(lines)


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": "$<$", ">": "$>$",
          "Δ": r"$\Delta$", LOWER: r"$\downarrow$"}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (``<``, ``>``, ``Δ`` and a number's minus sign in math
    mode)."""
    escaped = "".join(_LATEX.get(c, c) for c in text)
    return re.sub(r"(?<![\w-])-(?=\d)", "$-$", escaped)


def latex(table: Table, caption: str, label: str) -> str:
    """A ``table`` float with a booktabs ``tabular`` (``\\usepackage{booktabs}``), space between metrics."""
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small", rf"\caption{{{latex_escape(caption)}}}",
             rf"\label{{{re.sub(r'[^A-Za-z0-9:-]', '-', label)}}}", rf"\begin{{tabular}}{{{'l' * len(table.columns)}}}",
             r"\toprule", " & ".join(map(latex_escape, table.columns)) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        if i and row[0] != table.rows[i - 1][0]:
            lines.append(r"\addlinespace")
        lines.append(" & ".join(map(latex_escape, row)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def html_table(table: Table) -> str:
    """An HTML table in a horizontally scrolling box; rows carry their flags as classes."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join(f'<tr class="{" ".join(flags)}">' + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row, flags in zip(table.rows, table.flags, strict=True))
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
