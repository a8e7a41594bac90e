"""The model-adapter interface.

An adapter wraps a model so every task can call it the same way. Images are ``(B, 1, H, W)`` float tensors in
``[0, 1]``; embeddings are L2-normalised ``(B, D)``. Adapters whose model pools volumes implement
``encode_volume``; others get slice-mean pooling (:func:`encode_volumes`). References are resolved by scheme
(``random:ARCH``, ``hf:PATH``; anything else is a medvl model reference) with the factories of
:data:`benchx.models.FACTORIES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    """What results record about a model: the reference, registry name/version, content fingerprint."""

    ref: str
    name: str
    version: str
    fingerprint: str


@runtime_checkable
class ModelAdapter(Protocol):
    """A model as benchx uses it."""

    info: ModelInfo
    has_text: bool
    logit_scale: float
    crop_body: bool
    """Whether the model was trained on CT cropped to the body (medvl ``data.crop_body``): benchx then prepares
    a dataset's CT the same way."""

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` in ``[0, 1]`` -> ``(B, D)`` normalised embeddings (differentiable)."""

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> ``(N, D)`` normalised embeddings in the image space (only when ``has_text``)."""

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Multi-scale feature maps ``(B, C_i, h_i, w_i)``, finest first."""

    def trainable(self) -> nn.Module:
        """The module whose parameters full fine-tuning updates."""


@runtime_checkable
class VolumeAdapter(ModelAdapter, Protocol):
    """An adapter whose model encodes volumes itself."""

    def encode_volume(self, slices: torch.Tensor, z_mm: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """``(B, S, 1, H, W)`` slices, ``(B, S)`` positions and padding mask -> ``(B, D)`` embeddings."""


def encode_volumes(adapter: ModelAdapter, slices: torch.Tensor, z_mm: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """Volume embeddings: the adapter's own ``encode_volume``, else the normalised mean of its slice embeddings."""
    if isinstance(adapter, VolumeAdapter):
        return adapter.encode_volume(slices, z_mm, pad_mask)
    return slice_mean(adapter.encode_image, slices, pad_mask)


def slice_mean(encode_image: Callable[[torch.Tensor], torch.Tensor], slices: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """The normalised mean of the real slices' embeddings ``(B, D)``."""
    real = ~pad_mask
    per_slice = encode_image(slices[real])
    summed = per_slice.new_zeros(slices.shape[0], per_slice.shape[1]).index_add_(0, real.nonzero()[:, 0], per_slice)
    return F.normalize(summed, dim=-1)


Factory = Callable[[str, "str | None"], ModelAdapter]
DEFAULT_SCHEME = "medvl"
