"""Image-report pairs read from the cache for evaluation: each item with its whole FINDINGS + IMPRESSION text.

Training batches are made elsewhere (:mod:`medvl.train.batches`); these helpers are shared by the evaluation,
``medvl embed`` and the trainer's text banks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medvl.data.cache import CachedCohort, collate_cohort, even_slices


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


def collate_pairs(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`medvl.data.cache.collate_cohort` plus the texts."""
    out = collate_cohort(batch)
    out["text"] = [item["text"] for item in batch]
    return out
