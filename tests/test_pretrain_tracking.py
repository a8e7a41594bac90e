"""The phantom-tiny run as MLflow holds it: params, metrics, lineage tags, artifacts, a registered pyfunc model."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from medvl.data.manifest import read_manifest
from medvl.infer.embed import encode_texts
from medvl.infer.loading import load_for_inference, prepare_input
from medvl.infer.model_ref import ModelRefError, model_fingerprint, resolve_model


@pytest.fixture(scope="module")
def client(trained_phantom_model) -> MlflowClient:
    return MlflowClient(tracking_uri=trained_phantom_model.tracking_uri)


def test_run_records_config_metrics_and_lineage(trained_phantom_model, client):
    run = client.get_run(trained_phantom_model.mlflow_run_id)
    params, tags = run.data.params, run.data.tags
    assert params["model.name"] == "tiny-resnet18" and params["train.steps"] == "1200"
    assert params["data.cache"] == str(trained_phantom_model.cache_dir)
    assert tags["medvl.manifest_hash"] == read_manifest(trained_phantom_model.manifest).attrs["hash"]
    assert set(json.loads(tags["medvl.split_hashes"])) == {"train", "val", "test"}
    assert "torch" in json.loads(tags["medvl.environment"]) and tags["medvl.code_version"].startswith("medvl ")
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert len(losses) >= 600 // 20 and losses[-1].value < losses[0].value
    assert run.data.metrics["val_mean_R"] > 0
    files = {f.path for f in client.list_artifacts(run.info.run_id, "model_files")}
    assert {"model_files/model.safetensors", "model_files/config.json", "model_files/tokenizer"} <= files
    assert {"config.yaml", "metrics.jsonl"} <= {f.path for f in client.list_artifacts(run.info.run_id)}


def test_registered_pyfunc_embeds_texts_and_images_like_the_model(trained_phantom_model, client):
    name = trained_phantom_model.registered_name
    version = client.get_model_version(name, "1")
    assert version.run_id == trained_phantom_model.mlflow_run_id
    mlflow.set_tracking_uri(trained_phantom_model.tracking_uri)
    served = mlflow.pyfunc.load_model(f"models:/{name}/1")
    image = next(trained_phantom_model.cohort_dir.rglob("image.png"))
    out = served.predict(pd.DataFrame({"text": ["Moderate cardiomegaly.", ""], "path": ["", str(image)]}))
    assert list(out["kind"]) == ["text", "image"]

    model, settings = load_for_inference(trained_phantom_model.model_dir)
    with torch.no_grad():
        text = encode_texts(model, ["Moderate cardiomegaly."], torch.device("cpu"))[0].numpy()
        img = model.encode_image(prepare_input(image, settings).image_tensor())[0].numpy()
    np.testing.assert_allclose(np.asarray(out["embedding"][0]), text, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["embedding"][1]), img, atol=1e-5)


def test_model_references_resolve_to_the_same_weights(trained_phantom_model, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVL_CACHE", str(tmp_path / "cache"))
    uri = trained_phantom_model.tracking_uri
    expected = model_fingerprint(trained_phantom_model.model_dir)
    by_version = resolve_model("models:/phantom-tiny/1", tracking_uri=uri)
    assert (by_version.name, by_version.version) == ("phantom-tiny", "1")
    assert model_fingerprint(by_version.model_dir) == expected
    assert model_fingerprint(resolve_model(trained_phantom_model.run_dir).model_dir) == expected
    MlflowClient(uri).set_registered_model_alias("phantom-tiny", "candidate", "1")
    assert resolve_model("models:/phantom-tiny@candidate", tracking_uri=uri).version == "1"
    with pytest.raises(ModelRefError, match="not found"):
        resolve_model("models:/phantom-tiny@nobody", tracking_uri=uri)
    with pytest.raises(ModelRefError, match="holds no saved model"):
        resolve_model(tmp_path)
