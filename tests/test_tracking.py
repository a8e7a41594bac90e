"""MLflow tracking: real sqlite store, real server, offline journal and sync."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from medvl.tracking import JOURNAL_NAME, RunTracker, resolve_tracking_uri, server_reachable, sync_offline
from tests.servers import free_port


def test_uri_resolution_order(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example:5000")
    assert resolve_tracking_uri() == "http://example:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_logs_to_local_sqlite_store(tmp_path, sqlite_tracking):
    tracker = RunTracker(tmp_path / "run", experiment="exp", run_name="r1")
    run_id = tracker.start(tags={"medvl.kind": "pretrain"})
    tracker.log_params({"optim.lr": 1e-4, "steps": 3})
    for step in range(3):
        tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    (tmp_path / "note.txt").write_text("hello")
    tracker.log_artifact(tmp_path / "note.txt", "extras")
    tracker.end()
    client = MlflowClient(sqlite_tracking)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.0001"
    assert run.data.tags["medvl.kind"] == "pretrain"
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert [a.path for a in client.list_artifacts(run_id, "extras")] == ["extras/note.txt"]
    assert not tracker.offline
    assert json.loads((tmp_path / "run" / "tracking.json").read_text())["run_id"] == run_id


def test_disabled_tracker_writes_nothing(tmp_path, sqlite_tracking):
    tracker = RunTracker(tmp_path / "run", enabled=False)
    assert tracker.start() is None
    tracker.log_metrics({"loss": 1.0}, step=0)
    tracker.end()
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_unreachable_server_goes_offline_then_syncs(tmp_path, mlflow_server, caplog):
    dead = f"http://127.0.0.1:{free_port()}"
    assert not server_reachable(dead)
    run_dir = tmp_path / "run"
    tracker = RunTracker(run_dir, experiment="offline-exp", run_name="r-off", tracking_uri=dead)
    assert tracker.start(tags={"t": "1"}) is None
    assert tracker.offline
    assert "unreachable" in caplog.text and "medvl sync-runs" in caplog.text
    tracker.log_params({"a": 1})
    tracker.log_metrics({"loss": 2.0}, step=0)
    tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.end()
    assert (run_dir / JOURNAL_NAME).is_file()

    run_id = sync_offline(run_dir, tracking_uri=mlflow_server.uri, experiment="offline-exp")
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(run_id)
    assert run.data.params == {"a": "1"}
    assert run.data.tags["t"] == "1"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(0, 2.0), (1, 1.0)]
    assert run.info.status == "FINISHED"
    assert not (run_dir / JOURNAL_NAME).exists()


@pytest.mark.slow
def test_server_lost_mid_run_keeps_the_rest_locally(tmp_path):
    from tests.servers import MlflowServer

    server = MlflowServer(tmp_path / "srv").start()
    try:
        tracker = RunTracker(tmp_path / "run", experiment="mid", tracking_uri=server.uri)
        run_id = tracker.start()
        tracker.log_metrics({"loss": 3.0}, step=0)
        server.stop()
        tracker.log_metrics({"loss": 2.0}, step=1)
        tracker.end()
        assert tracker.offline
        events = [json.loads(x) for x in (tmp_path / "run" / JOURNAL_NAME).read_text().splitlines()]
        assert [e["kind"] for e in events] == ["metrics", "end"]
        server.start()
        assert sync_offline(tmp_path / "run", tracking_uri=server.uri) == run_id
        steps = [m.step for m in MlflowClient(server.uri).get_metric_history(run_id, "loss")]
        assert steps == [0, 1]
    finally:
        server.stop()
