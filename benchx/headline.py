"""The headline metrics of each task, the chance level of a metric and whether lower is better.

Chance is the expected value of an uninformative model: 0.5 for any AUROC, ``min(k, N) / N`` for recall@k
over a gallery of ``N`` distinct items (retrieval pairs every test query with one gallery item, so ``N`` is
the row's ``n_test``). F1, accuracy, precision@k, Dice and IoU depend on the label prevalence, which the
results do not carry: no chance level. Calibration metrics (ECE, Brier score) are better when lower; every other
metric when higher.
"""

from __future__ import annotations

import re

_CLASSIFICATION = ("auroc_macro", "f1_macro", "accuracy", "ece_macro", "brier_macro")
HEADLINE: dict[str, tuple[str, ...]] = {
    "linear_probe": _CLASSIFICATION, "finetune_frozen": _CLASSIFICATION, "finetune_full": _CLASSIFICATION,
    "zero_shot": _CLASSIFICATION,
    "retrieval": ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "precision_at_5", "precision_at_10"),
    "segmentation": ("dice", "iou"),
}
_RECALL = re.compile(r"(?:i2t|t2i)_R(\d+)")
_LOWER_IS_BETTER = re.compile(r"(?:ece|brier)_.+")


def lower_is_better(metric: str) -> bool:
    """Whether a lower value of ``metric`` is better (ECE, Brier score)."""
    return _LOWER_IS_BETTER.fullmatch(metric) is not None


def chance_level(metric: str, n_test: int) -> float | None:
    """The chance value of ``metric`` on ``n_test`` test cases; None where it is not defined."""
    if metric.startswith("auroc_"):
        return 0.5
    recall = _RECALL.fullmatch(metric)
    if recall and n_test > 0:
        return min(int(recall[1]), n_test) / n_test
    return None
