"""What a volume model has learnt, read the way the review app reads it, on CT phantoms with known lesions.

For every volume of a cache split (all its slices, as the app sees a series):

- **zero-shot findings**: the app's probability per finding (:func:`medvl.infer.attribution.finding_scores`: the
  patch-concept head for findings with a trained concept, else the phantom prompt pair on the volume
  embedding); AUROC per finding against the planted ground truth;
- **volume-report retrieval**: the study embedding against the embeddings of the split's reports (the text
  the model trained on), R@k in both directions, with chance ``k / N``;
- **slice relevance**: for every planted focal lesion, do the top 3 slices by the app's per-slice score for
  that finding (:func:`medvl.infer.attribution.slice_scores`) contain it? Chance is the probability that 3
  slices drawn at random do (hypergeometric), so ``slice_lift`` is the hit rate over the chance rate (slice
  models only: a native 3D encoder ranks no slices).

``benchmarks/volume_seeds.py`` prints these per seed; ``tests/test_pretrain_volume.py`` asserts floors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from medvl.data.cache import CachedCohort
from medvl.data.phantom import MASK_BITS_3D
from medvl.data.phantom.findings import CT_FINDINGS, FOCAL_CT_FINDINGS
from medvl.infer.attribution import analyse, build_text_bank, finding_scores, slice_scores, top_slices
from medvl.infer.embed import encode_texts
from medvl.infer.loading import ModelInput, load_for_inference, read_concepts
from medvl.infer.retrieval import recall_at_k
from medvl.infer.zeroshot import auroc_per_class
from medvl.text.prompts import PHANTOM_PROMPTS

TOP_SLICES = 3
RECALL_KS = (1, 5, 10)


@dataclass
class VolumeEvaluation:
    """Zero-shot AUROC per finding, retrieval recalls and slice-relevance hits of one model on one split."""

    n_volumes: int
    zero_shot_auroc: dict[str, float]
    retrieval: dict[str, float]
    slice_hits: list[bool] = field(default_factory=list)
    slice_chance: list[float] = field(default_factory=list)

    @property
    def zero_shot_mean(self) -> float:
        """Mean AUROC over the findings that have both classes in the split."""
        return float(np.mean(list(self.zero_shot_auroc.values())))

    @property
    def slice_hit_rate(self) -> float:
        """Share of focal lesions found among the top slices."""
        return float(np.mean(self.slice_hits)) if self.slice_hits else float("nan")

    @property
    def slice_chance_rate(self) -> float:
        """Mean chance that random slices would contain the lesion."""
        return float(np.mean(self.slice_chance)) if self.slice_chance else float("nan")

    @property
    def slice_lift(self) -> float:
        """Hit rate over chance rate (1 = no better than random slices)."""
        return self.slice_hit_rate / self.slice_chance_rate

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "n_volumes": self.n_volumes,
            "zero_shot_auroc": self.zero_shot_auroc,
            "zero_shot_mean": self.zero_shot_mean,
            "retrieval": self.retrieval,
            "slice_lesions": len(self.slice_hits),
            "slice_hit_rate": self.slice_hit_rate,
            "slice_chance_rate": self.slice_chance_rate,
            "slice_lift": self.slice_lift,
        }


def random_slices_hit_chance(depth: int, lesion_slices: int, k: int = TOP_SLICES) -> float:
    """Probability that ``k`` distinct slices drawn at random from ``depth`` include one of ``lesion_slices``."""
    k = min(k, depth)
    return 1.0 - comb(depth - lesion_slices, k) / comb(depth, k)


def _volume_input(item: dict[str, Any]) -> ModelInput:
    pixels = item["image"][:, 0].numpy()
    size = pixels.shape[-1]
    return ModelInput(pixels, item["z_mm"].numpy(), (0, 0, size, size))


@torch.no_grad()
def evaluate_volumes(
    model_dir: str | Path,
    cache_dir: str | Path,
    split: str = "test",
    findings: tuple[str, ...] = CT_FINDINGS,
    progress: bool = False,
) -> VolumeEvaluation:
    """Score every volume of ``split`` in a phantom cache (masks included) as the app does; see the module doc."""
    from medvl.data.pairs import cached_report_text

    model, _ = load_for_inference(model_dir)
    prompts = {name: PHANTOM_PROMPTS[name] for name in findings}
    bank = build_text_bank(model, prompts, lexicon=[], trained_concepts=read_concepts(model_dir))
    cohort = CachedCohort(cache_dir)
    items = np.flatnonzero((cohort.splits == split) & cohort.is_volume)
    if len(items) < 2:
        raise ValueError(f"{cache_dir}: split '{split}' has {len(items)} volumes; evaluating needs at least 2")
    columns = [cohort.label_space.index(name) for name in findings]
    probs, labels, embeddings = [], [], []
    out = VolumeEvaluation(len(items), {}, {})
    for i in tqdm(items, desc=f"evaluate {split}", unit="volume", disable=not progress):
        item = cohort[int(i)]
        analysis = analyse(model, _volume_input(item))
        probs.append([s.probability for s in finding_scores(analysis, bank)])
        labels.append(item["labels"].numpy()[columns])
        embeddings.append(analysis.embedding)
        if analysis.pooling == "3d":  # a native 3D encoder has depth cells, not slices, to rank
            continue
        mask = item["mask"][:, 0].numpy()
        for name in FOCAL_CT_FINDINGS:
            on_slice = ((mask & MASK_BITS_3D[name]) > 0).any(axis=(1, 2))
            if name in findings and on_slice.any():
                relevance = slice_scores(analysis, bank.direction(name), bank.scale)
                out.slice_hits.append(bool(on_slice[top_slices(relevance, TOP_SLICES)].any()))
                out.slice_chance.append(random_slices_hit_chance(len(on_slice), int(on_slice.sum())))
    out.zero_shot_auroc = auroc_per_class(np.asarray(probs), (np.asarray(labels) == 1).astype(float), list(findings))
    image = torch.stack(embeddings)
    text = encode_texts(model, [cached_report_text(cohort, int(i)) for i in items], torch.device("cpu"))
    for direction, (query, gallery) in (("i2t", (image, text)), ("t2i", (text, image))):
        for k, value in recall_at_k(query, gallery, RECALL_KS).items():
            out.retrieval[f"{direction}_R{k}"] = value
    out.retrieval.update({f"chance_R{k}": min(1.0, k / len(items)) for k in RECALL_KS})
    return out
