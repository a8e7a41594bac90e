"""ConVIRT's image augmentations as seeded MONAI transforms, for single images and whole volumes.

ConVIRT (Zhang et al., 2020) draws, per image: a random resized crop covering 60-100 % of the area, a
horizontal flip (p = 0.5), an affine transform (rotation within +-20 degrees, translation up to 10 % of the
size, scaling 0.95-1.05), brightness and contrast factors in [0.6, 1.4], and a Gaussian blur with sigma in
[0.1, 3.0]. :class:`AugmentStrength` holds those numbers; every one can be changed.

Inputs are channel-first tensors or arrays: an image ``(1, H, W)`` or a volume as a slice stack
``(S, 1, H, W)``. A volume receives one draw of the random parameters for all its slices, so its anatomy
stays aligned from slice to slice. "Horizontal" means the last axis (columns). Seed with
``set_random_state(seed)`` (e.g. the per-item seed of :mod:`medvl.train.sampling`).

The work is done by :func:`draw_batch` (a whole batch's draws from the items' seeds, vectorised on the host)
and :func:`augment_batch` (the batch in one ``grid_sample`` on any device); the MONAI transforms are per-item
wrappers around them, and the trainer calls them directly on GPU batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import Randomizable, Transform
from monai.utils import convert_to_tensor


@dataclass(frozen=True)
class AugmentStrength:
    """Ranges and probabilities of the ConVIRT augmentations (defaults are the paper's)."""

    crop_scale: tuple[float, float] = (0.6, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    affine_prob: float = 1.0
    rotate_degrees: float = 20.0
    translate_fraction: float = 0.1
    scale_delta: float = 0.05
    brightness: float = 0.4
    contrast: float = 0.4
    jitter_prob: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 3.0)
    blur_prob: float = 1.0

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        for name in ("flip_prob", "affine_prob", "jitter_prob", "blur_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("rotate_degrees", "translate_fraction", "scale_delta", "brightness", "contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must satisfy 0 < low <= high, got {self.blur_sigma}")


GOLDEN = np.uint64(0x9E3779B97F4A7C15)
CROP_TRIES = 10
STREAM_AUGMENT, STREAM_TEXT, STREAM_POLARITY, STREAM_SLICES = 0, 1, 2, 3


def seed_uniforms(seeds: Sequence[int] | np.ndarray, count: int, stream: int = STREAM_AUGMENT) -> np.ndarray:
    """``(B, count)`` uniform numbers in ``[0, 1)`` that depend only on each item's seed (and ``stream``).

    A counter-based generator (SplitMix64 of ``seed``, ``stream`` and the draw number), vectorised over the
    batch: a whole batch's draws cost a few NumPy operations, and resuming or re-sharding sees the same numbers.
    """
    x = np.asarray(seeds, dtype=np.uint64).reshape(-1, 1) ^ np.uint64((stream * 0xD1B54A32D192ED03) % 2**64)
    z = x + GOLDEN * np.arange(1, count + 1, dtype=np.uint64)[None]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def crop_boxes(strength: AugmentStrength, u: np.ndarray, height: int, width: int) -> np.ndarray:
    """torchvision-style random resized crop boxes ``(B, 4)`` = top, left, height, width in pixels.

    Each item tries :data:`CROP_TRIES` (area fraction from ``crop_scale``, log-uniform aspect from ``crop_ratio``)
    and keeps the first that fits; when none fits, the largest centred crop with the ratio clamped. ``u`` holds
    ``4 * CROP_TRIES`` uniforms per item.
    """
    b, t = u.shape[0], CROP_TRIES
    lo, hi = strength.crop_scale
    area = height * width * (lo + (hi - lo) * u[:, :t])
    log_lo, log_hi = np.log(strength.crop_ratio[0]), np.log(strength.crop_ratio[1])
    aspect = np.exp(log_lo + (log_hi - log_lo) * u[:, t : 2 * t])
    w, h = np.round(np.sqrt(area * aspect)).astype(np.int64), np.round(np.sqrt(area / aspect)).astype(np.int64)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.argmax(axis=1)
    rows = np.arange(b)
    h, w = h[rows, first], w[rows, first]
    top = np.floor(u[rows, 2 * t + first] * (height - h + 1)).astype(np.int64)
    left = np.floor(u[rows, 3 * t + first] * (width - w + 1)).astype(np.int64)
    aspect = min(max(width / height, strength.crop_ratio[0]), strength.crop_ratio[1])
    fw, fh = (width, round(width / aspect)) if width / height < aspect else (round(height * aspect), height)
    fw, fh = min(fw, width), min(fh, height)
    fallback = ~fits.any(axis=1)
    box = np.stack([top, left, h, w], axis=1)
    box[fallback] = [(height - fh) // 2, (width - fw) // 2, fh, fw]
    return box


@dataclass(frozen=True)
class AugmentDraws:
    """A batch's draws as tensors: crop (fractions top, left, height, width), flip, affine, intensity, blur."""

    crop: torch.Tensor  # (B, 4)
    flip: torch.Tensor  # (B,) bool
    angle: torch.Tensor  # (B,) radians
    shift: torch.Tensor  # (B, 2) x, y in output pixels
    scale: torch.Tensor  # (B, 2)
    brightness: torch.Tensor  # (B,) intensity x (1 + brightness)
    contrast: torch.Tensor  # (B,) (x - mean) x (1 + contrast) + mean
    blur_sigma: torch.Tensor  # (B,) 0: no blur
    blur_radius: int = 0  # kernel radius for the largest sigma allowed (known on the host: no device sync)

    def to(self, device: torch.device | str) -> AugmentDraws:
        """The same draws on ``device``."""
        moved = {k: v.to(device, non_blocking=True) for k, v in self.__dict__.items() if isinstance(v, torch.Tensor)}
        return AugmentDraws(**moved, blur_radius=self.blur_radius)


def draw_batch(strength: AugmentStrength, seeds: Sequence[int] | np.ndarray, height: int, width: int, size: int) -> AugmentDraws:
    """Each item's draw from its seed (:func:`seed_uniforms`), for ``height x width`` inputs resized to ``size``."""
    s = strength
    u = seed_uniforms(seeds, 4 * CROP_TRIES + 13)
    box = crop_boxes(s, u[:, : 4 * CROP_TRIES], height, width).astype(np.float64)
    v = u[:, 4 * CROP_TRIES :]
    affine = v[:, 1] < s.affine_prob
    limit = s.translate_fraction * size
    angle = np.where(affine, (2 * v[:, 2] - 1) * math.radians(s.rotate_degrees), 0.0)
    shift = np.where(affine[:, None], (2 * v[:, 3:5] - 1) * limit, 0.0)
    scale = np.where(affine[:, None], 1 + (2 * v[:, 5:7] - 1) * s.scale_delta, 1.0)
    brightness = np.where(v[:, 7] < s.jitter_prob, (2 * v[:, 8] - 1) * s.brightness, 0.0)
    contrast = np.where(v[:, 9] < s.jitter_prob, (2 * v[:, 10] - 1) * s.contrast, 0.0)
    blur = np.where(v[:, 11] < s.blur_prob, s.blur_sigma[0] + (s.blur_sigma[1] - s.blur_sigma[0]) * v[:, 12], 0.0)
    crop = box / np.array([height, width, height, width], dtype=np.float64)

    def f32(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    radius = int(math.ceil(4 * s.blur_sigma[1])) if s.blur_prob > 0 else 0  # the same kernel whatever the batch
    return AugmentDraws(f32(crop), torch.from_numpy(v[:, 0] < s.flip_prob), f32(angle), f32(shift), f32(scale),
                        f32(brightness), f32(contrast), f32(blur), radius)  # fmt: skip


def _sampling_grid(draws: AugmentDraws, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Source coordinates ``(B, size, size, 2)`` (normalised, ``align_corners=False``) and a validity mask.

    The output is the crop (flipped) seen through the affine transform; points the affine moves outside the
    crop are invalid (zero padding, as an affine applied after the crop would give).
    """
    d = draws.to(device)
    base = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(base, base, indexing="ij")
    shift = d.shift * (2 / size)
    cos, sin = torch.cos(d.angle)[:, None, None], torch.sin(d.angle)[:, None, None]
    px, py = xx[None] - shift[:, None, None, 0], yy[None] - shift[:, None, None, 1]
    u = (cos * px + sin * py) / d.scale[:, None, None, 0]  # rotate back, then undo the scale
    v = (-sin * px + cos * py) / d.scale[:, None, None, 1]
    valid = (u.abs() <= 1) & (v.abs() <= 1)
    crop = d.crop  # top, left, h, w as fractions
    flip = torch.where(d.flip, -1.0, 1.0)[:, None, None]
    cx = (crop[:, 1] + crop[:, 3] / 2) * 2 - 1
    cy = (crop[:, 0] + crop[:, 2] / 2) * 2 - 1
    x = cx[:, None, None] + flip * u * crop[:, 3, None, None]
    y = cy[:, None, None] + v * crop[:, 2, None, None]
    return torch.stack([x, y], dim=-1), valid


def _gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with one sigma per item (0: unchanged), reflect padding."""
    b, c, h, w = images.shape
    radius = min(radius, h - 1, w - 1)
    if radius <= 0:
        return images
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    safe = sigmas.clamp(min=1e-6)[:, None].to(images.dtype)
    kernels = torch.exp(-0.5 * (offsets[None] / safe) ** 2)
    kernels = torch.where(sigmas[:, None] > 0, kernels, (offsets[None] == 0).to(images.dtype))
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, K)
    flat = images.reshape(1, b * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernels[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernels[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, h, w)


def augment_batch(
    images: torch.Tensor, draws: AugmentDraws, size: int, channel_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply each item's draw to a batch ``(B, C, H, W)`` (C = 1 for images, the slices of a volume), on
    the batch's device, giving float ``(B, C, size, size)``. One ``grid_sample`` does crop, flip and affine.

    ``channel_mask`` ``(B, C)`` marks real slices of padded volumes: contrast uses their mean only and padded
    slices come out zero.
    """
    if images.ndim != 4 or draws.crop.shape[0] != images.shape[0]:
        raise ValueError(f"augment_batch expects (B, C, H, W) images and B draws, got {tuple(images.shape)} and {draws.crop.shape[0]}")
    images = images.float()
    d = draws.to(images.device)
    grid, valid = _sampling_grid(d, size, images.device)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out * valid[:, None].to(out.dtype) * (1 + d.brightness)[:, None, None, None]
    if channel_mask is None:
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
    else:
        real = channel_mask.to(out.dtype)[:, :, None, None]
        mean = (out * real).sum(dim=(1, 2, 3), keepdim=True) / (real.sum(dim=1, keepdim=True) * size * size).clamp(min=1)
    out = (out - mean) * (1 + d.contrast)[:, None, None, None] + mean
    out = _gaussian_blur(out, d.blur_sigma, d.blur_radius)
    return out if channel_mask is None else out * real


class ConvirtAugment(Randomizable, Transform):
    """The ConVIRT augmentation chain for an image ``(1, H, W)`` or a slice stack ``(S, 1, H, W)``.

    A MONAI transform over :func:`draw_batch` + :func:`augment_batch` (the same code the trainer runs on
    whole batches on the GPU); all slices of a volume share one draw.

    Args:
        size: output height and width.
        strength: ranges and probabilities (:class:`AugmentStrength`).

    Returns tensors of shape ``(1, size, size)`` or ``(S, 1, size, size)``.
    """

    def __init__(self, size: int, strength: AugmentStrength = AugmentStrength()) -> None:
        self.size, self.strength = size, strength

    def randomize(self, data: Any = None) -> None:
        """Draws happen in :meth:`draw`."""

    def draw(self, height: int, width: int) -> AugmentDraws:
        """The next draw for an ``height x width`` input (one item seed from the transform's random state)."""
        return draw_batch(self.strength, [int(self.R.randint(0, 2**63 - 1, dtype=np.int64))], height, width, self.size)

    def __call__(self, img: Any) -> torch.Tensor:
        img = convert_to_tensor(img, dtype=torch.float32, track_meta=False)
        if img.ndim == 3 and img.shape[0] == 1:
            return augment_batch(img[None], self.draw(*img.shape[1:]), self.size)[0]
        if img.ndim == 4 and img.shape[1] == 1:
            return augment_batch(img[:, 0][None], self.draw(*img.shape[2:]), self.size)[0].unsqueeze(1)
        raise ValueError(f"ConvirtAugment expects an image (1, H, W) or slices (S, 1, H, W), got shape {tuple(img.shape)}")
