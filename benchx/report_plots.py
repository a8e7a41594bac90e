"""The report's figures, as PNG bytes: a grouped bar chart (one bar per model per metric, 95% CI whiskers) for a
task measured at one fraction (zero-shot, retrieval), and few-shot curves (metric against the training
fraction, 95% CI bands, one panel per metric) for a task measured at several. Chance levels are dashed lines; a
``*`` over a bar or point marks a significant difference against the baseline.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchx.compare import ALPHA

DPI = 120


def task_figure(part: pd.DataFrame, metrics: list[str], models: list[str], title: str) -> bytes:
    """Bars when ``part`` (one dataset and task of the report frame) has one fraction, curves otherwise; a model
    keeps its colour (its index in ``models``) in every figure."""
    part = part[part["metric"].isin(metrics)]
    fig = bar_chart(part, metrics, models) if part["fraction"].nunique() == 1 else fraction_curves(part, metrics, models)
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def bar_chart(part: pd.DataFrame, metrics: list[str], models: list[str]) -> Figure:
    """One group of bars per metric, one bar per model, CI whiskers, a dashed chance segment per metric."""
    fig = Figure(figsize=(max(4.5, 0.35 * len(metrics) * (len(models) + 1) + 1.5), 4), layout="constrained")
    ax = fig.subplots()
    present = [m for m in models if m in set(part["model"])]
    width = 0.8 / len(present)
    x = np.arange(len(metrics))
    for i, model in enumerate(present):
        rows = part[part["model"] == model].set_index("metric").reindex(metrics)
        pos = x - 0.4 + width * (i + 0.5)
        errors = np.clip([rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]], 0, None)
        ax.bar(pos, rows["mean"], width, yerr=errors, capsize=3, color=f"C{models.index(model)}", label=model)
        for p, high, p_value in zip(pos, rows["ci_high"], rows["p_value"], strict=True):
            if p_value < ALPHA:
                ax.annotate("*", (p, high), ha="center", va="bottom", fontsize=12)
    for j, metric in enumerate(metrics):
        chance = part.loc[part["metric"] == metric, "chance"].iloc[0] if metric in set(part["metric"]) else math.nan
        if not math.isnan(chance):
            ax.hlines(chance, j - 0.45, j + 0.45, colors="black", linestyles="--", linewidth=1, zorder=3,
                      label="chance" if "chance" not in ax.get_legend_handles_labels()[1] else None)
    ax.set_xticks(x, metrics, rotation=30 if len(metrics) > 3 else 0, ha="right" if len(metrics) > 3 else "center")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("mean (95% CI)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18 if len(metrics) > 3 else -0.1), ncols=2)
    return fig


def fraction_curves(part: pd.DataFrame, metrics: list[str], models: list[str]) -> Figure:
    """One panel per metric: mean against the training fraction (log axis) with the 95% CI band per model and
    the chance level dashed."""
    columns = min(2, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    fractions = sorted(part["fraction"].unique())
    for ax, metric in zip(axes, metrics, strict=False):
        lines = part[part["metric"] == metric].sort_values("fraction")
        for model, line in lines.groupby("model", sort=False):
            colour = f"C{models.index(model)}"
            ax.plot(line["fraction"], line["mean"], marker="o", color=colour, label=model)
            ax.fill_between(line["fraction"], line["ci_low"], line["ci_high"], color=colour, alpha=0.2)
            for f, high, p_value in zip(line["fraction"], line["ci_high"], line["p_value"], strict=True):
                if p_value < ALPHA:
                    ax.annotate("*", (f, high), ha="center", va="bottom", fontsize=12, color=colour)
        chance = lines["chance"].iloc[0] if len(lines) else math.nan
        if not math.isnan(chance):
            ax.axhline(chance, color="black", linestyle="--", linewidth=1, label="chance")
        ax.margins(y=0.12)
        ax.set_xscale("log")
        ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
        ax.minorticks_off()
        ax.set_xlabel("training fraction")
        ax.set_title(metric, fontsize=10)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    legend = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=min(3, len(legend)), fontsize=8)
    return fig
