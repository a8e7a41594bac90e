"""Image-report training pairs from the cache: one sampled sentence, volume sub-sampling, augmentation.

Items are looked up with ``(index, item_seed)`` keys from :class:`medvl.train.sampling.ResumableSampler`
(random choices depend only on the item seed) or with a plain index for evaluation (the whole FINDINGS +
IMPRESSION text, no augmentation). Images are augmented after collation, a batch at a time on the training
device (:func:`augment_images`), with each item's draw taken from its seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medvl.augment import AugmentStrength, augment_batch, draw_params
from medvl.data.cache import CachedCohort, collate_cohort
from medvl.text.sentences import split_sentences

LIGHT = AugmentStrength(crop_scale=(0.8, 1.0), rotate_degrees=5.0, translate_fraction=0.05, brightness=0.2,
                        contrast=0.2, blur_sigma=(0.1, 0.8), blur_prob=0.3)  # fmt: skip


def report_text(item: dict[str, Any]) -> str:
    """FINDINGS + IMPRESSION of an item, or its whole report when the sections are unknown."""
    text = " ".join(t.strip() for t in (item.get("findings", ""), item.get("impression", "")) if t and t.strip())
    return text or (item.get("report") or "").strip()


def cached_report_text(cohort: CachedCohort, i: int) -> str:
    """:func:`report_text` of cache item ``i``, read from the cache's text columns (no pixels loaded)."""
    return report_text({field: cohort.text(field, i) for field in ("report", "findings", "impression")})


def label_reports(cohort: CachedCohort, indices: np.ndarray) -> np.ndarray:
    """Labels of the items' reports by the medvl labeller, in the cohort's label space (NaN: not mentioned).

    What MedCLIP's label-aware loss uses: labels read from the text, not from any other annotation.
    """
    from medvl.text.labeller import Labeller

    labeller = Labeller()
    out = np.full((len(indices), len(cohort.label_space)), np.nan, dtype=np.float32)
    column = {name: j for j, name in enumerate(cohort.label_space)}
    for row, i in enumerate(indices):
        for name, value in labeller.label(cached_report_text(cohort, i)).items():
            if name in column:
                out[row, column[name]] = value
    return out


def sample_sentence(item: dict[str, Any], rng: np.random.Generator) -> str:
    """One sentence drawn uniformly from FINDINGS + IMPRESSION (ConVIRT's text sampling)."""
    sentences = split_sentences(report_text(item))
    if not sentences:
        return report_text(item)
    return sentences[int(rng.integers(len(sentences)))]


def even_slices(depth: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` slices spread evenly over ``depth`` (all of them when it fits)."""
    if depth <= limit:
        return np.arange(depth)
    return np.unique(np.round(np.linspace(0, depth - 1, limit)).astype(int))


def augment_strength(kind: str) -> AugmentStrength | None:
    """The augmentation ranges for ``kind`` (``convirt``, ``light``, ``none``)."""
    return {"convirt": AugmentStrength(), "light": LIGHT, "none": None}[kind]


def augment_images(batch: dict[str, Any], strength: AugmentStrength, device: torch.device) -> torch.Tensor:
    """The batch's images augmented on ``device``, each item with the draw of its seed (same shape).

    A volume's real slices share one draw; padded slices stay zero.
    """
    images = batch["image"].to(device)
    size = images.shape[-1]
    draws = [draw_params(strength, np.random.RandomState(seed % 2**32), size, size, size) for seed in batch["seed"]]
    if images.ndim == 4:
        return augment_batch(images, draws, size)
    out = torch.zeros_like(images)
    for b, draw in enumerate(draws):
        real = ~batch["key_padding_mask"][b]
        out[b, real] = augment_batch(images[b, real, 0][None], [draw], size)[0].unsqueeze(1)
    return out


class PairDataset(Dataset):
    """Training or evaluation pairs over a subset of a :class:`CachedCohort`.

    Args:
        cohort: the cache.
        indices: which cache items take part.
        text: ``sentence`` (one sampled sentence per item seed) or ``report`` (the whole text).
        max_slices: volumes deeper than this keep evenly spread slices.
        labels: ``(len(indices), P)`` labels replacing the cache's (e.g. :func:`label_reports`), or None.
    """

    def __init__(
        self,
        cohort: CachedCohort,
        indices: np.ndarray,
        text: str = "sentence",
        max_slices: int = 64,
        labels: np.ndarray | None = None,
    ) -> None:
        self.cohort = cohort
        self.indices = np.asarray(indices, dtype=np.int64)
        self.text = text
        self.max_slices = max_slices
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        item = dict(self.cohort[int(self.indices[index])])
        if item["is_volume"]:
            keep = torch.from_numpy(even_slices(item["image"].shape[0], self.max_slices))
            item["image"], item["z_mm"] = item["image"][keep], item["z_mm"][keep]
            if "mask" in item:
                item["mask"] = item["mask"][keep]
        item["seed"] = seed
        if self.labels is not None:
            item["labels"] = self.labels[index]
        if seed is None:
            item["text"] = report_text(item)
            return item
        item.pop("mask", None)  # pretraining does not use masks (and they are not augmented)
        rng = np.random.default_rng(seed)
        item["text"] = sample_sentence(item, rng) if self.text == "sentence" else report_text(item)
        return item


def collate_pairs(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`medvl.data.cache.collate_cohort` plus the texts and item seeds."""
    out = collate_cohort(batch)
    out["text"] = [item["text"] for item in batch]
    out["seed"] = [item["seed"] for item in batch]
    return out


def select_items(cohort: CachedCohort, split: str, kinds: str) -> np.ndarray:
    """Indices of the cache items of ``split`` whose kind is allowed (``2d``, ``3d`` or ``all``)."""
    mask = cohort.splits == split
    if kinds == "2d":
        mask &= ~cohort.is_volume
    elif kinds == "3d":
        mask &= cohort.is_volume
    return np.flatnonzero(mask)
