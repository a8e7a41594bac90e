"""RadCLIP slice pooling learns: CT phantoms pretrained with configs/pretrain/phantom-volume.yaml retrieve their
held-out reports above chance, and the registered pyfunc model embeds a volume with per-slice weights."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from medvl.cli import main
from medvl.config import load_config
from medvl.data.cache import CachedCohort
from medvl.infer.embed import embed_pairs
from medvl.infer.loading import load_for_inference
from medvl.infer.retrieval import retrieval_metrics
from medvl.train.pairs import PairDataset, collate_pairs
from medvl.train.settings import PretrainConfig
from medvl.train.trainer import run_pretrain
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def volume_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("volumes")
    cohort, manifest = root / "cohort", root / "ct.parquet"
    assert main(["synth", "-o", str(cohort), "--n-2d", "0", "--n-3d", "120", "--ct-size", "64", "--depth", "16,20",
                 "--eval-fraction", "0", "--seed", "5", "-q"]) == 0  # fmt: skip
    assert main(["ingest", "phantom", str(cohort), "-o", str(manifest), "-q"]) == 0
    uri = f"sqlite:///{root / 'mlflow.db'}"
    overrides = [f"output_dir={root / 'runs'}", f"data.manifest={manifest}", f"data.cache={root / 'cache'}",
                 f"tracking.uri={uri}", "tracking.register_as=phantom-volume"]  # fmt: skip
    result = run_pretrain(
        load_config(PretrainConfig, REPO_ROOT / "configs/pretrain/phantom-volume.yaml", overrides)
    )
    return root, result, uri


def test_slice_pooling_retrieves_held_out_reports_above_chance(volume_run):
    root, result, _ = volume_run
    model, _ = load_for_inference(result.model_dir)
    cohort = CachedCohort(root / "cache")
    held_out = np.flatnonzero(np.isin(cohort.splits, ["val", "test"]) & cohort.is_volume)
    emb = embed_pairs(
        model, PairDataset(cohort, held_out, "report", 48), collate_pairs, torch.device("cpu"), batch_size=8
    )
    metrics = retrieval_metrics(emb.image, emb.text)
    n = len(held_out)
    print(f"held-out volumes: {n}; retrieval:", {k: round(v, 3) for k, v in metrics.items()})
    assert n >= 15
    chance = {k: min(1.0, k / n) for k in (1, 5, 10)}
    assert metrics["mean_R"] >= 1.2 * np.mean(list(chance.values())), metrics  # measured 1.28x
    assert metrics["i2t_R5"] >= 1.5 * chance[5], metrics  # measured 2.0x


def test_registered_model_embeds_a_volume_with_slice_weights(volume_run):
    root, result, uri = volume_run
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model("models:/phantom-volume/1")
    volume = next(p for p in Path(root / "cohort").rglob("*.nii.gz") if "mask" not in p.name)
    out = served.predict(
        pd.DataFrame(
            {"text": ["", "Hypodense liver lesion."], "path": [str(volume), ""], "modality": ["CT", ""]}
        )
    )
    assert list(out["kind"]) == ["volume", "text"]
    weights = np.asarray(out["slice_weights"][0])
    assert weights.ndim == 1 and len(weights) >= 16 and weights.sum() == pytest.approx(1.0, abs=1e-4)
    assert np.linalg.norm(out["embedding"][0]) == pytest.approx(1.0, abs=1e-4)
