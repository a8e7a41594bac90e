"""Cross-modal retrieval on the test split: each image against every report and vice versa.

``i2t_R{k}``: image queries, report gallery; ``t2i_R{k}``: report queries, image gallery; a query counts at
rank r when fewer than r gallery items score strictly higher than its own pair (ties favour the query, as in
:func:`medvl.infer.retrieval.similarity_ranks`, shared with medvl's own evaluation). ``precision_at_{k}``: image queries, the share of the top-k
reports whose item has exactly the query's label set (class-level Precision@K). Items without report text
are left out.
"""

from __future__ import annotations

import numpy as np

from benchx.errors import BenchxError
from benchx.stats import MeanOf, Metric
from benchx.tasks.base import TaskContext, TaskOutcome
from medvl.infer.retrieval import precision_per_query, similarity_ranks

RECALL_KS = (1, 5, 10)
PRECISION_KS = (5, 10)


def label_classes(labels: np.ndarray) -> np.ndarray:
    """A class id per item: its exact label pattern (NaN counted as its own value)."""
    patterns = [tuple(np.nan_to_num(row, nan=-9).tolist()) for row in labels]
    lookup = {p: i for i, p in enumerate(sorted(set(patterns)))}
    return np.array([lookup[p] for p in patterns])


def retrieval_metrics(image_emb: np.ndarray, text_emb: np.ndarray, classes: np.ndarray) -> dict[str, Metric]:
    """Per-query retrieval metrics for row-paired, normalised embeddings."""
    sims = image_emb @ text_emb.T
    ranks = {"i2t": similarity_ranks(sims), "t2i": similarity_ranks(sims.T)}
    metrics: dict[str, Metric] = {}
    for k in RECALL_KS:
        for direction, rank in ranks.items():
            metrics[f"{direction}_R{k}"] = MeanOf((rank < k).astype(float))
    for k in PRECISION_KS:
        metrics[f"precision_at_{k}"] = MeanOf(precision_per_query(classes, classes, sims, k))
    return metrics


def retrieval(ctx: TaskContext, fraction: float, seed: int) -> TaskOutcome:
    """Image-report retrieval on the test split (trains nothing)."""
    if not ctx.adapter.has_text:
        raise BenchxError(f"{ctx.adapter.info.ref}: retrieval needs a model with a text encoder")
    texts = ctx.texts("test")
    keep = np.array([bool(t) for t in texts])
    if keep.sum() < 2:
        raise BenchxError(f"dataset '{ctx.dataset.card.name}': fewer than 2 test items have report text")
    text_emb = ctx.store.text_embeddings(ctx.adapter, [t for t in texts if t], ctx.dataset.cache_key)
    image_emb = ctx.embeddings("test")[keep]
    classes = label_classes(ctx.labels("test")[keep])
    ids = [s for s, k in zip(ctx.study_ids("test"), keep, strict=True) if k]
    return TaskOutcome(retrieval_metrics(image_emb, text_emb, classes), ids)
