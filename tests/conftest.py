"""Shared pytest fixtures."""

from __future__ import annotations

import atexit
import functools
import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One compute thread per test worker and per process it starts: two workers each running torch's default of
    # one thread per core (4 threads on 2 cores) trained the session's phantom model 8 times slower (12.8 against
    # about 100 images/s), its threads waiting on each other. Set before torch is imported.
    os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _isolated_audit_secrets() -> None:
    """Audit keys and anchors of the test run live in a temporary folder, never in the user's ~/.config."""
    folder = Path(tempfile.mkdtemp(prefix="medvl-test-audit-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "audit.key").write_text(secrets.token_hex(32))
    os.environ["MEDVL_AUDIT_KEY_FILE"] = str(folder / "audit.key")
    os.environ["MEDVL_AUDIT_ANCHOR_DIR"] = str(folder / "anchors")


_isolated_audit_secrets()


def _isolated_medvl_cache() -> None:
    """Models and datasets that tests cache go to a temporary folder of this process, not ~/.cache/medvl (shared
    by the user and by the other test workers). A test that sets MEDVL_CACHE itself still wins."""
    folder = tempfile.mkdtemp(prefix="medvl-test-cache-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ.setdefault("MEDVL_CACHE", folder)


_isolated_medvl_cache()


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's AppTest leaves ``sys.modules['__main__']`` pointing at the page it ran; spawned worker
    processes re-import ``__main__``, so they would run that page and die. Put the real one back."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """A cached 2D phantom cohort of 80 studies at 64 px."""
    from medvl.cli import main

    root = tmp_path_factory.mktemp("tiny")
    assert main(["synth", "-o", str(root / "cohort"), "--n-2d", "80", "--size", "64", "--seed", "3", "-q"]) == 0
    assert main(["ingest", "phantom", str(root / "cohort"), "-o", str(root / "m.parquet"), "-q"]) == 0
    assert main(["cache", str(root / "m.parquet"), "-o", str(root / "cache"), "--size", "64", "-q"]) == 0
    return root / "cache"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real-data bundle (``MEDVL_REALDATA``, default ``../shared/data``); skips when absent."""
    from medvl.realdata import realdata_root

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


@dataclass(frozen=True)
class TrainedPhantomModel:
    """A small model pretrained with ``configs/pretrain/phantom-tiny.yaml`` on a 2D phantom cohort."""

    cohort_dir: Path
    manifest: Path
    cache_dir: Path
    run_dir: Path
    model_dir: Path
    tracking_uri: str
    registered_name: str
    mlflow_run_id: str


REPO_ROOT = Path(__file__).resolve().parents[1]
PHANTOM_RECIPE = REPO_ROOT / "configs" / "pretrain" / "phantom-tiny.yaml"


@pytest.fixture(scope="session")
def trained_phantom_model(tmp_path_factory) -> TrainedPhantomModel:
    """Synthesize 1,200 radiograph phantoms, ingest, cache and pretrain the phantom-tiny recipe once per session
    (a few CPU minutes), logged to a sqlite MLflow store and registered as ``phantom-tiny``."""
    from medvl.cli import main
    from medvl.config import load_config
    from medvl.train.settings import PretrainConfig
    from medvl.train.trainer import run_pretrain

    root = tmp_path_factory.mktemp("phantom-model")
    cohort, manifest, cache = root / "cohort", root / "manifest.parquet", root / "cache"
    assert main(["synth", "-o", str(cohort), "--n-2d", "1200", "--size", "128", "--seed", "1", "-q"]) == 0
    assert main(["ingest", "phantom", str(cohort), "-o", str(manifest), "-q"]) == 0
    uri = f"sqlite:///{root / 'mlflow.db'}"
    overrides = [f"output_dir={root / 'runs'}", f"data.manifest={manifest}", f"data.cache={cache}",
                 f"tracking.uri={uri}", "tracking.register_as=phantom-tiny"]  # fmt: skip
    result = run_pretrain(load_config(PretrainConfig, PHANTOM_RECIPE, overrides))
    assert result.model_dir is not None and result.mlflow_run_id
    return TrainedPhantomModel(cohort, manifest, cache, result.run_dir, result.model_dir, uri, "phantom-tiny",
                               result.mlflow_run_id)  # fmt: skip


@pytest.fixture(scope="session")
def review_model_dir(tmp_path_factory) -> Path:
    """The review-app tests' small untrained model (see tests/app_support.py)."""
    from tests.app_support import save_small_model

    return save_small_model(tmp_path_factory.mktemp("review-model") / "model")


@pytest.fixture()
def review_env(tmp_path, review_model_dir, monkeypatch) -> dict[str, str]:
    """``MEDVL_REVIEW_*`` settings of a fresh review app (users ann and root, own database and audit log), set in
    the environment for the test."""
    from tests.app_support import app_env

    values = app_env(tmp_path, review_model_dir)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


TRAINING_FIXTURES = frozenset({"trained_phantom_model"})


def pytest_collection_modifyitems(config, items) -> None:
    """Tests that train a model are slow: those using a trained-model fixture and those starting ``torchrun``
    (``make test-fast`` leaves them out)."""
    for item in items:
        if TRAINING_FIXTURES.intersection(item.fixturenames) or item.get_closest_marker("distributed"):
            item.add_marker(pytest.mark.slow)


def pytest_xdist_make_scheduler(config, log):
    """With ``pytest -n N`` (``make test``): each test file runs on one worker, so that its module fixtures are
    built once, and the files that use a session training fixture run on one worker, so that it trains once."""
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return "files using a training fixture" if _uses_training_fixture(REPO_ROOT / file) else file

    return FileScheduling(config, log)


@functools.cache
def _uses_training_fixture(test_file: Path) -> bool:
    text = test_file.read_text() if test_file.is_file() else ""
    return any(name in text for name in TRAINING_FIXTURES)
