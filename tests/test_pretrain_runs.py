"""``medvl pretrain`` as users run it: real subprocesses, SIGKILL + --resume, torchrun with 2 gloo processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import free_port

pytestmark = pytest.mark.slow  # each test trains, in real processes

STEPS = 16
# Group norm and no dropout make a 2-process run the same computation as one process with the full batch.
DETERMINISTIC = ("model.overrides.image.norm=group", "model.overrides.text.hf_config.hidden_dropout_prob=0.0",
                 "model.overrides.text.hf_config.attention_probs_dropout_prob=0.0")  # fmt: skip


def _command(out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "medvl", "pretrain", f"output_dir={out}", "run_name=r", f"data.cache={cache}",
            "data.image_size=64", "model.overrides.image.image_size=64", f"train.steps={STEPS}", "train.batch_size=8",
            "train.log_every=1", "train.eval_every=0", "train.checkpoint_every=4", "optim.lr=1e-3",
            "tracking.log_model=false", *extra]  # fmt: skip


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "OMP_NUM_THREADS": "1"}


def _losses(run_dir: Path) -> dict[int, float]:
    """Loss per step; a step logged twice (before a kill and after the resume) keeps its last value."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _wait_for_step(proc: subprocess.Popen, metrics: Path, step: int) -> None:
    """Wait until the run ``proc`` has logged ``step``; fail if it ends first."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and max(_losses(metrics.parent), default=0) >= step:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the run ended before it could be stopped: {proc.stderr.read()[-2000:]}"


def test_sigkill_then_resume_follows_the_uninterrupted_curve(tiny_cache, tmp_path):
    extra = ("data.augment=convirt", "data.text=sentence")
    env = _env(tmp_path)
    reference = subprocess.run(_command(tmp_path / "ref", tiny_cache, *extra), env=env, capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr[-2000:]

    cmd = _command(tmp_path / "killed", tiny_cache, *extra)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "killed" / "r" / "metrics.jsonl"
    _wait_for_step(proc, metrics, 10)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(_losses(metrics.parent))
    assert killed_at < STEPS

    resumed = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected, got = _losses(tmp_path / "ref" / "r"), _losses(metrics.parent)
    assert sorted(got) == sorted(expected) == list(range(1, STEPS + 1))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], abs=1e-5), (step, killed_at)
    assert not list(metrics.parent.glob("*.tmp*")), "a checkpoint write was left half-done"


# The patch-concept term alone (the volume recipe's stage 2d): the reports are not encoded, and the text tower
# learns through the concept names only; DDP must still see every gradient.
CONCEPT_ONLY = ("model.overrides.loss.weights.convirt=0", "model.overrides.loss.weights.concept=1", "data.concepts=findings")


@pytest.mark.parametrize("terms", [(), CONCEPT_ONLY], ids=["convirt", "concept-only"])
def test_two_torchrun_processes_equal_one_process_with_the_full_batch(tiny_cache, tmp_path, terms):
    env = _env(tmp_path)
    extra = ("data.augment=none", "data.text=report", *DETERMINISTIC, *terms)
    single = subprocess.run(_command(tmp_path / "one", tiny_cache, *extra), env=env, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}"]  # fmt: skip
    # the global batch stays 8: each rank takes 4
    two = subprocess.run([*torchrun, *_command(tmp_path / "two", tiny_cache, *extra, "train.batch_size=4")[1:]],
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    expected, got = _losses(tmp_path / "one" / "r"), _losses(tmp_path / "two" / "r")
    assert sorted(got) == sorted(expected) == list(range(1, STEPS + 1))
    assert got[1] == pytest.approx(expected[1], abs=1e-5)  # same weights, same global batch: the same loss
    for step in expected:  # later steps drift by float summation order (all-reduce) amplified by Adam
        assert got[step] == pytest.approx(expected[step], rel=1e-3), step
    rows = [json.loads(line) for line in (tmp_path / "two" / "r" / "metrics.jsonl").read_text().splitlines()]
    assert sum("loss" in row for row in rows) == STEPS, "only rank 0 writes metrics (one loss row per step)"


def test_sigterm_ends_the_mlflow_run_as_killed_with_one_line_and_resume_finishes(tiny_cache, tmp_path):
    from mlflow import MlflowClient

    env = _env(tmp_path)
    cmd = _command(tmp_path / "term", tiny_cache)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "term" / "r" / "metrics.jsonl"
    _wait_for_step(proc, metrics, 6)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("medvl pretrain:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "--resume" in lines[0] and "Traceback" not in stderr, stderr[-3000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.status for r in runs] == ["KILLED"]
    resumed = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert sorted(_losses(metrics.parent)) == list(range(1, STEPS + 1))
    statuses = {r.info.status for r in client.search_runs([e.experiment_id for e in client.search_experiments()])}
    assert "FINISHED" in statuses
