"""RadCLIP-style slice pooling: one volume embedding from per-slice embeddings of the shared 2D encoder.

The adapter sees the slice embeddings ``x_s`` (joint space, not yet normalised) plus an encoding of each slice's
physical position ``z_s`` in millimetres, measured from the centre of the volume's extent (so a volume shifted
along the table gets the same encoding, and slice thickness is respected, unlike an index). Transformer
layers (multi-head self-attention with a key-padding mask) let slices see each other; a pooling step turns
them into per-slice weights ``w_s`` (``w_s >= 0``, summing to 1 over real slices, 0 on padding) and the
volume embedding is exactly

    e = sum_s w_s * v_s,   v_s = x_s (values "slices")  or  the contextual slice features (values "contextual").

Pooling modes: ``mean`` (uniform weights), ``cls`` (a learned token that takes part in self-attention, whose
output then scores the slices) and ``query`` (``num_queries`` learned queries each scoring the contextual
slices; ``w_s`` is the mean of their softmax weights, so each query can look at its own part of the body, the
lung bases for an effusion, the kidneys for a cyst, and the embedding stays one weighted sum). Because the
embedding is a weighted sum, ``w_s`` is the exact share of slice ``s`` in it (the app shows it as slice
relevance). With values "slices" a 1-slice volume gets ``e = x_1``: ``encode_volume`` and ``encode_image``
agree on single images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from medvl.config import Number, check_range, field_error
from medvl.models.config import ModelConfigError, Section, resolve_section


@dataclass(frozen=True)
class SlicePoolingConfig(Section):
    """The ``slice_pooling`` section: the pooling ``mode`` (and ``num_queries`` for ``query``), what is pooled
    (``values``), the attention layers, the z encoding's wavelengths, and how stage ``2d`` pools slices
    (``first_stage``)."""

    mode: Literal["mean", "cls", "query"] = "query"
    num_queries: int = 1
    values: Literal["slices", "contextual"] = "slices"
    num_layers: int = 2
    num_heads: int = 8
    ff_dim: int | None = None
    dropout: Number = 0.0
    min_wavelength_mm: Number = 2.0
    max_wavelength_mm: Number = 2000.0
    chunk_size: int = 16
    checkpoint: bool = True
    first_stage: Literal["max", "mean"] = "max"

    def __post_init__(self) -> None:
        check_range("num_layers", self.num_layers, 0)
        check_range("num_heads", self.num_heads, 1)
        check_range("num_queries", self.num_queries, 1)
        if self.num_queries > 1 and self.mode != "query":
            raise field_error("num_queries", f"only mode 'query' has queries to multiply (mode is '{self.mode}')")
        check_range("chunk_size", self.chunk_size, 1)
        check_range("dropout", self.dropout, 0.0)
        check_range("min_wavelength_mm", self.min_wavelength_mm, 1e-3)
        check_range("max_wavelength_mm", self.max_wavelength_mm, self.min_wavelength_mm)
        if self.ff_dim is not None:
            check_range("ff_dim", self.ff_dim, 1)
        if self.mode == "mean" and self.values == "slices" and self.num_layers:
            raise field_error(
                "num_layers", "mean pooling of the raw slice embeddings uses no attention layers: set 0, or values 'contextual'"
            )
        if self.mode == "cls" and self.num_layers == 0:
            raise field_error("num_layers", "the cls token needs at least one attention layer to see the slices")


def resolve_slice_pooling_config(given: Any, where: str) -> dict[str, Any] | None:
    """The ``slice_pooling`` section checked and completed, or None when the model has no volume adapter."""
    return None if given is None else resolve_section(SlicePoolingConfig, given, where)


class ZPositionEncoding(nn.Module):
    """Sinusoidal encoding of slice positions in mm relative to the volume's centre, then a learned linear map.

    Wavelengths run geometrically from ``min_wavelength_mm`` to ``max_wavelength_mm``; the centre is the
    midpoint of the real slices' extent, so the encoding is invariant to a shift of the whole volume.
    """

    def __init__(self, dim: int, min_wavelength_mm: float = 2.0, max_wavelength_mm: float = 2000.0) -> None:
        super().__init__()
        n_freq = (dim + 1) // 2
        steps = torch.arange(n_freq, dtype=torch.float64) / max(n_freq - 1, 1)
        wavelengths = min_wavelength_mm * (max_wavelength_mm / min_wavelength_mm) ** steps
        self.register_buffer("angular", (2 * math.pi / wavelengths).float(), persistent=False)
        self.dim = dim
        self.proj = nn.Linear(dim, dim)

    @staticmethod
    def relative_z(z_mm: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """``z`` minus the midpoint of the real slices' extent (0 on padded slices)."""
        inf = torch.finfo(z_mm.dtype).max
        low = z_mm.masked_fill(pad_mask, inf).amin(dim=1, keepdim=True)
        high = z_mm.masked_fill(pad_mask, -inf).amax(dim=1, keepdim=True)
        return (z_mm - (low + high) / 2).masked_fill(pad_mask, 0.0)

    def forward(self, z_mm: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """``(B, S)`` positions in mm -> ``(B, S, dim)`` encodings."""
        phase = self.relative_z(z_mm.float(), pad_mask).unsqueeze(-1) * self.angular
        features = torch.cat([phase.sin(), phase.cos()], dim=-1)[..., : self.dim]
        return self.proj(features)


def first_stage_pool(per_slice: torch.Tensor, pad_mask: torch.Tensor, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    """How stage ``2d`` (before the adapter is trained) pools ``(B, S, D)`` slice embeddings: ``(B, D)`` and
    ``(B, S)`` weights summing to 1 over real slices.

    ``max`` (multiple-instance): each dimension takes its largest value over the real slices, so a finding seen
    on a few slices reaches the volume embedding undiluted; a slice's weight is the share of dimensions it
    wins. ``mean``: the average, uniform weights (a lesion on 2 of 32 slices contributes 1/16).
    """
    real = ~pad_mask
    if how == "mean":
        weights = real.to(per_slice.dtype) / real.sum(dim=1, keepdim=True).to(per_slice.dtype)
        return torch.einsum("bs,bsd->bd", weights, per_slice), weights
    pooled, winner = per_slice.masked_fill(pad_mask.unsqueeze(-1), float("-inf")).max(dim=1)
    weights = torch.nn.functional.one_hot(winner, per_slice.shape[1]).to(per_slice.dtype).mean(dim=1)
    return pooled, weights


def check_volume_inputs(shape_bs: tuple[int, int], z_mm: torch.Tensor, pad_mask: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``z_mm``/``pad_mask`` are ``(B, S)``, every volume has a real slice, z finite."""
    if tuple(z_mm.shape) != shape_bs:
        raise ValueError(f"z_mm: expected shape {shape_bs} (one position in mm per slice), got {tuple(z_mm.shape)}")
    if tuple(pad_mask.shape) != shape_bs or pad_mask.dtype != torch.bool:
        raise ValueError(f"pad_mask: expected a bool tensor of shape {shape_bs} (True = padding), got {pad_mask.dtype} {tuple(pad_mask.shape)}")
    empty = pad_mask.all(dim=1)
    if bool(empty.any()):
        raise ValueError(f"pad_mask: volume {int(empty.nonzero()[0])} has no real slice")
    if not bool(torch.isfinite(z_mm[~pad_mask]).all()):
        raise ValueError("z_mm: positions of real slices must be finite")


class SlicePooling(nn.Module):
    """Attention pooling of slice embeddings into one volume embedding with per-slice weights.

    Args:
        dim: embedding size of the slices (the joint space).
        mode: ``mean`` | ``cls`` | ``query``.
        num_queries: learned queries of mode ``query``; the slice weights are the mean of theirs.
        values: ``slices`` (pool the input embeddings) | ``contextual`` (pool the transformer outputs).
        num_layers, num_heads, ff_dim, dropout: the self-attention stack (pre-norm, GELU).
        min_wavelength_mm, max_wavelength_mm: range of the z encoding.
    """

    def __init__(
        self,
        dim: int,
        mode: str = "query",
        num_queries: int = 1,
        values: str = "slices",
        num_layers: int = 2,
        num_heads: int = 8,
        ff_dim: int | None = None,
        dropout: float = 0.0,
        min_wavelength_mm: float = 2.0,
        max_wavelength_mm: float = 2000.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ModelConfigError("slice_pooling.num_heads", f"{num_heads} does not divide the embedding size {dim}")
        self.mode, self.values = mode, values
        self.needs_context = mode != "mean" or values == "contextual"
        if self.needs_context:
            self.position = ZPositionEncoding(dim, min_wavelength_mm, max_wavelength_mm)
            layer = nn.TransformerEncoderLayer(
                dim, num_heads, ff_dim or 2 * dim, dropout, activation="gelu", batch_first=True, norm_first=True
            )
            self.layers = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        if mode == "cls":
            self.cls_token = nn.Parameter(torch.randn(dim) * 0.02)
        if mode == "query":  # one query keeps the (dim,) shape of the models saved before num_queries
            self.query = nn.Parameter(torch.randn(dim) * 0.02 if num_queries == 1 else torch.randn(num_queries, dim) * 0.02)
        if mode != "mean":
            self.score_query = nn.Linear(dim, dim)
            self.score_key = nn.Linear(dim, dim)

    def forward(
        self, slices: torch.Tensor, z_mm: torch.Tensor, pad_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pool ``(B, S, D)`` slice embeddings.

        Args:
            slices: slice embeddings; values on padded slices are ignored.
            z_mm: ``(B, S)`` slice positions along the volume axis in mm.
            pad_mask: ``(B, S)`` bool, True where the slice is padding.

        Returns:
            ``(embedding (B, D), weights (B, S), values (B, S, D))`` with ``embedding = sum_s weights * values``.
        """
        b, s, _ = slices.shape
        check_volume_inputs((b, s), z_mm, pad_mask)
        slices = slices.masked_fill(pad_mask.unsqueeze(-1), 0.0)
        context = query = None
        if self.needs_context:
            tokens, mask = slices + self.position(z_mm, pad_mask), pad_mask
            if self.mode == "cls":
                tokens = torch.cat([self.cls_token.expand(b, 1, -1), tokens], dim=1)
                mask = torch.cat([pad_mask.new_zeros(b, 1), pad_mask], dim=1)
            hidden = self.layers(tokens, src_key_padding_mask=mask)
            if self.mode == "cls":
                query, hidden = hidden[:, 0], hidden[:, 1:]
            context = hidden.masked_fill(pad_mask.unsqueeze(-1), 0.0)
        if self.mode == "mean":
            weights = (~pad_mask).to(slices.dtype)
            weights = weights / weights.sum(dim=1, keepdim=True)
        else:
            queries = self.query.reshape(1, -1, slices.shape[-1]).expand(b, -1, -1) if self.mode == "query" else query[:, None]
            scores = torch.einsum("bkd,bsd->bks", self.score_query(queries), self.score_key(context)) / math.sqrt(slices.shape[-1])
            weights = scores.masked_fill(pad_mask[:, None], float("-inf")).softmax(dim=2).mean(dim=1)
        values = slices if self.values == "slices" else context
        return torch.einsum("bs,bsd->bd", weights, values), weights, values
