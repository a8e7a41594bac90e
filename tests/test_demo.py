"""``medvl demo --quick`` end to end in a real subprocess: summary, montage, registered @champion, then a rerun
that reuses everything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

MEDVL = str(Path(sys.executable).with_name("medvl"))


def demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEDVL_CACHE": str(out.parent / "medvl-cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([MEDVL, "demo", "--quick", "--no-realdata", "-o", str(out), *extra], capture_output=True,
                          text=True, env=env, timeout=900)


@pytest.mark.slow
def test_quick_demo_runs_the_whole_loop_and_reruns_from_its_state(tmp_path):
    out = tmp_path / "demo"
    first = demo(out)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "cohort: 80 studies" in first.stdout and "positive labels:" in first.stdout
    with Image.open(out / "montage.png") as montage:
        assert montage.size[0] > 600 and montage.size[1] > 300
    assert "benchx (quick): models:/medvl-demo/1 vs random:tiny-resnet18" in first.stdout
    assert "linear_probe" in first.stdout and "auroc_macro" in first.stdout
    assert "medvl review --model models:/medvl-demo@champion" in first.stdout
    assert "cohort: 24 studies" in first.stdout  # the CT cohort of the volume model
    assert "benchx (quick-ct): models:/medvl-demo-ct/1 vs random:tiny-radclip-resnet18" in first.stdout
    assert "model for volumes (CT): models:/medvl-demo-ct@champion" in first.stdout
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(out / 'mlflow.db').resolve()}")
    for name in ("medvl-demo", "medvl-demo-ct"):
        champion = client.get_model_version_by_alias(name, "champion")
        assert str(champion.version) == "1" and champion.tags["gate.passed"].lower() == "true"
        assert "model_card" in champion.tags
    volume_model = client.get_model_version_by_alias("medvl-demo-ct", "champion")
    assert (out / "pipeline-ct" / "pretrain" / "medvl-demo-ct-2d" / "model" / "lineage.json").is_file()  # both stages ran
    assert volume_model.run_id
    again = demo(out)
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stdout.count("done before, skipped") >= 2 * (8 + 3)  # data stages seen twice, the rest once, per model
    for name in ("medvl-demo", "medvl-demo-ct"):
        assert len(client.search_model_versions(f"name = '{name}'")) == 1


def test_demo_refuses_a_cohort_smaller_than_two_batches(tmp_path):
    for flag, value in (("--n-2d", "10"), ("--n-3d", "5")):
        bad = demo(tmp_path / "demo", flag, value)
        reasons = [line for line in bad.stderr.splitlines() if line.startswith("medvl demo:")]
        assert bad.returncode == 2 and len(reasons) == 1 and flag in reasons[0]
