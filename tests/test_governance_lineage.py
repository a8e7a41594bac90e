"""Lineage of registered versions (governance.lineage, medvl lineage) from a real sqlite MLflow store."""

from __future__ import annotations

import json

import pytest

from governance.lineage import LineageError, model_lineage
from medvl.cli import main
from tests.governance_support import (
    MANIFEST_HASH,
    SPLIT_HASHES,
    log_benchx_run,
    register_model,
    results_doc,
    save_tiny_model,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with demo v1 (full lineage, one benchx run, alias champion) and v2 (tags missing, conflict)."""
    root = tmp_path_factory.mktemp("lineage")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    model_dir = save_tiny_model(root / "model")
    v1, run1 = register_model(uri, "demo", model_dir)
    bench = log_benchx_run(uri, results_doc("demo", v1), root / "bench")
    v2, run2 = register_model(uri, "demo", model_dir, full_tags=False, manifest_hash="b" * 64)
    from mlflow import MlflowClient

    MlflowClient(uri).set_registered_model_alias("demo", "champion", v1)
    return {"uri": uri, "run1": run1, "run2": run2, "bench": bench}


def test_lineage_shows_data_run_config_model_and_benchx(store):
    lineage = model_lineage("models:/demo@champion", store["uri"])
    assert lineage["model"]["version"] == "1" and lineage["model"]["aliases"] == ["champion"]
    assert lineage["data"] == {"manifest_hash": MANIFEST_HASH, "cache_key": "cache-123", "split_hashes": SPLIT_HASHES,
                               "steps": 5, "manifest": "cohort.parquet"}
    run = lineage["run"]
    assert run["run_id"] == store["run1"] and run["experiment"] == "medvl-pretrain"
    assert run["params"]["model.name"] == "tiny-resnet18" and run["metrics"] == {"loss": 1.25}
    assert run["environment"] == {"python": "3.11", "torch": "2.13"}
    assert run["code_version"] == "medvl 0.1.0 (abc123)"
    [bench] = lineage["benchx"]  # the nested child run is not listed
    assert bench["run_id"] == store["bench"] and bench["suite"] == "phantom"
    assert bench["summary"]["failures"] == 0 and bench["summary"]["rows"] == 5
    assert [(r["task"], r["metric"], r["fraction"], r["mean"]) for r in bench["summary"]["headline"]] == [
        ("linear_probe", "auroc_macro", 1.0, 0.91), ("retrieval", "i2t_R5", 1.0, 0.42)]
    assert lineage["missing"] == [] and lineage["conflicts"] == []
    json.dumps(lineage)  # serialisable as documented


def test_missing_tags_are_listed_and_a_contradicting_hash_is_a_conflict(store):
    lineage = model_lineage("models:/demo/2", store["uri"])
    assert lineage["run"]["split_hashes"] is None and lineage["run"]["environment"] is None
    assert "run tag medvl.split_hashes" in lineage["missing"] and "run tag medvl.environment" in lineage["missing"]
    assert any("benchx runs of demo version 2" in item for item in lineage["missing"])
    assert lineage["conflicts"] == [f"manifest hash: run tag {'b' * 64} but the model folder's lineage.json "
                                    f"says {MANIFEST_HASH}"]


@pytest.mark.parametrize("uri, reason", [("runs:/abc/model", "not a registered model URI"),
                                         ("models:/demo/9", "not in the registry"),
                                         ("models:/nope@champion", "not in the registry")])
def test_bad_model_uris_are_refused(store, uri, reason):
    with pytest.raises(LineageError, match=reason):
        model_lineage(uri, store["uri"])


def test_cli_prints_data_run_model_benchx_and_json(store, capsys, monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    assert main(["lineage", "models:/demo/1", "--tracking-uri", store["uri"]]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "Downloading artifacts" not in captured.err  # MLflow's download bars are off in medvl commands
    order = [text.index(MANIFEST_HASH), text.index(f"-> run  {store['run1']}"), text.index("-> model models:/demo/1 @champion"),
             text.index(f"-> benchx run {store['bench']}")]
    assert order == sorted(order) and "auroc_macro (fraction 1.0): 0.910 [0.880, 0.930]" in text
    assert main(["lineage", "models:/demo/2", "--json", "--tracking-uri", store["uri"]]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["version"] == "2"


def test_cli_bad_input_exits_2_with_one_line(store, capsys):
    assert main(["lineage", "demo", "--tracking-uri", store["uri"]]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("medvl lineage")]
    assert err == ["medvl lineage: demo: not a registered model URI; use models:/NAME/VERSION or models:/NAME@ALIAS"]
