"""``benchmarks/gpu_suite.sh --cpu-smoke`` runs every step of the GPU suite on tiny models and writes one JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from numbers import Real
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _numbers(values: dict, keys: tuple[str, ...]) -> bool:
    return all(isinstance(values[k], Real) and values[k] > 0 for k in keys)


@pytest.mark.slow
def test_cpu_smoke_writes_every_figure(tmp_path):
    out = tmp_path / "suite.json"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", "benchmarks/gpu_suite.sh", "--cpu-smoke", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    assert doc["mode"] == "cpu-smoke" and doc["device_name"] and doc["torch"]
    assert doc["not_measured"] == {}
    volumes = doc["figures"]["volume_encoders"]
    assert set(volumes) == {"8", "16"}
    assert all(_numbers(volumes["16"][c], ("peak_mb", "step_s")) for c in ("pool-volume", "pool-2d", "3d", "3d-native"))
    steps, figures = doc["steps"], doc["figures"]
    for name in ("pretrain", "slice_pooling"):
        assert steps[name]["status"] == "ok" and steps[name]["command"][1].startswith("benchmarks/")

    pretrain = figures["pretrain"]
    assert pretrain["peak_tflops"] == 1.0 and pretrain["peak_source"] == "--peak-tflops"
    keys = ("images_per_s", "mfu", "tflops_per_s", "gflop_per_image", "peak_memory_mb")
    assert _numbers(pretrain["models"]["tiny-resnet18"], keys)

    slices = figures["slice_pooling"]["8"]
    for mode in ("baseline", "chunked"):
        assert _numbers(slices[mode], ("peak_mb", "saved_mb", "volumes_per_s"))
    assert slices["chunked"]["saved_mb"] < slices["baseline"]["saved_mb"]

    assert steps["input_pipeline"]["status"] == "ok"
    for what in ("pairs", "volumes"):
        assert _numbers(figures["input_pipeline"][what], ("per_s", "baseline_per_s", "speedup"))
