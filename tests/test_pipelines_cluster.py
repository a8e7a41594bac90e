"""Cluster templates: syntax, the torchrun launcher for real (1 node x 2 CPU processes, gloo), the ingest and cache
array jobs run with the SLURM variables an array task gets, then their merge jobs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medvl.data.cache import CachedCohort
from medvl.data.cache_build import build_cache
from medvl.data.manifest import read_manifest
from medvl.data.preprocess import PrepSettings
from tests.servers import free_port

CLUSTER = Path(__file__).resolve().parents[1] / "pipelines" / "cluster"
SCRIPTS = sorted(CLUSTER.glob("*.sh")) + sorted(CLUSTER.glob("*.sbatch"))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    from medvl.data.phantom import synthesize

    root = tmp_path_factory.mktemp("cluster") / "cohort"
    synthesize(root, n_2d=24, n_3d=0, seed=4, size=64, dicom_fraction=0.0)
    return root


def env_with_venv(**extra: str) -> dict[str, str]:
    """The environment with this venv's console scripts (medvl, torchrun) first on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "HF_HUB_OFFLINE": "1", **extra}


def array_task(task: int, count: int) -> dict[str, str]:
    """The environment SLURM gives task ``task`` of an array job of ``count`` tasks (one CPU)."""
    return env_with_venv(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT=str(count), SLURM_CPUS_PER_TASK="1")


@pytest.fixture(scope="module")
def manifest(cohort, tmp_path_factory) -> Path:
    from medvl.data.ingest import ingest

    out = tmp_path_factory.mktemp("manifest") / "cohort.parquet"
    return ingest("phantom", cohort, out, options={"images": "files"}, progress=False).manifest


@pytest.fixture(scope="module")
def array_cache(manifest, tmp_path_factory) -> Path:
    """The cache of ``manifest`` at 64 px from cache-array.sbatch (two array tasks) and cache-merge.sbatch."""
    root = tmp_path_factory.mktemp("array-cache")
    for task in range(2):
        done = subprocess.run(["bash", str(CLUSTER / "cache-array.sbatch"), str(manifest), str(root / "parts"),
                               "--size", "64"], capture_output=True, text=True, env=array_task(task, 2), timeout=300)
        assert done.returncode == 0, done.stderr
    merged = subprocess.run(["bash", str(CLUSTER / "cache-merge.sbatch"), str(root / "parts"), str(root / "cache")],
                            capture_output=True, text=True, env=env_with_venv(), timeout=300)
    assert merged.returncode == 0, merged.stderr
    return root / "cache"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_templates_are_valid_bash_and_executable(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert os.access(script, os.X_OK)
    if script.suffix == ".sbatch":
        assert "#SBATCH --job-name=" in script.read_text()


def test_launcher_help_and_missing_config():
    launcher = str(CLUSTER / "torchrun-multinode.sh")
    shown = subprocess.run([launcher, "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "RDZV_ENDPOINT" in shown.stdout
    assert subprocess.run([launcher], capture_output=True, text=True).returncode == 2


@pytest.mark.distributed
def test_torchrun_launcher_trains_with_two_cpu_processes(manifest, array_cache, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "output_dir": str(tmp_path / "runs"), "run_name": "ddp",
        "data": {"manifest": str(manifest), "cache": str(array_cache), "image_size": 64,
                 "augment": "none", "text": "report"},
        "model": {"name": "tiny-resnet18", "tokenizer": "wordpiece", "vocab_size": 1000},
        "train": {"steps": 3, "batch_size": 4, "eval_every": 0, "checkpoint_every": 3, "log_every": 1},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "log_model": False},
    }))
    env = env_with_venv(NNODES="1", NPROC_PER_NODE="2", RDZV_ENDPOINT=f"127.0.0.1:{free_port()}", RDZV_ID="test")
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([str(CLUSTER / "torchrun-multinode.sh"), str(config)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 node(s) x 2 process(es)" in done.stderr
    run = tmp_path / "runs" / "ddp"
    assert (run / "model" / "model.safetensors").is_file() and (run / "last.pt").is_file()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (pretrain_run,) = client.search_runs([client.get_experiment_by_name("medvl-pretrain").experiment_id])
    assert pretrain_run.data.params["world_size"] == "2"


@pytest.mark.slow
def test_ingest_array_tasks_then_merge_give_the_whole_cohort(cohort, tmp_path):
    parts = tmp_path / "parts"
    for task in range(2):
        done = subprocess.run(["bash", str(CLUSTER / "ingest-array.sbatch"), "phantom", str(cohort), str(parts),
                               "--option", "images=files"], capture_output=True, text=True, env=array_task(task, 2),
                              timeout=300)
        assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in parts.glob("*.parquet")) == ["part-0-of-2.parquet", "part-1-of-2.parquet"]
    merged = subprocess.run(["bash", str(CLUSTER / "ingest-merge.sbatch"), str(parts), str(tmp_path / "all.parquet")],
                            capture_output=True, text=True, env=env_with_venv(), timeout=300)
    assert merged.returncode == 0, merged.stderr
    df = read_manifest(tmp_path / "all.parquet")
    assert len(df) == 24 and set(df["split"]) <= {"train", "val", "test"} and (df["split"] != "").all()
    missing_task = subprocess.run(["bash", str(CLUSTER / "ingest-array.sbatch"), "phantom", str(cohort), str(parts)],
                                  capture_output=True, text=True, env=env_with_venv(), timeout=60)
    assert missing_task.returncode != 0 and "array job" in missing_task.stderr


@pytest.mark.slow
def test_cache_array_tasks_then_merge_give_the_cache_of_one_build(manifest, array_cache, tmp_path):
    parts = array_cache.parent / "parts"
    assert sorted(p.name for p in parts.iterdir()) == ["part-0-of-2", "part-1-of-2"]
    whole = build_cache(manifest, tmp_path / "whole", PrepSettings(size=64), progress=False)
    merged, expected = CachedCohort(array_cache), CachedCohort(tmp_path / "whole")
    assert merged.key == whole.key and len(merged) == whole.items == 24
    assert [merged.text("path", i) for i in range(24)] == [expected.text("path", i) for i in range(24)]
    lone = tmp_path / "lone"
    shutil.copytree(parts / "part-0-of-2", lone / "part-0-of-2")
    missing = subprocess.run(["bash", str(CLUSTER / "cache-merge.sbatch"), str(lone), str(tmp_path / "c")],
                             capture_output=True, text=True, env=env_with_venv(), timeout=300)
    assert missing.returncode == 2 and "missing part 1/2" in missing.stderr
    no_array = subprocess.run(["bash", str(CLUSTER / "cache-array.sbatch"), str(manifest), str(tmp_path / "p")],
                              capture_output=True, text=True, env=env_with_venv(), timeout=60)
    assert no_array.returncode != 0 and "array job" in no_array.stderr
