"""A native 3D image encoder: the baseline against RadCLIP-style slice pooling (same loss, data and trainer).

A model config with a ``volume_encoder`` section encodes volumes with a MONAI 3D ResNet instead of pooling
per-slice embeddings of the 2D encoder. Each volume's real slices, sorted by their position ``z_mm``, are
resampled to a fixed number of slices ``depth`` by linear interpolation along the slice axis (the first and
last real slices are kept; padding is never read), then the 3D network runs on the ``(B, 1, depth, H, W)``
stack. Slices are assumed evenly spaced: the interpolation is by slice index, not by millimetres.

The stem strides in-plane only (``(1, 2, 2)``), because CT slices are usually thicker than pixels are wide
and ``depth`` is smaller than the image size: the feature map then has ``depth / 16`` cells along the slice
axis and ``H / 32`` x ``W / 32`` in-plane (2 x 4 x 4 for 32 slices of 128 px), each a region for the
patch-concept loss, and the global feature pools them all (``global_pool``, as for 2D encoders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from medvl.config import Number, check_range
from medvl.models.config import Section, resolve_section
from medvl.models.image import GlobalPool, ImageEncoder, Norm, ResNetArch, replace_batch_norm, resnet_stages
from medvl.models.slice_pooling import check_volume_inputs


@dataclass(frozen=True)
class VolumeEncoderConfig(Section):
    """The ``volume_encoder`` section: the 3D ResNet, its norm (group by default: volumes come a few per batch,
    so batch statistics would be poor), the slices each volume is resampled to, and the global pooling."""

    arch: ResNetArch = "resnet18"
    widen_factor: Number = 1.0
    norm: Norm = "group"
    depth: int = 32
    global_pool: GlobalPool = "avg"

    def __post_init__(self) -> None:
        check_range("widen_factor", self.widen_factor, 0.125)
        check_range("depth", self.depth, 2)


def resolve_volume_encoder_config(given: Any, where: str) -> dict[str, Any] | None:
    """The ``volume_encoder`` section checked and completed, or None when the model has no 3D encoder."""
    return None if given is None else resolve_section(VolumeEncoderConfig, given, where)


def resample_depth(slices: torch.Tensor, z_mm: torch.Tensor, pad_mask: torch.Tensor, depth: int) -> torch.Tensor:
    """Each volume's real slices in ``z`` order, linearly resampled to ``depth`` slices.

    Args:
        slices: ``(B, S, H, W)``; padded slices may hold anything (they are never read).
        z_mm: ``(B, S)`` slice positions in mm (they only order the slices).
        pad_mask: ``(B, S)`` bool, True on padding.
        depth: slices per output volume.

    Returns:
        ``(B, depth, H, W)``: output slice ``k`` of a volume with ``n`` real slices lies at ``k (n - 1) / (depth - 1)``
        along its sorted real slices, interpolated between the two nearest (a 1-slice volume is repeated).
    """
    b, s = slices.shape[:2]
    check_volume_inputs((b, s), z_mm, pad_mask)
    order = z_mm.masked_fill(pad_mask, float("inf")).argsort(dim=1, stable=True)  # real slices first, by z
    last = (~pad_mask).sum(dim=1, keepdim=True) - 1
    position = torch.linspace(0, 1, depth, device=slices.device, dtype=torch.float64)[None] * last
    below = position.floor().long()
    above = torch.minimum(below + 1, last)
    weight = (position - below).to(slices.dtype)[:, :, None, None]
    rows = torch.arange(b, device=slices.device)[:, None]
    low, high = slices[rows, order.gather(1, below)], slices[rows, order.gather(1, above)]
    return torch.lerp(low, high, weight)


def check_volumes(volumes: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``volumes`` is a float ``(B, 1, D, H, W)`` batch."""
    if volumes.ndim != 5 or volumes.shape[1] != 1 or not volumes.is_floating_point():
        raise ValueError(f"volumes: expected a float (B, 1, D, H, W) single-channel batch, got {volumes.dtype} {tuple(volumes.shape)}")


class VolumeEncoder(ImageEncoder):
    """MONAI 3D ResNet-18/50 on ``(B, 1, D, H, W)`` volumes (no classifier); stem stride ``(1, 2, 2)``.

    The :class:`~medvl.models.image.ImageEncoder` interface with a depth axis: ``feature_map`` gives
    ``(B, C, d, h, w)`` and ``forward`` its global pool ``(B, C)``.

    Args:
        arch: ``resnet18`` | ``resnet50``.
        widen_factor: channel multiplier.
        norm: ``batch`` | ``group`` (``GroupNorm(8, C)``) | ``instance``.
        depth: slices per volume after :func:`resample_depth` (used by the model, kept here with the network).
    """

    def __init__(self, arch: str, widen_factor: float = 1.0, norm: str = "group", depth: int = 32) -> None:
        from monai.networks.nets import resnet18, resnet50

        super().__init__()
        factory = {"resnet18": resnet18, "resnet50": resnet50}[arch]
        self.net = factory(
            spatial_dims=3,
            n_input_channels=1,
            conv1_t_stride=(1, 2, 2),
            feed_forward=False,
            shortcut_type="B",
            bias_downsample=False,
            widen_factor=widen_factor,
        )
        if norm != "batch":
            replace_batch_norm(self.net, norm)
        self.depth = depth
        self.out_channels = self.net.in_planes

    def feature_pyramid(self, volumes: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps ``(B, C_k, d_k, h_k, w_k)`` after each ResNet stage, the last one being :meth:`feature_map`."""
        check_volumes(volumes)
        return resnet_stages(self.net, volumes)


def build_volume_encoder(cfg: dict[str, Any]) -> VolumeEncoder:
    """The encoder described by a resolved ``volume_encoder`` config section."""
    encoder = VolumeEncoder(cfg["arch"], cfg["widen_factor"], cfg["norm"], cfg["depth"])
    encoder.global_pool = cfg["global_pool"]
    return encoder
