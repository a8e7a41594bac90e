"""The README's tour runs as written: every row's commands, in order, in one folder, on a smaller cohort.

The commands are read from README.md itself (the backticked commands of the "command" column that are not in
parentheses), so a row edited there is a row tested here. Only the sizes shrink (:data:`SMALLER`, each of which
must still occur in the README); two rows are not run, for the reasons in :data:`NOT_RUN`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

SMALLER = {  # README text -> the same command on a smaller cohort / for fewer steps
    "--n-2d 500 --n-3d 20": "--n-2d 64 --n-3d 2 --depth 40,60",
    "tracking.register_as=tour": "tracking.register_as=tour train.steps=12 train.batch_size=16 train.eval_every=6",
    "--suite quick -o bench": "--suite quick --seeds 0 -o bench",
    "--work-dir work/phantom": "--work-dir work/phantom 'pretrain.overrides=[train.steps=12, train.batch_size=16]' "
    "evaluate.suite=quick 'evaluate.seeds=[0]' evaluate.baseline= gate.policy=gate-demo-quick.yaml",
}
NOT_RUN = {
    "Many GPUs / nodes": "several processes and nodes; tests/test_pretrain_runs.py and test_pipelines_cluster.py run torchrun",
    "Review findings": "a server that runs until stopped; tests/test_app_browser.py drives it in Chromium",
}
GATES = ("medvl promote", "medvl pipelines run")  # a refused gate (exit 1) is an outcome, not an error


def tour_rows(text: str) -> list[tuple[str, list[str]]]:
    """``(step, commands)`` of each row of the tour table."""
    table = text.split("## A tour", 1)[1].split("\n\n")
    rows = next(block for block in table if block.lstrip().startswith("| step |")).strip().splitlines()[2:]
    out = []
    for row in rows:
        step, command, _ = (cell.strip() for cell in row.strip().strip("|").split(" | "))
        out.append((step, commands_outside_parentheses(command)))
    return out


def commands_outside_parentheses(cell: str) -> list[str]:
    """The backticked spans of ``cell`` that are not inside a parenthesised remark."""
    spans, depth, i = [], 0, 0
    while i < len(cell):
        if cell[i] == "`":
            end = cell.index("`", i + 1)
            if depth == 0:
                spans.append(cell[i + 1 : end])
            i = end + 1
            continue
        depth += {"(": 1, ")": -1}.get(cell[i], 0)
        i += 1
    return spans


def test_the_tour_table_is_read_and_every_size_change_applies():
    text = README.read_text()
    rows = dict(tour_rows(text))
    assert {"Pretrain", "Benchmark a model", "The whole loop"} <= set(rows) and set(NOT_RUN) <= set(rows)
    assert all(commands for commands in rows.values())
    for written in SMALLER:
        assert written in text, f"README no longer says {written!r}; update SMALLER"


@pytest.mark.slow
def test_every_tour_row_runs_as_written(realdata, tmp_path):
    for shared in ("configs", "governance", "pipelines"):  # the tour runs from the repository root
        (tmp_path / shared).symlink_to(REPO / shared)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MEDVL_REALDATA": str(realdata),
        "MEDVL_CACHE": str(tmp_path / "medvl-cache"),
        "BENCHX_DATA": str(tmp_path / "benchx-data"),
        "PYTHONPATH": str(REPO),
    }
    env.pop("MLFLOW_TRACKING_URI", None)  # the tour's default: sqlite:///mlflow.db in the folder
    ran = []
    for step, commands in tour_rows(README.read_text()):
        if step in NOT_RUN:
            continue
        for command in commands:
            for written, smaller in SMALLER.items():
                command = command.replace(written, smaller)
            done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=600)  # fmt: skip
            allowed = (0, 1) if command.startswith(GATES) or " pipelines run " in command else (0,)
            where = f"{step}: {command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            assert done.returncode in allowed, where
            assert "Traceback" not in done.stderr, where
            ran.append(command)
    assert len(ran) >= 15
    assert (tmp_path / "bench" / "results.json").is_file() and (tmp_path / "report").is_dir()
    assert (tmp_path / "card").is_dir() and (tmp_path / "phantoms-deid").is_dir()
    assert (tmp_path / "work" / "phantom" / "pipeline-state.json").is_file()
