"""Few-shot training subsets: a fraction of the train split, redrawn per seed, stratified for multilabel data.

The draw is deterministic by ``(seed, fraction, split hash)``. Every class first gets one positive and one
negative item where the split has them (rarest classes first), then the subset is filled at random up to
``ceil(fraction * N)`` items; so a 1% subset may be a little larger than 1% when the label space needs it.
"""

from __future__ import annotations

import math

import numpy as np

from benchx.paths import digest


def subset_rng(seed: int, fraction: float, split_hash: str) -> np.random.Generator:
    """The random generator of one draw."""
    return np.random.default_rng(int(digest("few-shot", seed, round(fraction, 6), split_hash)[:16], 16))


def few_shot_indices(labels: np.ndarray, fraction: float, seed: int, split_hash: str) -> np.ndarray:
    """Sorted indices of the train items kept at ``fraction``.

    Args:
        labels: ``(N, P)`` train labels: 1, 0, -1 or NaN (only 1 and 0 count for stratification).
        fraction: share of the train split in ``(0, 1]``; 1.0 keeps everything.
        seed: the evaluation seed.
        split_hash: hash of the frozen split (a new split gives new draws).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction} must be in (0, 1]")
    n = len(labels)
    if fraction >= 1.0:
        return np.arange(n)
    rng = subset_rng(seed, fraction, split_hash)
    target = max(1, math.ceil(fraction * n))
    chosen: list[int] = []
    positives = np.nan_to_num(labels, nan=0.0) == 1
    negatives = np.nan_to_num(labels, nan=1.0) == 0
    order = np.argsort(positives.sum(axis=0), kind="stable")
    for column in order:
        for wanted in (positives[:, column], negatives[:, column]):
            if wanted.any() and not wanted[chosen].any():
                chosen.append(int(rng.choice(np.flatnonzero(wanted))))
    rest = np.setdiff1d(np.arange(n), chosen)
    extra = rng.permutation(rest)[: max(0, target - len(chosen))]
    return np.sort(np.concatenate([np.asarray(chosen, dtype=np.int64), extra]))
