"""Deterministic, resumable, rank-sharded sampling and per-sample randomness.

The order of an epoch is a permutation drawn from ``(seed, epoch)``; each rank takes every ``world_size``-th
index; an epoch can start at any position (the data position stored in checkpoints). Every item comes with
its own seed derived from ``(seed, epoch, index)``, so augmentations and sentence sampling do not depend on
worker processes or on where a run was resumed.

Repeat-factor sampling (LVIS, Gupta et al. 2019) shows an item with a rare finding more than once per epoch;
each showing has its own seed, so a repeated radiograph is augmented and described anew.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


def repeat_factors(labels: np.ndarray, threshold: float) -> np.ndarray:
    """How often each item is shown per epoch: ``max(1, sqrt(threshold / f))`` for the training frequency ``f``
    of its rarest positive finding (``labels == 1``, items x findings); 1 where no finding is rarer than
    ``threshold``."""
    positive = labels == 1
    frequency = positive.mean(axis=0)
    per_finding = np.sqrt(threshold / np.maximum(frequency, 1e-12)).clip(min=1.0)
    return np.where(positive, per_finding, 1.0).max(axis=1, initial=1.0)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one item of one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


class ResumableSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, item_seed)`` for this rank's share of a shuffled epoch, from ``start`` on.

    Args:
        n_items: dataset length.
        seed: run seed.
        rank, world_size: this process's place; the epoch is padded by repetition so every rank gets the
            same number of items (``drop_last`` drops the tail instead).
        shuffle: draw a permutation per epoch (else natural order).
        drop_last: drop the items that do not fill a whole global batch of ``batch_size * world_size``.
        batch_size: per-rank batch size (only used with ``drop_last``).
        repeats: per-item repeat factors (:func:`repeat_factors`); an epoch shows item ``i`` ``floor(r_i)``
            times plus once more with probability ``r_i - floor(r_i)``, drawn from ``(seed, epoch)``.
    """

    def __init__(
        self,
        n_items: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = True,
        batch_size: int = 1,
        repeats: np.ndarray | None = None,
    ) -> None:
        if n_items <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.n_items = n_items
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.batch_size = batch_size
        self.repeats = repeats
        self.epoch = 0
        self.start = 0
        self._order: tuple[int, list[tuple[int, int]]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and the number of this rank's items already consumed in it."""
        self.epoch = epoch
        self.start = start

    def _epoch_items(self) -> list[tuple[int, int]]:
        """This epoch's ``(index, showing)`` pairs in global order (one showing per item without repeats)."""
        if self._order is not None and self._order[0] == self.epoch:
            return self._order[1]
        counts = np.ones(self.n_items, dtype=np.int64)
        if self.repeats is not None:
            extra = np.random.default_rng([self.seed, self.epoch, 1]).random(self.n_items) < self.repeats % 1
            counts = np.floor(self.repeats).astype(np.int64) + extra
        index = np.repeat(np.arange(self.n_items), counts)
        showing = np.arange(len(index)) - np.repeat(np.cumsum(counts) - counts, counts)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(index))
            index, showing = index[order], showing[order]
        self._order = (self.epoch, list(zip(index.tolist(), showing.tolist(), strict=True)))
        return self._order[1]

    def per_rank(self) -> int:
        """Items each rank sees this epoch."""
        n = len(self._epoch_items())
        if self.drop_last:
            global_batch = self.batch_size * self.world_size
            return (n // global_batch) * self.batch_size
        return -(-n // self.world_size)

    def __len__(self) -> int:
        return max(0, self.per_rank() - self.start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._epoch_items()
        total = self.per_rank() * self.world_size
        if total > len(order):
            order = (order * (-(-total // len(order))))[:total]
        mine = order[:total][self.rank :: self.world_size]
        for index, showing in mine[self.start :]:
            yield index, sample_seed(self.seed, self.epoch, index + showing * self.n_items)
