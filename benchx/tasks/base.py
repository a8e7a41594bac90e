"""What every task gets (:class:`TaskContext`) and returns (:class:`TaskOutcome`), and the task registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from benchx.data import PreparedDataset
from benchx.features import FeatureStore
from benchx.models.base import ModelAdapter
from benchx.stats import Metric

TRAINING_FREE = ("zero_shot", "retrieval")
"""Tasks that train nothing: evaluated once (fraction 1.0, first seed)."""


@dataclass
class TaskOutcome:
    """One task at one fraction and seed: metrics over the test cases and the cases' study ids."""

    metrics: dict[str, Metric]
    case_ids: list[str]
    details: dict[str, float] = field(default_factory=dict)

    @property
    def n_test(self) -> int:
        """Number of test cases."""
        return len(self.case_ids)


class TaskContext:
    """A dataset and a model, with split items, labels and cached embeddings loaded on first use."""

    def __init__(self, dataset: PreparedDataset, adapter: ModelAdapter, store: FeatureStore) -> None:
        self.dataset = dataset
        self.adapter = adapter
        self.store = store
        self.label_space = list(dataset.card.label_space)
        self.cohort = cache(dataset.cohort)
        self.index = cache(self._index)
        self.embeddings = cache(self._embeddings)
        self.memo: dict[tuple, Any] = {}  # data a task derives once and reuses in its runs (e.g. feature maps)

    def _index(self, split: str) -> pd.DataFrame:
        from medvl.data.cache import INDEX_FILE

        index = pd.read_parquet(self.dataset.cache_dir / INDEX_FILE)
        return index[index["split"] == split].reset_index(drop=True)

    def labels(self, split: str) -> np.ndarray:
        """``(N, P)`` labels of a split's items: 1, 0 or NaN (uncertain -1 counts as unknown)."""
        index = self.index(split)
        values = np.asarray([list(v) for v in index["labels"]], dtype=np.float64).reshape(len(index), -1)
        values[values == -1] = np.nan
        return values

    def study_ids(self, split: str) -> list[str]:
        """Study id of each item of a split."""
        return self.index(split)["study_id"].astype(str).tolist()

    def texts(self, split: str) -> list[str]:
        """Report text of each item (findings + impression when the report is empty)."""
        index = self.index(split)
        return [(r or f"{f} {i}").strip() for r, f, i in zip(index["report"], index["findings"], index["impression"], strict=True)]

    def _embeddings(self, split: str) -> np.ndarray:
        return self.store.image_embeddings(self.adapter, self.cohort(split), self.dataset.split_hash, split)


TaskFn = Callable[[TaskContext, float, int], TaskOutcome]
