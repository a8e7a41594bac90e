"""Cross-modal retrieval metrics on L2-normalised embeddings."""

from __future__ import annotations

import numpy as np
import torch


def recall_at_k(query: torch.Tensor, gallery: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[int, float]:
    """Fraction of queries whose paired gallery item (same row index) ranks in the top k by cosine similarity.

    Ties are broken against the query: a paired item only counts as rank r if fewer than r items score
    strictly higher.
    """
    if query.shape != gallery.shape:
        raise ValueError(f"query {tuple(query.shape)} and gallery {tuple(gallery.shape)} must be paired row by row")
    sims = query.float() @ gallery.float().T
    positives = sims.diagonal().unsqueeze(1)
    rank = (sims > positives).sum(dim=1)  # 0 = best
    return {k: float((rank < k).float().mean()) for k in ks}


def retrieval_metrics(image_emb: torch.Tensor, text_emb: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """R@k in both directions: ``i2t_R{k}`` (image queries, text gallery) and ``t2i_R{k}`` (MLflow-safe names)."""
    out = {f"i2t_R{k}": v for k, v in recall_at_k(image_emb, text_emb, ks).items()}
    out.update({f"t2i_R{k}": v for k, v in recall_at_k(text_emb, image_emb, ks).items()})
    out["mean_R"] = float(np.mean(list(out.values())))
    return out


def precision_at_k(query_labels: np.ndarray, gallery_labels: np.ndarray, sims: np.ndarray, k: int) -> float:
    """Class-level Precision@K: mean fraction of the top-k gallery items sharing the query's class."""
    top = np.argsort(-sims, axis=1)[:, :k]
    hits = gallery_labels[top] == query_labels[:, None]
    return float(hits.mean())
