"""Deterministic, resumable, rank-sharded sampling and per-sample randomness.

The order of an epoch is a permutation drawn from ``(seed, epoch)``; each rank takes every ``world_size``-th
index; an epoch can start at any position (the data position stored in checkpoints). Every item comes with
its own seed derived from ``(seed, epoch, index)``, so augmentations and sentence sampling do not depend on
worker processes or on where a run was resumed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


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
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and the number of this rank's items already consumed in it."""
        self.epoch = epoch
        self.start = start

    def _global_order(self) -> Sequence[int]:
        if not self.shuffle:
            return range(self.n_items)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n_items).tolist()

    def per_rank(self) -> int:
        """Items each rank sees per epoch."""
        if self.drop_last:
            global_batch = self.batch_size * self.world_size
            return (self.n_items // global_batch) * self.batch_size
        return -(-self.n_items // self.world_size)

    def __len__(self) -> int:
        return max(0, self.per_rank() - self.start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = list(self._global_order())
        total = self.per_rank() * self.world_size
        if total > len(order):
            order = (order * (-(-total // len(order))))[:total]
        mine = order[:total][self.rank :: self.world_size]
        for index in mine[self.start :]:
            yield index, sample_seed(self.seed, self.epoch, index)
