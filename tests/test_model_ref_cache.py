"""Registry references resolve to the model the tracking store holds now, not to an earlier download."""

from __future__ import annotations

from mlflow import MlflowClient

from medvl.infer.model_ref import model_fingerprint, resolve_model
from tests.governance_support import register_model, save_tiny_model


def test_a_version_number_given_again_does_not_reuse_the_old_download(tmp_path, monkeypatch):
    """A registered model deleted and registered again (or ``medvl demo`` into a new store at the same path)
    numbers its versions from 1 again: version 1 is then another model."""
    monkeypatch.chdir(tmp_path)
    uri, cache = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "downloads"
    first = save_tiny_model(tmp_path / "first", seed=1)
    register_model(uri, "demo", first)
    assert model_fingerprint(resolve_model("models:/demo/1", tracking_uri=uri, cache_dir=cache).model_dir) == model_fingerprint(first)
    MlflowClient(uri).delete_registered_model("demo")
    second = save_tiny_model(tmp_path / "second", seed=2)
    assert register_model(uri, "demo", second)[0] == "1"
    resolved = resolve_model("models:/demo/1", tracking_uri=uri, cache_dir=cache)
    assert model_fingerprint(resolved.model_dir) == model_fingerprint(second) != model_fingerprint(first)
    again = resolve_model("models:/demo/1", tracking_uri=uri, cache_dir=cache)
    assert again.model_dir == resolved.model_dir  # the same version is downloaded once
