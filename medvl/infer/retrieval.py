"""Cross-modal retrieval metrics on L2-normalised embeddings."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

SimilarityMatrix = TypeVar("SimilarityMatrix", np.ndarray, torch.Tensor)


def similarity_ranks(sims: SimilarityMatrix) -> SimilarityMatrix:
    """Per query (row) of a query x gallery similarity matrix: the rank of its paired item (the diagonal), 0 = best.

    Ties are broken in the query's favour: the rank is the number of items scoring strictly higher. Works on
    NumPy arrays and torch tensors alike.
    """
    return (sims > sims.diagonal()[:, None]).sum(1)


def paired_ranks(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """``(N,)`` rank of each query's paired gallery item (same row index) by cosine similarity
    (:func:`similarity_ranks`)."""
    if query.shape != gallery.shape:
        raise ValueError(f"query {tuple(query.shape)} and gallery {tuple(gallery.shape)} must be paired row by row")
    return similarity_ranks(query.float() @ gallery.float().T)


def recall_at_k(query: torch.Tensor, gallery: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Fraction of queries whose paired gallery item ranks in the top k (:func:`paired_ranks`)."""
    rank = paired_ranks(query, gallery)
    return {k: float((rank < k).float().mean()) for k in ks}


def mean_rank(query: torch.Tensor, gallery: torch.Tensor) -> float:
    """Mean 1-based rank of the paired gallery items; ``(N + 1) / 2`` by chance. Steadier than R@k on small sets."""
    return float(paired_ranks(query, gallery).float().mean()) + 1.0


def retrieval_metrics(image_emb: torch.Tensor, text_emb: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """R@k in both directions: ``i2t_R{k}`` (image queries, text gallery) and ``t2i_R{k}`` (MLflow-safe names)."""
    out = {f"i2t_R{k}": v for k, v in recall_at_k(image_emb, text_emb, ks).items()}
    out.update({f"t2i_R{k}": v for k, v in recall_at_k(text_emb, image_emb, ks).items()})
    out["mean_R"] = float(np.mean(list(out.values())))
    return out


def precision_per_query(query_labels: np.ndarray, gallery_labels: np.ndarray, sims: np.ndarray, k: int) -> np.ndarray:
    """Per query: the share of its top-``k`` gallery items (ties in gallery order) sharing the query's class."""
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return (gallery_labels[top] == query_labels[:, None]).mean(axis=1)


def precision_at_k(query_labels: np.ndarray, gallery_labels: np.ndarray, sims: np.ndarray, k: int) -> float:
    """Class-level Precision@K: the mean of :func:`precision_per_query`."""
    return float(precision_per_query(query_labels, gallery_labels, sims, k).mean())
