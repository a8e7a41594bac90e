"""Real MLflow fixtures for the governance tests: a registered model with a pretraining-style source run,
benchx-style parent runs and hand-written benchx results documents.

Governance never loads weights (it reads lineage.json and hashes config.json + model.safetensors), so the
registered folder holds a tiny tensor instead of a built network: building tiny-resnet18 costs ~45 s on the
shared 2-core machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from mlflow import MlflowClient
from safetensors.torch import save_file

from medvl.tracking import get_or_create_experiment

MANIFEST_HASH = "a" * 64
SPLIT_HASHES = {"test": "c" * 64, "train": "d" * 64, "val": "e" * 64}


def save_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A model folder as ``medvl pretrain`` exports it (config.json, model.safetensors, lineage.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"name": "tiny-resnet18"}))
    save_file({"weight": torch.full((4,), float(seed))}, str(folder / "model.safetensors"))
    (folder / "lineage.json").write_text(json.dumps({"manifest_hash": MANIFEST_HASH, "cache_key": "cache-123",
                                                     "mlflow_run_id": "", "steps": 5}))
    return folder


def register_model(uri: str, name: str, model_dir: Path, *, full_tags: bool = True,
                   manifest_hash: str = MANIFEST_HASH, manifest: str = "cohort.parquet",
                   cache: str = "") -> tuple[str, str]:
    """Log a pretraining-style run (params, medvl.* tags, metrics, model_files/) and register its model folder.

    Returns ``(version, run_id)``.
    """
    client = MlflowClient(uri)
    experiment = get_or_create_experiment(client, "medvl-pretrain", uri)
    tags = {"medvl.kind": "pretrain", "medvl.manifest_hash": manifest_hash,
            "medvl.code_version": "medvl 0.1.0 (abc123)", "medvl.cache_key": "cache-123"}
    if full_tags:
        tags |= {"medvl.split_hashes": json.dumps(SPLIT_HASHES),
                 "medvl.environment": json.dumps({"python": "3.11", "torch": "2.13"})}
    run_id = client.create_run(experiment, run_name="pretrain", tags=tags).info.run_id
    for key, value in {"model.name": "tiny-resnet18", "train.steps": "5", "data.manifest": manifest,
                       "optim.lr": "0.0003", **({"data.cache": cache} if cache else {})}.items():
        client.log_param(run_id, key, value)
    client.log_metric(run_id, "loss", 1.25, step=5)
    client.log_artifacts(run_id, str(model_dir), "model_files")
    client.set_terminated(run_id)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run_id}/model_files", run_id=run_id).version
    return str(version), run_id


def results_doc(name: str, version: str, *, mean: float = 0.91, ci_low: float = 0.88,
                sex: tuple[float, float] = (0.90, 0.86), failures: list | None = None,
                missing: list[str] | None = None) -> dict:
    """A benchx results.json document (schema benchx.results/1) for ``name`` version ``version``; complete unless
    runs failed or ``missing`` names what it lacks."""
    def row(task, metric, fraction, value, low, group="", group_value=""):
        return {"dataset": "phantom-2d", "task": task, "fraction": fraction, "metric": metric, "mean": value,
                "std": 0.01, "ci_low": low, "ci_high": round(value + 0.02, 4), "per_seed": [value] * 3,
                "group": group, "group_value": group_value, "n_test": 40}
    rows = [row("linear_probe", "auroc_macro", 1.0, mean, ci_low),
            row("linear_probe", "auroc_macro", 0.1, 0.7, 0.6),
            row("retrieval", "i2t_R5", 1.0, 0.42, 0.37),
            row("linear_probe", "auroc_macro", 1.0, sex[0], sex[0] - 0.05, "sex", "F"),
            row("linear_probe", "auroc_macro", 1.0, sex[1], sex[1] - 0.05, "sex", "M")]
    return {"schema": "benchx.results/1",
            "model": {"ref": f"models:/{name}/{version}", "name": name, "version": version, "fingerprint": ""},
            "suite": "phantom", "protocol": {"seeds": [0, 1, 2], "fractions": [0.1, 1.0], "bootstrap": 200,
                                             "version": "1"},
            "datasets": {"phantom-2d": {"manifest_hash": MANIFEST_HASH, "split_hash": "f" * 64}},
            "mlflow_run_id": "", "results": rows, "failures": failures or [],
            "completeness": {"complete": not (failures or missing), "missing": list(missing or [])}}


def log_benchx_run(uri: str, results: dict, folder: Path) -> str:
    """A benchx-style parent run (tags, results.json) with one nested child run; tags the model version."""
    client = MlflowClient(uri)
    experiment = get_or_create_experiment(client, "benchx", uri)
    model = results["model"]
    tags = {"benchx.model_ref": model["ref"], "benchx.model_name": model["name"],
            "benchx.model_version": model["version"], "benchx.suite": results["suite"],
            "benchx.model_fingerprint": model["fingerprint"]}
    parent = client.create_run(experiment, run_name="benchx", tags=tags).info.run_id
    client.create_run(experiment, run_name="child", tags={**tags, "mlflow.parentRunId": parent})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps({**results, "mlflow_run_id": parent}))
    client.log_artifact(parent, str(path))
    client.set_terminated(parent)
    client.set_model_version_tag(model["name"], model["version"], f"benchx.run_id.{results['suite']}", parent)
    return parent
