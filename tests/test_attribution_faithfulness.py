"""Do the heatmaps point at the lesion? Pointing game and deletion test on phantoms with known lesion masks.

Uses the session's pretrained phantom model (``trained_phantom_model``) and its cache, whose masks are aligned
with the model input. Floors (docs/app.md): pointing-game accuracy above the chance rate of a random point;
deleting the top-attributed region lowers the finding's probability more, on average, than
deleting the same region moved to a random place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation

from medvl.data.cache import CachedCohort
from medvl.data.phantom import MASK_BITS
from medvl.infer.attribution import (
    analyse,
    build_text_bank,
    delete_region,
    finding_scores,
    heatmap,
    pointing_hit,
    top_region,
)
from medvl.infer.loading import ModelInput, load_for_inference
from medvl.text.prompts import build_prompts

TOLERANCE_PX = 8
DELETE_FRACTION = 0.1
MAX_STUDIES = 60
FINDINGS_2D = ("Cardiomegaly", "Pleural Effusion", "Consolidation", "Lung Lesion", "Pneumothorax")


@dataclass
class Faithfulness:
    """Pointing-game hits and chance rates, and probability drops after deleting top / random regions."""

    hits: list[bool]
    chance: list[float]
    drop_top: list[float]
    drop_random: list[float]

    @property
    def pointing(self) -> float:
        return float(np.mean(self.hits))


def _input(pixels: np.ndarray) -> ModelInput:
    size = pixels.shape[-1]
    return ModelInput(pixels[None].astype(np.float32), np.zeros(1, np.float32), (0, 0, size, size))


def measure(model_dir: Path, cache_dir: Path, split: str = "test", seed: int = 0) -> Faithfulness:
    """Run both checks on up to MAX_STUDIES lesion-bearing studies of the cache split."""
    model, _ = load_for_inference(model_dir)
    prompts = build_prompts()  # the app's default ensembles (no prompt is a training sentence)
    bank = build_text_bank(model, {f: prompts[f] for f in FINDINGS_2D}, lexicon=[])
    names = bank.observations
    cohort = CachedCohort(cache_dir, split)
    rng = np.random.default_rng(seed)
    out = Faithfulness([], [], [], [])
    for i in range(len(cohort)):
        item = cohort[i]
        if "mask" not in item or len(out.hits) >= MAX_STUDIES:
            continue
        pixels, mask = item["image"][0].numpy(), item["mask"][0].numpy()
        present = [f for f in FINDINGS_2D if (mask & MASK_BITS[f]).any()]
        if not present:
            continue
        finding = present[int(rng.integers(len(present)))]
        lesion = (mask & MASK_BITS[finding]) > 0
        analysis = analyse(model, _input(pixels))
        heat = heatmap(analysis, bank.direction(finding), bank.scale)
        out.hits.append(pointing_hit(heat, lesion, TOLERANCE_PX))
        out.chance.append(float(binary_dilation(lesion, iterations=TOLERANCE_PX).mean()))
        before = finding_scores(analysis, bank)[names.index(finding)].probability
        region = top_region(heat, DELETE_FRACTION)
        shift = tuple(int(v) for v in rng.integers(0, pixels.shape[-1], size=2))
        for deleted, drops in ((region, out.drop_top), (np.roll(region, shift, axis=(0, 1)), out.drop_random)):
            after = finding_scores(analyse(model, _input(delete_region(pixels, deleted))), bank)
            drops.append(before - after[names.index(finding)].probability)
    return out


@pytest.mark.xfail(
    reason="known gap: the phantom-tiny model's 4x4 patch grid is not faithful yet (per-finding pointing game on "
    "the CI model: effusion 0.27 vs chance 0.10, cardiomegaly 0.05 vs 0.19, pneumothorax 0.00 vs 0.08; see docs/app.md)",
    strict=False,
)
def test_heatmaps_point_at_lesions_and_deleting_them_lowers_the_score(trained_phantom_model):
    torch.manual_seed(0)
    result = measure(trained_phantom_model.model_dir, trained_phantom_model.cache_dir)
    assert len(result.hits) >= 30, "too few lesion-bearing test studies for the checks"
    chance = float(np.mean(result.chance))
    assert result.pointing > chance, f"pointing game {result.pointing:.3f} no better than a random point ({chance:.3f})"
    assert np.mean(result.drop_top) > np.mean(result.drop_random), (
        f"deleting the top region drops {np.mean(result.drop_top):.3f}, a random one {np.mean(result.drop_random):.3f}"
    )
