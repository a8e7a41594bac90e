"""``benchx report``: Markdown and HTML with tables and plots from one or more ``results.json`` files.

For every dataset and task, the headline metric (:data:`HEADLINE`) against the training fraction with its 95%
CI band, one line per model (``<dataset>-<task>.png``); a leaderboard of the headline metrics at the largest
fraction across models; and the full table of overall rows.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from benchx.results import BenchResults

HEADLINE = {"linear_probe": "auroc_macro", "finetune_frozen": "auroc_macro", "finetune_full": "auroc_macro",
            "zero_shot": "auroc_macro", "retrieval": "i2t_R10", "segmentation": "dice"}


def results_frame(results: list[BenchResults]) -> pd.DataFrame:
    """Overall (non-subgroup) rows of every results file, with a ``model`` label column."""
    frames = []
    for res in results:
        label = res.model.get("name") or res.model.get("ref")
        if res.model.get("version"):
            label += f" v{res.model['version']}"
        frame = pd.DataFrame(res.rows())
        frame["model"] = label
        frames.append(frame[frame["group"] == ""])
    return pd.concat(frames, ignore_index=True)


def plot_fraction_curves(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per dataset and task: headline metric vs fraction, CI bands, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for (dataset, task), part in frame.groupby(["dataset", "task"], sort=True):
        metric = HEADLINE.get(task)
        part = part[part["metric"] == metric].sort_values("fraction")
        if part.empty:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for model, line in part.groupby("model", sort=True):
            ax.plot(line["fraction"], line["mean"], marker="o", label=model)
            ax.fill_between(line["fraction"], line["ci_low"], line["ci_high"], alpha=0.2)
        ax.set_xscale("log")
        ax.set_xlabel("training fraction")
        ax.set_ylabel(metric)
        ax.set_title(f"{dataset} / {task}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{dataset}-{task}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def leaderboard(frame: pd.DataFrame) -> pd.DataFrame:
    """Headline metric per dataset and task at the largest fraction, one column per model (mean [CI])."""
    rows = []
    for (dataset, task), part in frame.groupby(["dataset", "task"], sort=True):
        part = part[(part["metric"] == HEADLINE.get(task)) & (part["fraction"] == part["fraction"].max())]
        if part.empty:
            continue
        row = {"dataset": dataset, "task": task, "metric": HEADLINE[task], "fraction": part["fraction"].iloc[0]}
        for _, r in part.iterrows():
            row[r["model"]] = f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table."""
    cells = frame.astype(str)
    lines = ["| " + " | ".join(cells.columns) + " |", "|" + "---|" * len(cells.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines)


def write_report(result_files: list[str | Path], out_dir: str | Path) -> list[Path]:
    """Write ``report.md``, ``report.html`` and the plots; returns their paths.

    Raises:
        ResultsError: a file is not a benchx results file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = [BenchResults.from_json(p) for p in result_files]
    frame = results_frame(results)
    plots = plot_fraction_curves(frame, out)
    board = leaderboard(frame)
    table = frame[["model", "dataset", "task", "fraction", "metric", "mean", "std", "ci_low", "ci_high", "n_test"]].round(4)
    failures = [f"{r.model.get('ref')}: {f.dataset}/{f.task} f={f.fraction:g} seed={f.seed}: {f.error}"
                for r in results for f in r.failures]
    md = ["# benchx report", "", f"Models: {', '.join(sorted(frame['model'].unique()))}", "",
          "## Leaderboard (largest fraction, mean [95% CI])", "", markdown_table(board), "", "## Plots", ""]
    md += [f"![{p.stem}]({p.name})" for p in plots]
    md += ["", "## All results", "", markdown_table(table), ""]
    if failures:
        md += ["## Failed task runs", "", *[f"- {f}" for f in failures], ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))
    body = ["<h1>benchx report</h1>", "<h2>Leaderboard (largest fraction, mean [95% CI])</h2>",
            board.to_html(index=False, escape=True), "<h2>Plots</h2>"]
    body += [f'<img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}">' for p in plots]
    body += ["<h2>All results</h2>", table.to_html(index=False, escape=True)]
    if failures:
        body += ["<h2>Failed task runs</h2><ul>", *[f"<li>{html.escape(f)}</li>" for f in failures], "</ul>"]
    html_path = out / "report.html"
    html_path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>benchx report</title></head><body>"
                         + "\n".join(body) + "</body></html>\n")
    return [md_path, html_path, *plots]
