"""``benchx`` end to end: a registered model evaluated through the CLI into a real sqlite MLflow store,
re-runs from the caches, bad input, report and compare."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from benchx.api import evaluate
from benchx.cli import main
from benchx.results import SCHEMA, BenchResults
from tests.benchx_tiny import TINY_2D, write_cards

TASKS = ["linear_probe", "finetune_frozen", "zero_shot", "retrieval"]  # segmentation: test_benchx_tasks.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Cards, a registered tiny model (version 1 of 'bx-demo') and an evaluation of it through the CLI."""
    root = tmp_path_factory.mktemp("benchx-cli")
    mp = pytest.MonkeyPatch()
    mp.setenv("BENCHX_CARDS", str(root / "cards"))
    mp.setenv("MEDVL_CACHE", str(root / "medvl-cache"))
    suite = write_cards(root / "cards")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    register_tiny_model(root, uri)
    env = {**os.environ, "BENCHX_CARDS": str(root / "cards"), "MEDVL_CACHE": str(root / "medvl-cache"),
           "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "benchx.cli", "evaluate", "--model", "models:/bx-demo/1", "--suite", str(suite),
           "--tasks", *TASKS, "--fractions", "1.0", "--seeds", "0", "1", "--bootstrap", "200",
           "-o", str(root / "out-a"), "--tracking-uri", uri, "--data-dir", str(root / "data")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "benchx plan: suite tiny, 6 task runs on 1 dataset(s), 0 cached, 6 to run" in proc.stderr
    yield root, suite, uri
    mp.undo()


def register_tiny_model(root, uri):
    import mlflow
    import torch

    from medvl.infer.pyfunc import log_pyfunc
    from medvl.models.registry import build_model

    torch.manual_seed(1)
    build_model("tiny-resnet18").save_pretrained(root / "model")
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        pass
    _, version = log_pyfunc(root / "model", run.info.run_id, uri, registered_name="bx-demo")
    assert version == "1"


@pytest.mark.slow
def test_results_json_follows_the_schema(setup):
    root, _, _ = setup
    data = json.loads((root / "out-a" / "results.json").read_text())
    assert data["schema"] == SCHEMA
    assert data["model"]["ref"] == "models:/bx-demo/1"
    assert data["model"]["name"] == "bx-demo" and data["model"]["version"] == "1"
    assert len(data["model"]["fingerprint"]) == 64
    assert data["suite"] == "tiny"
    assert data["protocol"] == {"seeds": [0, 1], "fractions": [1.0], "bootstrap": 200, "version": "3"}
    assert set(data["datasets"]["tiny-2d"]) == {"manifest_hash", "split_hash", "preprocessing"}
    assert data["failures"] == []
    row = next(r for r in data["results"] if r["task"] == "linear_probe" and r["metric"] == "auroc_macro" and not r["group"])
    assert set(row) == {"dataset", "task", "fraction", "metric", "mean", "std", "ci_low", "ci_high", "per_seed",
                        "group", "group_value", "n_test"}
    assert len(row["per_seed"]) == 2 and row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert {r["task"] for r in data["results"]} == set(TASKS)
    assert {"auroc_Cardiomegaly", "f1_macro", "ece_macro", "brier_macro", "i2t_R1", "t2i_R10",
            "precision_at_5"} <= {r["metric"] for r in data["results"]}
    assert {"sex", "view"} <= {r["group"] for r in data["results"]}
    assert (root / "out-a" / "results.csv").read_text().startswith("model_ref,")


@pytest.mark.slow
def test_mlflow_parent_nested_runs_and_model_version_tag(setup):
    from mlflow import MlflowClient

    root, _, uri = setup
    client = MlflowClient(uri)
    run_id = json.loads((root / "out-a" / "results.json").read_text())["mlflow_run_id"]
    parent = client.get_run(run_id)
    assert parent.data.tags["benchx.model_ref"] == "models:/bx-demo/1"
    assert parent.data.tags["benchx.model_version"] == "1" and parent.data.tags["benchx.suite"] == "tiny"
    assert {a.path for a in client.list_artifacts(run_id)} >= {"results.json", "results.csv"}
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    # linear_probe, finetune_frozen x 2 seeds + zero_shot + retrieval once
    assert len(children) == 6
    assert all("benchx.task" in c.data.tags and c.data.metrics for c in children)
    results = BenchResults.from_json(root / "out-a" / "results.json")
    for metric in ("auroc_macro", "ece_macro", "brier_macro"):
        assert parent.data.metrics[f"tiny-2d/linear_probe/{metric}"] == pytest.approx(
            next(r.mean for r in results.results if r.task == "linear_probe" and r.metric == metric and not r.group))
    # a restriction of the suite's protocol (2 seeds, 4 tasks, 200 resamples) is partial: no gate may take it
    assert not results.complete and parent.data.tags["benchx.complete"] == "false"
    assert any("segmentation" in m for m in results.completeness["missing"])
    assert "bootstrap: 200 resamples, the protocol needs 1000" in results.completeness["missing"]
    tags = client.get_model_version("bx-demo", "1").tags
    assert tags["benchx.partial_run_id.tiny"] == run_id and "benchx.run_id.tiny" not in tags


@pytest.mark.slow
def test_a_run_of_the_whole_protocol_is_complete_and_tagged_for_gates(setup, tmp_path):
    from mlflow import MlflowClient

    root, suite, uri = setup
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(yaml.safe_dump({"name": "tiny-protocol", "datasets": ["tiny-2d"], "tasks": TASKS,
                                        "fractions": [1.0], "seeds": [0, 1], "bootstrap": 200}))
    results = evaluate("models:/bx-demo/1", str(protocol), out_dir=tmp_path / "out", tracking_uri=uri,
                       data_dir=root / "data", progress=False)
    assert results.complete and results.completeness == {"complete": True, "missing": []}
    assert results.protocol["seeds"] == [0, 1] and results.protocol["bootstrap"] == 200
    tags = MlflowClient(uri).get_model_version("bx-demo", "1").tags
    assert tags["benchx.run_id.tiny-protocol"] == results.mlflow_run_id


@pytest.mark.slow
def test_rerun_reuses_caches_and_gives_identical_numbers(setup):
    from mlflow import MlflowClient

    root, suite, uri = setup
    again = evaluate("models:/bx-demo/1", str(suite), tasks=TASKS, fractions=[1.0], seeds=[0, 1],
                     out_dir=root / "out-b", tracking_uri=uri, data_dir=root / "data", bootstrap=200, progress=False)
    first = BenchResults.from_json(root / "out-a" / "results.json")
    assert again.to_dict()["results"] == first.to_dict()["results"]
    children = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_run(again.mlflow_run_id).info.experiment_id],
        f"tags.mlflow.parentRunId = '{again.mlflow_run_id}'")
    assert children and all(c.data.tags["benchx.cached"] == "true" for c in children)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--model", "random:no-such-arch", "--suite", "quick"], "random:tiny-resnet18"),
        (["--model", "random:tiny-resnet18", "--suite", "no-such-suite"], "quick"),
        (["--model", "random:tiny-resnet18", "--suite", "quick", "--datasets", "nih"], "phantom-quick"),
        (["--model", "random:tiny-resnet18", "--suite", "quick", "--tasks", "detection"], "linear_probe"),
        (["--model", "/no/such/model", "--suite", "quick"], "models:/NAME@ALIAS"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, expected, capsys, tmp_path):
    assert main(["evaluate", *argv, "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_missing_data_path_exits_2(tmp_path, capsys, monkeypatch):
    data = {k: v for k, v in TINY_2D.items() if k != "generate"}
    data.update(name="absent", path="/no/such/data")
    (tmp_path / "absent.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "s.yml").write_text(yaml.safe_dump({"name": "s", "datasets": ["absent"]}))
    monkeypatch.setenv("BENCHX_CARDS", str(tmp_path))
    assert main(["evaluate", "--model", "random:tiny-resnet18", "--suite", str(tmp_path / "s.yml"),
                 "--data-dir", str(tmp_path)]) == 2
    assert "/no/such/data" in capsys.readouterr().err


@pytest.mark.slow
def test_report_and_compare(setup, capsys):
    root, _, _ = setup
    out = root / "report"
    assert main(["report", str(root / "out-a" / "results.json"), str(root / "out-b" / "results.json"), "-o", str(out)]) == 0
    assert (out / "report.md").read_text().startswith("# benchx report")
    assert "<table" in (out / "report.html").read_text()
    assert (out / "tiny-2d-linear_probe.png").stat().st_size > 1000
    assert main(["compare", str(root / "out-a" / "results.json"), str(root / "out-b" / "results.json")]) == 0
    table = capsys.readouterr().out
    assert "auroc_macro" in table and "1.000" in table  # identical runs: p-value 1
    assert main(["compare", str(root / "out-a" / "results.json"), str(root / "nothing.json")]) == 2


def test_list_and_help(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "phantom-2d" in out and "covid-cxr" in out and "random:tiny-resnet18" in out
    proc = subprocess.run([sys.executable, "-m", "benchx.cli", "evaluate", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--fractions" in proc.stdout and "MLflow" in proc.stdout


@pytest.mark.slow
def test_sigterm_kills_the_parent_run_with_one_line_and_a_rerun_finishes(setup, tmp_path):
    import signal
    import time

    from mlflow import MlflowClient

    root, suite, uri = setup
    env = {**os.environ, "BENCHX_CARDS": str(root / "cards"), "MEDVL_CACHE": str(root / "medvl-cache"),
           "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "benchx.cli", "evaluate", "--model", "models:/bx-demo/1", "--suite", str(suite),
           "--tasks", "finetune_frozen", "--fractions", "1.0", "--seeds", "11", "12", "13",
           "--bootstrap", "50", "-o", str(tmp_path / "out"), "--tracking-uri", uri, "--data-dir", str(root / "data")]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("benchx").experiment_id
    before = {r.info.run_id for r in client.search_runs([experiment])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, parent = time.monotonic() + 300, None
    while time.monotonic() < deadline and proc.poll() is None and parent is None:
        new = [r for r in client.search_runs([experiment]) if r.info.run_id not in before]
        if any("mlflow.parentRunId" in r.data.tags for r in new):  # a task run finished: the loop is under way
            parent = next(r.info.run_id for r in new if "mlflow.parentRunId" not in r.data.tags)
        time.sleep(0.2)
    assert proc.poll() is None and parent, f"the evaluation ended before it could be stopped: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr[-2000:]
    lines = [line for line in stderr.strip().splitlines() if line.startswith("benchx evaluate:")]
    assert len(lines) == 1 and "KILLED" in lines[0] and "Traceback" not in stderr
    assert client.get_run(parent).info.status == "KILLED"
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = json.loads((tmp_path / "out" / "results.json").read_text())["mlflow_run_id"]
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{rerun}'")
    assert client.get_run(rerun).info.status == "FINISHED" and len(children) == 3
    assert any(c.data.tags["benchx.cached"] == "true" for c in children)  # the runs finished before the signal
