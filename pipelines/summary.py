"""Text summaries the demo prints: the cohort, and the benchx comparison of a model against a baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from medvl.data.manifest import read_manifest


def cohort_summary(manifest: str | Path) -> str:
    """Studies per source and split, and how often each label is positive."""
    df = read_manifest(manifest)
    table = pd.crosstab(df["source"], df["split"], margins=True, margins_name="total")
    labels = pd.DataFrame([json.loads(v) for v in df["labels"]])
    positive = (labels == 1).sum().sort_values(ascending=False) if len(labels.columns) else pd.Series(dtype=int)
    lines = [f"cohort: {len(df)} studies, {df['patient_id'].nunique()} patients", table.to_string(), "positive labels:"]
    lines += [f"  {name:28s} {int(count):6d}" for name, count in positive.items() if count]
    return "\n".join(lines)


def _overall_rows(results: dict) -> pd.DataFrame:
    rows = [r for r in results.get("results", []) if not r.get("group")]
    columns = ["dataset", "task", "fraction", "metric", "mean", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def comparison_table(model_results: str | Path, baseline_results: str | Path, metrics: tuple[str, ...] = ()) -> str:
    """Model vs baseline on every overall row they share: mean [95% CI] each, and the difference.

    Args:
        model_results: the model's benchx ``results.json``.
        baseline_results: the baseline's ``results.json``.
        metrics: keep only these metric names (all when empty).
    """
    keys = ["dataset", "task", "fraction", "metric"]
    model = _overall_rows(json.loads(Path(model_results).read_text()))
    base = _overall_rows(json.loads(Path(baseline_results).read_text()))
    both = model.merge(base, on=keys, suffixes=("_model", "_base"))
    if metrics:
        both = both[both["metric"].isin(metrics)]
    if both.empty:
        return "(model and baseline share no overall result row)"

    def cell(prefix: str) -> pd.Series:
        return both.apply(lambda r: f"{r['mean_' + prefix]:.3f} [{r['ci_low_' + prefix]:.3f}, "
                                    f"{r['ci_high_' + prefix]:.3f}]", axis=1)

    out = both[keys].copy()
    out["model"] = cell("model")
    out["baseline"] = cell("base")
    out["diff"] = (both["mean_model"] - both["mean_base"]).map(lambda v: f"{v:+.3f}")
    return out.sort_values(keys).to_string(index=False)
