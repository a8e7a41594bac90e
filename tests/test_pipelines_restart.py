"""pretrain-evaluate-register is restartable: SIGKILL at every stage, a stopped MLflow server (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipelines.pretrain_evaluate_register import STAGES
from pipelines.registry import KEY_TAG
from pipelines.state import STATE_FILE
from tests.servers import MlflowServer

pytestmark = pytest.mark.slow  # each test runs the whole pipeline, training included

PIPELINES = str(Path(sys.executable).with_name("pipelines"))
TINY_PRETRAIN = ["model.name=tiny-resnet18", "model.tokenizer=wordpiece", "model.vocab_size=1000",
                 "data.augment=none", "data.text=report", "optim.lr=1e-3", "train.steps=6", "train.batch_size=8",
                 "train.eval_every=0", "train.checkpoint_every=2", "train.log_every=2"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """A tiny phantom cohort of PNG radiographs (no DICOM headers, so it passes a 'refuse' PHI policy)."""
    from medvl.data.phantom import synthesize

    root = tmp_path_factory.mktemp("phantom") / "cohort"
    synthesize(root, n_2d=40, n_3d=0, seed=1, size=64, dicom_fraction=0.0)
    return root


def write_config(folder: Path, cohort: Path, tracking_uri: str) -> Path:
    """A tiny pipeline config (64 px, 6 steps, a suite whose protocol is one benchx task and seed) and a gate
    policy that passes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.yaml").write_text(yaml.safe_dump({
        "name": "restart-quick", "datasets": ["phantom-quick"], "tasks": ["linear_probe"], "fractions": [1.0],
        "seeds": [0],
    }))
    (folder / "gate.yaml").write_text(yaml.safe_dump({
        "min_metrics": [{"dataset": "phantom-quick", "task": "linear_probe", "metric": "auroc_macro", "min": 0.0}],
        "required_tasks": [{"dataset": "phantom-quick", "task": "linear_probe"}],
    }))
    config = {
        "name": "restart", "model_name": "restart-model", "tracking_uri": tracking_uri,
        "sources": [{"adapter": "phantom", "path": str(cohort), "options": {"images": "files"}}],
        "deid": {"policy": "refuse"}, "cache": {"size": 64},
        "pretrain": {"overrides": TINY_PRETRAIN},
        "evaluate": {"suite": str(folder / "suite.yaml")},
        "gate": {"policy": "gate.yaml"},
    }
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def command(config: Path, work: Path, *extra: str) -> list[str]:
    return [PIPELINES, "run", "pretrain-evaluate-register", str(config), "--work-dir", str(work), "-q", *extra]


def run_env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def kill_in_stage(config: Path, work: Path, stage: str) -> str:
    """Start the pipeline, SIGKILL it once ``stage`` has started (pretraining: once it has a checkpoint)."""
    proc = subprocess.Popen(command(config, work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=run_env(), start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if f"] {stage}: started" in line:
            break
    else:
        proc.wait()
        pytest.fail(f"the pipeline ended before stage {stage} started:\n{''.join(seen)}")
    if stage == "pretrain":
        deadline = time.monotonic() + 300
        while not list(work.glob("pretrain/*/last.pt")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return "".join(seen)


def registered_versions(tracking_uri: str, name: str) -> list:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri).search_model_versions(f"name = '{name}'")


def test_killed_at_every_stage_resumes_to_one_champion(cohort, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config, work = write_config(tmp_path / "cfg", cohort, uri), tmp_path / "work"
    for stage in [s.name for s in STAGES]:
        log = kill_in_stage(config, work, stage)
        state = json.loads((work / STATE_FILE).read_text())
        assert stage not in state["stages"], f"killed in {stage}, yet it was recorded as finished:\n{log}"
    done = subprocess.run(command(config, work), capture_output=True, text=True, env=run_env(), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is @champion" in done.stdout
    state = json.loads((work / STATE_FILE).read_text())
    assert set(state["stages"]) == {s.name for s in STAGES}
    versions = registered_versions(uri, "restart-model")
    assert len(versions) == 1 and versions[0].tags[KEY_TAG] == state["key"]
    from mlflow import MlflowClient

    champion = MlflowClient(tracking_uri=uri).get_model_version_by_alias("restart-model", "champion")
    assert champion.version == versions[0].version and champion.tags["gate.passed"].lower() == "true"
    assert int(json.loads((work / "pretrain/restart/model/lineage.json").read_text())["steps"]) == 6
    again = subprocess.run(command(config, work), capture_output=True, text=True, env=run_env(), timeout=600)
    assert again.returncode == 0 and again.stdout.count("done before, skipped") == len(STAGES)
    assert len(registered_versions(uri, "restart-model")) == 1


def test_stopped_mlflow_server_fails_clearly_and_resumes(cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no huey job runners: starts in seconds
    server = MlflowServer(tmp_path / "server")
    try:
        server.start()
        config, work = write_config(tmp_path / "cfg", cohort, server.uri), tmp_path / "work"
        server.stop()
        failed = subprocess.run(command(config, work, "--until", "pretrain"), capture_output=True, text=True,
                                env=run_env(), timeout=600)
        assert failed.returncode == 1
        message = failed.stderr.strip().splitlines()[-1]
        assert "stage 'pretrain' failed" in message and server.uri in message and "unreachable" in message
        assert set(json.loads((work / STATE_FILE).read_text())["stages"]) == {"ingest", "deid-check", "cache"}
        server.start()
        resumed = subprocess.run(command(config, work, "--until", "pretrain"), capture_output=True, text=True,
                                 env=run_env(), timeout=600)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "[3/8] cache: done before, skipped" in resumed.stdout
        from mlflow import MlflowClient

        run_id = json.loads((work / STATE_FILE).read_text())["stages"]["pretrain"]["run_id"]
        assert MlflowClient(tracking_uri=server.uri).get_run(run_id).info.status == "FINISHED"
    finally:
        server.stop()
