"""Training batches from the cache: the training loop's host path.

Training reads whole batches (:class:`PairBatches`): a list of ``(index, item_seed)`` keys from
:class:`medvl.train.sampling.ResumableSampler` becomes uint8 pixels read from the memory-mapped cache in one
go, token ids picked from a :class:`medvl.train.text_ids.TokenBank`, and the batch's augmentation draws; all
random choices depend only on the item seeds. :func:`device_inputs` then converts and augments on the training
device. Evaluation items come from :class:`medvl.data.pairs.PairDataset`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medvl.augment import STREAM_SLICES, AugmentStrength, augment_batch, draw_batch, seed_uniforms
from medvl.config import ConfigError
from medvl.data.cache import CachedCohort

if TYPE_CHECKING:
    from medvl.text.concepts import ConceptVocabulary
    from medvl.train.text_ids import PolarityBank, TokenBank

LIGHT = AugmentStrength(crop_scale=(0.8, 1.0), rotate_degrees=5.0, translate_fraction=0.05, brightness=0.2,
                        contrast=0.2, blur_sigma=(0.1, 0.8), blur_prob=0.3)  # fmt: skip


def augment_strength(kind: str) -> AugmentStrength | None:
    """The augmentation ranges for ``kind`` (``convirt``, ``light``, ``none``)."""
    return {"convirt": AugmentStrength(), "light": LIGHT, "none": None}[kind]


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
        max_slices: volumes keep at most this many slices.
        slice_draw: ``even`` keeps the same evenly spread slices every time; ``jittered`` draws one slice from
            each of ``max_slices`` equal runs of the volume, from the item's seed
            (:func:`medvl.data.cache.jittered_slices`).
        labels: ``(len(indices), P)`` labels replacing the cache's (e.g. :func:`label_reports`), or None.
        augment: augmentation ranges, or None.
        concepts: the vocabulary of the patch-concept term, or None.
        polarity: the statement pairs of the polarity term, or None.
        key_images: with ``concepts``, volumes always show the slices their reports cite as key images, and
            the batch holds ``key_slices`` ``(B, C)``: where on the slice axis each asserted concept's key image
            lies (-1: none cited).
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
        slice_draw: str = "even",
        key_images: bool = False,
    ) -> None:
        self.cohort, self.tokens, self.max_slices, self.slice_draw = cohort, tokens, max_slices, slice_draw
        self.key_images = key_images and concepts is not None
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = cohort.item_labels(self.indices) if labels is None else np.asarray(labels, dtype=np.float32)
        self.augment, self.concepts, self.polarity = augment, concepts, polarity

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, keys: list[tuple[int, int]]) -> dict[str, Any]:
        rows = np.fromiter((k[0] for k in keys), dtype=np.int64, count=len(keys))
        seeds = np.fromiter((k[1] for k in keys), dtype=np.uint64, count=len(keys))
        draws = seed_uniforms(seeds, self.max_slices, stream=STREAM_SLICES) if self.slice_draw == "jittered" else None
        chosen = self.tokens.choose(rows, seeds)
        texts = [self.tokens.texts[int(c)] for c in chosen]
        items = self.indices[rows]
        picks = key_slices = None
        if self.key_images:
            cited = [[self.cohort.image_slice(i, n) if n and self.cohort.is_volume[i] else -1 for n in row]
                     for i, row in zip(items, self.concepts.key_images(texts).tolist(), strict=True)]  # fmt: skip
            picks = self.cohort.slice_picks(items, self.max_slices, draws, required=cited)
            key_slices = torch.tensor([[int(np.searchsorted(p, k)) if k >= 0 and k in p else -1 for k in row]
                                       for p, row in zip(picks, cited, strict=True)], dtype=torch.long)  # fmt: skip
        pixels, depth, z_mm = self.cohort.read_batch(items, self.max_slices, draws, picks)
        input_ids, attention_mask = self.tokens.batch(chosen)
        size = self.cohort.size
        batch = {
            "pixels": torch.from_numpy(pixels), "depth": torch.from_numpy(depth), "z_mm": torch.from_numpy(z_mm),
            "input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention_mask),
            "labels": torch.from_numpy(self.labels[rows]), "seeds": torch.from_numpy(seeds.view(np.int64)),
            "draws": None if self.augment is None else draw_batch(self.augment, seeds, size, size, size),
        }  # fmt: skip
        if self.concepts is not None:
            batch["concept_targets"] = self.concepts.targets(texts)
        if key_slices is not None:
            batch["key_slices"] = key_slices
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
            raise ConfigError("the batch holds volumes but the model has no slice pooling; train on 2D items (data.kinds=2d)")
        return {"images": x.contiguous(memory_format=torch.channels_last) if channels_last else x}
    return {"slices": x.unsqueeze(2), "z_mm": batch["z_mm"].to(device, non_blocking=True), "pad_mask": ~real}
