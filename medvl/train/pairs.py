"""Image-report pairs from the cache: the training loop's batches and the evaluation items.

Training reads whole batches (:class:`PairBatches`): a list of ``(index, item_seed)`` keys from
:class:`medvl.train.sampling.ResumableSampler` becomes uint8 pixels read from the memory-mapped cache in one
go, token ids picked from a :class:`medvl.train.text_ids.TokenBank`, and the batch's augmentation draws; all
random choices depend only on the item seeds. :func:`device_inputs` then converts and augments on the training
device. Evaluation looks items up one by one with a plain index (:class:`PairDataset`: the whole FINDINGS +
IMPRESSION text, no augmentation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medvl.augment import AugmentStrength, augment_batch, draw_batch
from medvl.data.cache import CachedCohort, collate_cohort, even_slices

if TYPE_CHECKING:
    from medvl.train.concepts import ConceptVocabulary
    from medvl.train.text_ids import PolarityBank, TokenBank

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
    from medvl.text.labels import CT_OBSERVATIONS, LabelSpace

    ct = any(name in CT_OBSERVATIONS for name in cohort.label_space)
    labeller = Labeller(LabelSpace.chest_abdomen_ct()) if ct else Labeller()
    out = np.full((len(indices), len(cohort.label_space)), np.nan, dtype=np.float32)
    column = {name: j for j, name in enumerate(cohort.label_space)}
    for row, i in enumerate(indices):
        for name, value in labeller.label(cached_report_text(cohort, i)).items():
            if name in column:
                out[row, column[name]] = value
    return out


def augment_strength(kind: str) -> AugmentStrength | None:
    """The augmentation ranges for ``kind`` (``convirt``, ``light``, ``none``)."""
    return {"convirt": AugmentStrength(), "light": LIGHT, "none": None}[kind]


class PairDataset(Dataset):
    """Evaluation pairs over a subset of a :class:`CachedCohort`: each item with its whole report text.

    Args:
        cohort: the cache.
        indices: which cache items take part.
        max_slices: volumes deeper than this keep evenly spread slices.
    """

    def __init__(self, cohort: CachedCohort, indices: np.ndarray, max_slices: int = 64) -> None:
        self.cohort = cohort
        self.indices = np.asarray(indices, dtype=np.int64)
        self.max_slices = max_slices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.cohort[int(self.indices[index])])
        if item["is_volume"]:
            keep = torch.from_numpy(even_slices(item["image"].shape[0], self.max_slices))
            item["image"], item["z_mm"] = item["image"][keep], item["z_mm"][keep]
            if "mask" in item:
                item["mask"] = item["mask"][keep]
        item["text"] = report_text(item)
        return item


class PairBatches(Dataset):
    """Whole training batches from lists of ``(index, item_seed)`` keys (use with ``batch_size=None``).

    A batch holds ``pixels`` ``(B, S, H, W)`` uint8, ``depth`` ``(B,)``, ``z_mm`` ``(B, S)``, ``input_ids`` and
    ``attention_mask`` ``(B, T)``, ``labels`` ``(B, P)``, ``seeds`` ``(B,)``, ``draws`` (the augmentation of
    each item, or None) and ``concept_targets`` ``(B, C)`` when a concept vocabulary is given. No float
    pixels are made on the host.

    Args:
        cohort: the cache.
        indices: the training items (``index`` in a key is a position in this array).
        tokens: the token bank of these items' candidate texts.
        max_slices: volumes keep at most this many evenly spread slices.
        labels: ``(len(indices), P)`` labels replacing the cache's (e.g. :func:`label_reports`), or None.
        augment: augmentation ranges, or None.
        concepts: the vocabulary of the patch-concept term, or None.
        polarity: the statement pairs of the polarity term, or None.
    """

    def __init__(
        self,
        cohort: CachedCohort,
        indices: np.ndarray,
        tokens: TokenBank,
        max_slices: int = 64,
        labels: np.ndarray | None = None,
        augment: AugmentStrength | None = None,
        concepts: ConceptVocabulary | None = None,
        polarity: PolarityBank | None = None,
    ) -> None:
        self.cohort, self.tokens, self.max_slices = cohort, tokens, max_slices
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = cohort.item_labels(self.indices) if labels is None else np.asarray(labels, dtype=np.float32)
        self.augment, self.concepts, self.polarity = augment, concepts, polarity

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, keys: list[tuple[int, int]]) -> dict[str, Any]:
        rows = np.fromiter((k[0] for k in keys), dtype=np.int64, count=len(keys))
        seeds = np.fromiter((k[1] for k in keys), dtype=np.uint64, count=len(keys))
        pixels, depth, z_mm = self.cohort.read_batch(self.indices[rows], self.max_slices)
        chosen = self.tokens.choose(rows, seeds)
        input_ids, attention_mask = self.tokens.batch(chosen)
        size = self.cohort.size
        batch = {
            "pixels": torch.from_numpy(pixels), "depth": torch.from_numpy(depth), "z_mm": torch.from_numpy(z_mm),
            "input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask),
            "labels": torch.from_numpy(self.labels[rows]), "seeds": torch.from_numpy(seeds.view(np.int64)),
            "draws": None if self.augment is None else draw_batch(self.augment, seeds, size, size, size),
        }  # fmt: skip
        if self.concepts is not None:
            batch["concept_targets"] = self.concepts.targets([self.tokens.texts[int(c)] for c in chosen])
        if self.polarity is not None:
            ids, mask, targets = self.polarity.draw(self.labels[rows], seeds)
            batch.update(polarity_ids=torch.from_numpy(ids), polarity_mask=torch.from_numpy(mask),
                         polarity_targets=torch.from_numpy(targets))  # fmt: skip
        return batch


def device_inputs(batch: dict[str, Any], device: torch.device, volumes: bool, channels_last: bool = False) -> dict[str, torch.Tensor]:
    """Keyword image inputs of ``model.forward`` from a :class:`PairBatches` batch, made on ``device``.

    The uint8 pixels travel to the device (``non_blocking`` from pinned memory), become floats in ``[0, 1]``
    there and are augmented there; ``volumes`` gives ``slices``/``z_mm``/``pad_mask`` (a 2D image is a
    one-slice volume), else ``images`` ``(B, 1, H, W)``.
    """
    pixels = batch["pixels"].to(device, non_blocking=True)
    x = pixels.to(torch.float32).mul_(1.0 / 255.0)
    b, s, _, size = x.shape
    real = torch.arange(s, device=device)[None] < batch["depth"].to(device, non_blocking=True)[:, None]
    if batch["draws"] is not None:
        x = augment_batch(x, batch["draws"], size, channel_mask=real if s > 1 else None)
    if not volumes:
        if s != 1:
            raise ValueError("the batch holds volumes but the model has no slice pooling; train on 2D items (data.kinds=2d)")
        return {"images": x.contiguous(memory_format=torch.channels_last) if channels_last else x}
    return {"slices": x.unsqueeze(2), "z_mm": batch["z_mm"].to(device, non_blocking=True), "pad_mask": ~real}


def collate_pairs(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`medvl.data.cache.collate_cohort` plus the texts."""
    out = collate_cohort(batch)
    out["text"] = [item["text"] for item in batch]
    return out


def select_items(cohort: CachedCohort, split: str, kinds: str) -> np.ndarray:
    """Indices of the cache items of ``split`` whose kind is allowed (``2d``, ``3d`` or ``all``)."""
    return cohort.select(split, kinds)
