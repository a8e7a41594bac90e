"""``benchx report`` on small hand-built results: leaderboards with differences, p-values, significance marks
and chance levels; bar charts and few-shot curves; self-contained HTML, Markdown and booktabs LaTeX."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from benchx.cli import main
from benchx.headline import HEADLINE, chance_level
from benchx.report import model_labels, report_frame, write_report
from benchx.report_plots import bar_chart, fraction_curves
from benchx.report_tables import headline_metrics, latex, markdown, task_table
from benchx.results import REPLICATES_FILE, BenchResults, ResultRow
from benchx.stats import format_p, percentile_ci

N_BOOT = 200
N_RETRIEVAL = 19  # R@10 chance = 10/19 = 0.526
CLASSIFICATION = ("auroc_macro", "f1_macro", "accuracy", "auroc_Cardiomegaly")
RETRIEVAL = ("i2t_R1", "i2t_R10", "precision_at_5")


def noise(seed: int, scale: float) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, N_BOOT)


def baseline_replicates() -> dict[tuple, np.ndarray]:
    """Replicates per (dataset, task, fraction, metric): linear probe at two fractions, zero-shot and retrieval."""
    reps = {}
    for i, metric in enumerate(CLASSIFICATION):
        for fraction in (0.1, 1.0):
            reps[("ds", "linear_probe", fraction, metric)] = 0.55 + 0.1 * fraction + noise(i, 0.03)
        reps[("ds", "zero_shot", 1.0, metric)] = 0.5 + noise(10 + i, 0.03)
    for i, metric in enumerate(RETRIEVAL):
        reps[("ds", "retrieval", 1.0, metric)] = (0.3 if metric == "i2t_R1" else 0.5) + noise(20 + i, 0.05)
    return reps


def model_replicates() -> dict[tuple, np.ndarray]:
    """The model: 0.2 better on every linear-probe AUROC (significant), the same up to noise elsewhere."""
    return {key: rep + (0.2 if key[1] == "linear_probe" and key[3].startswith("auroc") else 0) + noise(99, 0.01)
            for key, rep in baseline_replicates().items()}


def write_results(folder, name, replicates, paired=True):
    rows = []
    for (dataset, task, fraction, metric), rep in replicates.items():
        low, high = percentile_ci(rep)
        n_test = N_RETRIEVAL if task == "retrieval" else 40
        rows.append(ResultRow(dataset, task, fraction, metric, float(rep.mean()), 0.01, low, high,
                              [float(rep.mean())], n_test=n_test))
    res = BenchResults(model={"ref": f"random:{name}", "name": name, "version": ""}, suite="tiny",
                       protocol={"bootstrap": N_BOOT}, datasets={"ds": {"manifest_hash": "m", "split_hash": "s"}},
                       mlflow_run_id="run-" + name, results=rows)
    folder.mkdir(parents=True)
    res.to_json(folder / "results.json")
    if paired:
        np.savez(folder / REPLICATES_FILE, **{row.key: rep for row, rep in zip(rows, replicates.values(), strict=True)})
    return folder / "results.json"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    base = write_results(root / "base", "base-model", baseline_replicates())
    model = write_results(root / "model", "a-model-with-a-rather-long-name_v2", model_replicates())
    paths = write_report([base, model], root / "out")
    return root, [BenchResults.from_json(base), BenchResults.from_json(model)], paths


def test_format_p():
    assert format_p(0.01234) == "p = 0.012"
    assert format_p(1.0) == "p = 1.000"
    assert format_p(0.0004) == "p < 0.001"
    assert format_p(0.0, 1000) == "p < 0.002"  # no replicate crossed 0: p below the bootstrap's resolution 2/B
    assert format_p(0.0, 200) == "p < 0.01"
    assert format_p(0.0, 50_000) == "p < 0.001"
    assert format_p(float("nan")) == "p = n/a"


def test_chance_levels():
    assert chance_level("auroc_macro", 40) == chance_level("auroc_Cardiomegaly", 40) == 0.5
    assert chance_level("i2t_R10", 19) == pytest.approx(0.526, abs=1e-3)
    assert chance_level("t2i_R1", 50) == 0.02
    assert chance_level("i2t_R10", 5) == 1.0
    for metric in ("f1_macro", "accuracy", "precision_at_5", "dice", "iou"):
        assert chance_level(metric, 40) is None
    assert all(chance_level(m, 10) is not None for m in HEADLINE["retrieval"] if "_R" in m)


def test_frame_has_paired_differences_and_chance(report):
    _, results, _ = report
    labels = model_labels(results)
    frame, notes = report_frame(results, labels, baseline=0)
    assert notes == []
    model = frame[(frame["model"] == labels[1])].set_index(["task", "fraction", "metric"])
    base = frame[(frame["model"] == labels[0])].set_index(["task", "fraction", "metric"])
    assert base["diff"].isna().all() and base["is_baseline"].all()
    row = model.loc[("linear_probe", 1.0, "auroc_macro")]
    assert row["diff"] == pytest.approx(0.2 + noise(99, 0.01).mean(), abs=1e-9)
    assert row["diff_low"] > 0.15 and row["p_value"] == 0 and row["n_resamples"] == N_BOOT
    assert model.loc[("zero_shot", 1.0, "auroc_macro"), "p_value"] > 0.05
    assert model.loc[("retrieval", 1.0, "i2t_R10"), "chance"] == pytest.approx(10 / 19)
    assert math.isnan(model.loc[("retrieval", 1.0, "precision_at_5"), "chance"])


def leaderboard(report, task):
    _, results, _ = report
    frame, _ = report_frame(results, model_labels(results), 0)
    part = frame[frame["task"] == task]
    return task_table(part, headline_metrics(task, list(part["metric"].unique())))


def test_leaderboard_rows_marks_and_chance(report):
    table = leaderboard(report, "linear_probe")
    assert table.columns == ["metric", "fraction", "model", "mean [95% CI]", "Δ vs baseline [95% CI]", "p", "chance"]
    assert [r[0] for r in table.rows] == ["auroc_macro"] * 4 + ["f1_macro"] * 4 + ["accuracy"] * 4
    first = dict(zip(table.columns, table.rows[0], strict=True))
    assert first["fraction"] == "0.1" and first["model"].startswith("a-model")  # the better model ranks first
    assert re.fullmatch(r"\+0\.2\d\d \[\+0\.\d{3}, \+0\.\d{3}\] \*", first["Δ vs baseline [95% CI]"])
    assert first["p"] == "p < 0.01" and first["chance"] == "0.500" and "significant" in table.flags[0]
    assert table.rows[1][4] == "baseline" and table.flags[1] == ("baseline",)
    f1 = dict(zip(table.columns, table.rows[4], strict=True))
    assert not f1["Δ vs baseline [95% CI]"].endswith("*") and f1["chance"] == ""  # no chance level for F1


def test_at_chance_flag(report):
    zero_shot = leaderboard(report, "zero_shot")
    assert "fraction" not in zero_shot.columns  # one fraction: no column
    auroc = [row for row in zero_shot.rows if row[0] == "auroc_macro"]
    assert all(row[2].endswith("(at chance)") for row in auroc)
    retrieval = leaderboard(report, "retrieval")
    r10 = [dict(zip(retrieval.columns, row, strict=True)) for row in retrieval.rows if row[0] == "i2t_R10"]
    assert {r["chance"] for r in r10} == {"0.526"} and all(r["mean [95% CI]"].endswith("(at chance)") for r in r10)
    r1 = [row for row in retrieval.rows if row[0] == "i2t_R1"]
    assert all("(at chance)" not in row[2] for row in r1)  # about 0.3, chance 1/19
    assert all(("at-chance" in flags) == row[2].endswith("(at chance)") for row, flags in
               zip(retrieval.rows, retrieval.flags, strict=True))


def test_markdown_table(report):
    table = leaderboard(report, "linear_probe")
    lines = markdown(table).splitlines()
    assert lines[0].startswith("| metric | fraction |") and lines[1] == "|" + "---|" * 7
    assert len(lines) == 2 + len(table.rows)
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 8 for line in lines)
    assert r"\*" in lines[2] and "p < 0.01" in lines[2]


def test_latex_booktabs(report):
    tex = latex(leaderboard(report, "linear_probe"), "ds / linear_probe: 5% of_train & more", "tab:ds-linear_probe")
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    assert r"\hline" not in tex and r"\begin{tabular}{lllllll}" in tex
    assert r"auroc\_macro" in tex and r"linear\_probe: 5\% of\_train \& more" in tex
    assert r"\label{tab:ds-linear-probe}" in tex
    assert not re.search(r"(?<!\\)[_%#]", tex)
    assert "p $<$ 0.01" in tex and r"$\Delta$ vs baseline" in tex
    assert tex.count(r"\addlinespace") == 2  # between the three metrics
    assert tex.count(r" \\") == 1 + 12


class _Sources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [(tag, name, value) for name, value in attrs if name in ("src", "href")]


def test_outputs_and_self_contained_html(report):
    root, _, paths = report
    names = sorted(p.name for p in paths)
    assert names == ["ds-linear_probe.png", "ds-retrieval.png", "ds-zero_shot.png", "report.html", "report.md",
                     "report.tex"]
    page = (root / "out" / "report.html").read_text()
    parser = _Sources()
    parser.feed(page)
    assert parser.links and all(value.startswith("data:image/png;base64,") for _, _, value in parser.links)
    assert [tag for tag, _, _ in parser.links] == ["img"] * 3
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<style>" in page and "overflow-x: auto" in page and "max-width: 100%" in page
    assert page.count('<div class="scroll"><table>') == 1 + 3 + 2  # models, 3 leaderboards, 2 "other metrics"
    assert 'class="significant"' in page and 'class="baseline"' in page and "at-chance" in page
    md = (root / "out" / "report.md").read_text()
    assert "![ds / linear_probe](ds-linear_probe.png)" in md and "### Other metrics" in md
    assert "Baseline: base-model." in md and "auroc_Cardiomegaly" in md
    tex = (root / "out" / "report.tex").read_text()
    assert tex.count(r"\toprule") == 3 and "auroc_Cardiomegaly".replace("_", r"\_") not in tex  # headline only


def test_bars_with_whiskers_and_chance_for_one_fraction(report):
    _, results, _ = report
    labels = model_labels(results)
    frame, _ = report_frame(results, labels, 0)
    part = frame[frame["task"] == "retrieval"]
    ax = bar_chart(part, list(RETRIEVAL), labels).axes[0]
    bars = [c for c in ax.containers if c.__class__.__name__ == "BarContainer"]
    assert len(bars) == 2 and all(len(b.patches) == 3 and b.errorbar is not None for b in bars)
    heights = [p.get_height() for p in bars[0].patches]
    assert heights == pytest.approx(part[part["model"] == labels[0]].set_index("metric").loc[list(RETRIEVAL), "mean"])
    chance = [c for c in ax.collections if c.get_linestyle()[0][1] is not None]  # dashed segments
    assert sorted(round(seg[0][1], 3) for c in chance for seg in c.get_segments()) == [0.053, 0.526]


def test_curves_with_bands_and_chance_for_several_fractions(report):
    _, results, _ = report
    labels = model_labels(results)
    frame, _ = report_frame(results, labels, 0)
    fig = fraction_curves(frame[frame["task"] == "linear_probe"], ["auroc_macro", "f1_macro"], labels)
    auroc, f1 = fig.axes[:2]
    assert [line.get_xdata().tolist() for line in auroc.lines[:2]] == [[0.1, 1.0]] * 2
    assert sum(isinstance(c, PolyCollection) for c in auroc.collections) == 2  # a CI band per model
    assert any(line.get_linestyle() == "--" and line.get_ydata()[0] == 0.5 for line in auroc.lines)
    assert not any(line.get_linestyle() == "--" for line in f1.lines)
    assert sum(t.get_text() == "*" for t in auroc.texts) == 2  # significant at both fractions
    assert auroc.get_xscale() == "log"


def test_cli_baseline_option_and_unpaired_model(report, tmp_path, capsys):
    root, _, _ = report
    unpaired = write_results(tmp_path / "unpaired", "unpaired", model_replicates(), paired=False)
    out = tmp_path / "out"
    argv = ["report", str(root / "base" / "results.json"), str(unpaired), "-o", str(out),
            "--baseline", str(root / "model" / "results.json")]
    assert main(argv) == 0
    md = (out / "report.md").read_text()
    assert "Baseline: a-model-with-a-rather-long-name_v2." in md
    assert "| a-model-with-a-rather-long-name_v2 | baseline |" in md  # added first, as it was not listed
    assert "unpaired: no paired comparison with the baseline" in md and "| n/a |" in md
    assert str(out / "report.html") in capsys.readouterr().out


def test_duplicate_model_names_get_distinct_labels(report):
    _, results, _ = report
    assert model_labels([results[0], results[0], results[1]])[:2] == ["base-model", "base-model (2)"]
