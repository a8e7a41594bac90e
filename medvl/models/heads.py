"""Projection heads into the joint image-text space."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """ConVIRT's non-linear projection ``Linear(in, hidden) -> ReLU -> Linear(hidden, out)``.

    Applies to the last axis, so it maps global features ``(B, C)`` and region features ``(B, N, C)`` alike.

    Args:
        in_dim: encoder feature size.
        out_dim: joint-space size (512 in ConVIRT).
        hidden_dim: width of the hidden layer; defaults to ``in_dim``.
    """

    def __init__(self, in_dim: int, out_dim: int = 512, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = hidden_dim or in_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Project ``(..., in_dim)`` features to ``(..., out_dim)`` (not normalised)."""
        return self.net(features)
