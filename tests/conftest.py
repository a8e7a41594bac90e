"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real-data bundle (``MEDVL_REALDATA``, default ``../shared/data``); skips when absent."""
    from medvl.data.realdata import realdata_root

    root = realdata_root()
    if root is None:
        pytest.skip("real-data bundle not found: set MEDVL_REALDATA to the shared/data folder")
    return root


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server on 127.0.0.1 for the whole session (sqlite store, local artifacts)."""
    from tests.servers import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server
    server.stop()


@pytest.fixture()
def sqlite_tracking(tmp_path, monkeypatch) -> str:
    """A fresh local sqlite MLflow store, set as ``MLFLOW_TRACKING_URI`` for the test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
