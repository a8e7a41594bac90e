"""``benchx compare``: paired differences with ``p < 0.001``-style p-values, significance marks and columns
aligned whatever the length of the names."""

from __future__ import annotations

import numpy as np

from benchx.cli import main
from benchx.compare import Comparison, compare, format_table
from benchx.results import BenchResults
from tests.test_benchx_report import N_BOOT, baseline_replicates, model_replicates, write_results


def comparison(dataset, metric, p_value, n_resamples=1000):
    return Comparison(dataset, "linear_probe", 1.0, metric, "", "", 0.8, 0.6, 0.2, 0.1, 0.3, p_value, n_resamples)


def test_table_aligns_long_names_and_formats_p():
    rows = [comparison("a-dataset-with-a-very-long-name", "auroc_Enlarged Cardiomediastinum", 0.0),
            comparison("ds", "f1", 0.0123),
            comparison("ds", "accuracy", float("nan"))]
    lines = format_table(rows).splitlines()
    table = [lines[0], *lines[2:5]]
    assert len({len(line.rstrip(" *")) for line in table}) == 1  # the p column ends at the same place
    for column in ("linear_probe", "0.800", "[+0.100, +0.300]"):
        assert len({line.index(column) for line in lines[2:5]}) == 1
    assert lines[1] == "-" * len(lines[0])
    assert lines[2].endswith("p < 0.002 *") and lines[3].endswith("p = 0.012 *") and lines[4].endswith("p = n/a")
    assert "0.000" not in lines[2].split("]")[-1]
    assert lines[-1].startswith("A-B: difference of means") and "* p < 0.05" in lines[-1]


def test_compare_marks_significant_rows(tmp_path, capsys):
    base = write_results(tmp_path / "base", "base", baseline_replicates())
    model = write_results(tmp_path / "model", "model", model_replicates())
    rows = {(r.task, r.fraction, r.metric): r for r in compare(BenchResults.from_json(model), BenchResults.from_json(base))}
    better = rows[("linear_probe", 1.0, "auroc_macro")]
    assert better.significant and better.p_value == 0 and better.n_resamples == N_BOOT and better.ci_low > 0
    same = rows[("zero_shot", 1.0, "auroc_macro")]
    assert not same.significant and same.ci_low < 0 < same.ci_high
    assert np.isclose(better.diff, better.mean_a - better.mean_b)
    assert main(["compare", str(model), str(base)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"A: random:model ({model})" and out[1] == f"B: random:base ({base})"
    line = next(s for s in out if s.startswith("ds ") and "linear_probe" in s and " auroc_macro " in s)
    assert line.endswith("p < 0.01 *")
