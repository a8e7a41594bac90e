"""``benchx report``: a leaderboard per dataset and task with plots, as self-contained HTML, Markdown and LaTeX.

One results file is the baseline (default: the first). For every dataset and task, the headline metrics
(:data:`benchx.headline.HEADLINE`) of every model with mean and 95% CI, the difference against the baseline
with its paired bootstrap 95% CI and p-value (:func:`benchx.compare.compare`), a ``*`` where ``p < 0.05``, the
chance level and whether a CI contains it; the other metrics (per-class AUROC...) in a second table; a bar
chart (one fraction) or few-shot curves (several). Writes ``report.html`` (images embedded), ``report.md``
with ``<dataset>-<task>.png`` beside it, and ``report.tex`` (the leaderboards as booktabs tables).
"""

from __future__ import annotations

import html
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from benchx.compare import compare
from benchx.errors import ResultsError
from benchx.headline import chance_level
from benchx.report_html import image, page
from benchx.report_plots import task_figure
from benchx.report_tables import LEGEND, Table, headline_metrics, html_table, latex, markdown, task_table
from benchx.results import ROW_FIELDS, BenchResults

TITLE = "benchx report"
_KEYS = ["model", "dataset", "task", "fraction", "metric"]
_DIFF_COLUMNS = {"diff": "diff", "ci_low": "diff_low", "ci_high": "diff_high", "p_value": "p_value",
                 "n_resamples": "n_resamples"}


def model_labels(results: list[BenchResults]) -> list[str]:
    """A distinct label per results file: the model's name and version, else its reference."""
    labels: list[str] = []
    for res in results:
        label = res.model.get("name") or res.model.get("ref") or "model"
        if res.model.get("version"):
            label += f" v{res.model['version']}"
        unique, n = label, 2
        while unique in labels:
            unique, n = f"{label} ({n})", n + 1
        labels.append(unique)
    return labels


def report_frame(results: list[BenchResults], labels: list[str], baseline: int) -> tuple[pd.DataFrame, list[str]]:
    """The overall rows of every model with ``is_baseline``, ``chance`` and the difference against
    ``results[baseline]`` (``diff``, ``diff_low``, ``diff_high``, ``p_value``, ``n_resamples``; NaN for the
    baseline and for a model that cannot be paired with it), and a note per such model saying why."""
    rows, diffs, notes = [], [], []
    for i, (res, label) in enumerate(zip(results, labels, strict=True)):
        rows += [{"model": label, "is_baseline": i == baseline, **asdict(r)} for r in res.results if not r.group]
        if i == baseline:
            continue
        try:
            diffs += [{"model": label, **asdict(c)} for c in compare(res, results[baseline])]
        except ResultsError as exc:
            notes.append(f"{label}: no paired comparison with the baseline: {exc}")
    frame = pd.DataFrame(rows, columns=["model", "is_baseline", *ROW_FIELDS])
    diff = pd.DataFrame(diffs, columns=[*_KEYS, *_DIFF_COLUMNS]).rename(columns=_DIFF_COLUMNS)
    frame = frame.merge(diff, on=_KEYS, how="left")
    frame["chance"] = np.array([chance_level(m, n) for m, n in zip(frame["metric"], frame["n_test"], strict=True)],
                               dtype=float)
    return frame, notes


def models_table(results: list[BenchResults], labels: list[str], baseline: int) -> Table:
    """Who is who: label, role, model reference, suite, results file and MLflow run of each model."""
    rows = [[label, "baseline" if i == baseline else "", res.model.get("ref", ""), res.suite, str(res.path or ""),
             res.mlflow_run_id] for i, (res, label) in enumerate(zip(results, labels, strict=True))]
    flags = [("baseline",) if i == baseline else () for i in range(len(rows))]
    return Table(["model", "role", "reference", "suite", "results", "MLflow run"], rows, flags)


def write_report(result_files: list[str | Path], out_dir: str | Path, baseline: str | Path | None = None) -> list[Path]:
    """Write ``report.html``, ``report.md``, ``report.tex`` and the PNG plots to ``out_dir``; returns their paths.

    Args:
        result_files: ``results.json`` files, one per model.
        out_dir: output folder (created).
        baseline: the baseline's results file (added to ``result_files`` when not among them); default the first.

    Raises:
        ResultsError: a file is not a benchx results file.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [Path(p) for p in result_files]
    resolved = [p.resolve() for p in files]
    if baseline is not None and Path(baseline).resolve() not in resolved:
        files.insert(0, Path(baseline))
        resolved.insert(0, Path(baseline).resolve())
    base = resolved.index(Path(baseline).resolve()) if baseline is not None else 0
    results = [BenchResults.from_json(p) for p in files]
    labels = model_labels(results)
    frame, notes = report_frame(results, labels, base)
    notes += [f"{label}: failed task run {f.dataset}/{f.task} fraction {f.fraction:g} seed {f.seed}: {f.error}"
              for res, label in zip(results, labels, strict=True) for f in res.failures]

    intro = f"Baseline: {labels[base]}. {LEGEND}"
    md = [f"# {TITLE}", "", intro, "", "## Models", "", markdown(models_table(results, labels, base)), ""]
    md += [*(f"- {n}" for n in notes), ""] if notes else []
    body = [f"<h1>{TITLE}</h1>", f'<p class="legend">{html.escape(intro)}</p>', "<h2>Models</h2>",
            html_table(models_table(results, labels, base))]
    body += ['<ul class="note">', *(f"<li>{html.escape(n)}</li>" for n in notes), "</ul>"] if notes else []
    tex = ["% benchx report: one table per dataset and task; needs \\usepackage{booktabs}", ""]
    plots = []
    for (dataset, task), part in frame.groupby(["dataset", "task"], sort=True):
        metrics = list(dict.fromkeys(part["metric"]))
        head = headline_metrics(task, metrics)
        others = [m for m in sorted(metrics) if m not in head]
        title = f"{dataset} / {task}"
        if part["fraction"].nunique() == 1 and part["fraction"].iloc[0] < 1:
            title += f" (training fraction {part['fraction'].iloc[0]:g})"
        board = task_table(part, head)
        plot = out / f"{dataset}-{task}.png"
        png = task_figure(part, head, labels, title)
        plot.write_bytes(png)
        plots.append(plot)
        md += [f"## {title}", "", markdown(board), "", f"![{title}]({plot.name})", ""]
        body += [f"<h2>{html.escape(title)}</h2>", html_table(board), image(png, title)]
        tex += [latex(board, f"{title}; baseline {labels[base]}. {LEGEND}",
                      f"tab:benchx-{dataset}-{task}"), ""]
        if others:
            rest = task_table(part, others)
            md += ["### Other metrics", "", markdown(rest), ""]
            body += [f"<details><summary>Other metrics ({len(others)})</summary>", html_table(rest), "</details>"]

    paths = [out / "report.html", out / "report.md", out / "report.tex"]
    paths[0].write_text(page(TITLE, body), encoding="utf-8")
    paths[1].write_text("\n".join(md), encoding="utf-8")
    paths[2].write_text("\n".join(tex), encoding="utf-8")
    return [*paths, *plots]
