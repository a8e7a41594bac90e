"""How faithful the heatmaps are, on phantoms whose lesion masks are known: pointing game and deletion test.

For every lesion-bearing study of a cache split, one planted finding is drawn (seeded) and its heatmap is
checked two ways. The heatmap is the app's (:func:`medvl.infer.attribution.heatmap` on the dense region grid of
:func:`~medvl.infer.attribution.analyse`, for the finding's direction in a bank built with the model's trained
concepts: the region similarity with the finding's concept, or for a model without one, the region score of the
app's default prompt ensembles). The checks:

- **pointing game**: is the heatmap's maximum within ``TOLERANCE_PX`` of the finding's mask? Its chance rate is
  the share of the image a random point would hit (the mask dilated by the tolerance);
- **deletion test**: replacing the top ``DELETE_FRACTION`` of heatmap pixels by the mean of the rest should lower
  the score the heatmap maps (the best region's score for the finding) more than deleting the same region moved to
  a random place.

``tests/test_attribution_faithfulness.py`` asserts both on the test session's model; docs/app.md has the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation

from medvl.data.cache import CachedCohort
from medvl.data.phantom import MASK_BITS
from medvl.infer.attribution import (
    analyse,
    build_text_bank,
    delete_region,
    heatmap,
    patch_scores,
    pointing_hit,
    top_region,
)
from medvl.infer.loading import ModelInput, load_for_inference, read_concepts
from medvl.text.prompts import build_prompts

TOLERANCE_PX = 8
DELETE_FRACTION = 0.1
FINDINGS_2D = ("Cardiomegaly", "Pleural Effusion", "Consolidation", "Lung Lesion", "Pneumothorax")


@dataclass
class Faithfulness:
    """Pointing-game hits and chance rates, and score drops after deleting top / random regions."""

    hits: list[bool]
    chance: list[float]
    drop_top: list[float]
    drop_random: list[float]

    @property
    def pointing(self) -> float:
        """Pointing-game accuracy."""
        return float(np.mean(self.hits))

    @property
    def chance_rate(self) -> float:
        """Mean chance rate of a random point."""
        return float(np.mean(self.chance))


def _single_image(pixels: np.ndarray) -> ModelInput:
    size = pixels.shape[-1]
    return ModelInput(pixels[None].astype(np.float32), np.zeros(1, np.float32), (0, 0, size, size))


def measure(model_dir: str | Path, cache_dir: str | Path, split: str = "test", seed: int = 0) -> Faithfulness:
    """Run both checks on every lesion-bearing 2D study of ``split`` in a phantom cache (masks included)."""
    model, _ = load_for_inference(model_dir)
    prompts = build_prompts()  # the app's default ensembles (no prompt is a training sentence)
    bank = build_text_bank(model, {f: prompts[f] for f in FINDINGS_2D}, lexicon=[], trained_concepts=read_concepts(model_dir))
    cohort = CachedCohort(cache_dir, split)
    rng = np.random.default_rng(seed)
    out = Faithfulness([], [], [], [])
    for i in range(len(cohort)):
        item = cohort[i]
        if "mask" not in item:
            continue
        pixels, mask = item["image"][0].numpy(), item["mask"][0].numpy()
        present = [f for f in FINDINGS_2D if (mask & MASK_BITS[f]).any()]
        if not present:
            continue
        finding = present[int(rng.integers(len(present)))]
        lesion = (mask & MASK_BITS[finding]) > 0
        direction = bank.direction(finding)
        analysis = analyse(model, _single_image(pixels))
        heat = heatmap(analysis, direction, bank.scale)
        out.hits.append(pointing_hit(heat, lesion, TOLERANCE_PX))
        out.chance.append(float(binary_dilation(lesion, iterations=TOLERANCE_PX).mean()))
        before = float(patch_scores(analysis, direction, bank.scale).max())
        region = top_region(heat, DELETE_FRACTION)
        shift = tuple(int(v) for v in rng.integers(0, pixels.shape[-1], size=2))
        for deleted, drops in (
            (region, out.drop_top),
            (np.roll(region, shift, axis=(0, 1)), out.drop_random),
        ):
            after = analyse(model, _single_image(delete_region(pixels, deleted)))
            drops.append(before - float(patch_scores(after, direction, bank.scale).max()))
    return out
