"""Embeddings of a dataset's images and reports, computed once per model and dataset and cached on disk.

The cache key is the model fingerprint, the image cache key (manifest hash, preprocessing, label space), the
split hash and the split, so a new model, new data, new preprocessing or a new split never reuses old
features. Files: ``<data dir>/features/<key>.npy``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchx.models.base import ModelAdapter, encode_volumes
from benchx.paths import digest

FEATURES_VERSION = "1"
BATCH_SIZE = 32


def batches(cohort, batch_size: int = BATCH_SIZE) -> Iterator[dict]:
    """Collated batches of a cached cohort in item order."""
    from medvl.data.cache import collate_cohort

    yield from DataLoader(cohort, batch_size=batch_size, shuffle=False, collate_fn=collate_cohort)


def encode_batch(adapter: ModelAdapter, batch: dict) -> torch.Tensor:
    """Embeddings of a collated batch: images, or volumes through the adapter's volume encoder."""
    if batch["image"].ndim == 5:
        return encode_volumes(adapter, batch["image"], batch["z_mm"], batch["key_padding_mask"])
    return adapter.encode_image(batch["image"])


class FeatureStore:
    """Disk cache of embeddings; counts hits and misses (``hits``, ``misses``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _cached(self, key: str, compute) -> np.ndarray:
        path = self.root / f"{key}.npy"
        if path.is_file():
            self.hits += 1
            return np.load(path)
        self.misses += 1
        values = np.ascontiguousarray(compute(), dtype=np.float32)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, values)
        tmp.replace(path)
        return values

    def image_embeddings(self, adapter: ModelAdapter, cohort, split_hash: str, split: str) -> np.ndarray:
        """``(N, D)`` image (or volume) embeddings of a split's items."""
        key = digest("image", FEATURES_VERSION, adapter.info.fingerprint, cohort.key, split_hash, split)

        @torch.no_grad()
        def compute() -> np.ndarray:
            return torch.cat([encode_batch(adapter, b).float() for b in batches(cohort)]).numpy()

        return self._cached(key, compute)

    def text_embeddings(self, adapter: ModelAdapter, texts: list[str], dataset_key: str) -> np.ndarray:
        """``(N, D)`` embeddings of texts (reports or prompts)."""
        key = digest("text", FEATURES_VERSION, adapter.info.fingerprint, dataset_key, texts)

        @torch.no_grad()
        def compute() -> np.ndarray:
            return adapter.encode_text(texts).float().numpy()

        return self._cached(key, compute)
