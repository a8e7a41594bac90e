"""ConVIRT's image augmentations as seeded MONAI transforms, for single images and whole volumes.

ConVIRT (Zhang et al., 2020) draws, per image: a random resized crop covering 60-100 % of the area, a
horizontal flip (p = 0.5), an affine transform (rotation within +-20 degrees, translation up to 10 % of the
size, scaling 0.95-1.05), brightness and contrast factors in [0.6, 1.4], and a Gaussian blur with sigma in
[0.1, 3.0]. :class:`AugmentStrength` holds those numbers; every one can be changed.

Inputs are channel-first tensors or arrays: an image ``(1, H, W)`` or a volume as a slice stack
``(S, 1, H, W)``. A volume receives one draw of the random parameters for all its slices, so its anatomy
stays aligned from slice to slice. "Horizontal" means the last axis (columns). Seed with
``set_random_state(seed)`` (e.g. the per-item seed of :mod:`medvl.train.sampling`).

The work is done by :func:`draw_params` (one item's random draw) and :func:`augment_batch` (a whole batch in
one ``grid_sample`` on any device); the MONAI transforms are per-item wrappers around them, and the trainer
calls them directly on GPU batches.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import (
    MapTransform,
    Randomizable,
    Transform,
)
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


class RandResizedCrop(Randomizable, Transform):
    """torchvision-style random resized crop of a channel-first 2D image ``(C, H, W)``.

    The crop covers a fraction of the area drawn from ``scale`` with an aspect ratio (width / height) drawn
    log-uniformly from ``ratio``, and is resized to ``size x size`` (bilinear, antialiased). After 10 failed
    draws it falls back to the largest centred crop with the ratio clamped to ``ratio``.
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.6, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        self.size, self.scale, self.ratio = size, scale, ratio
        self.box = (0, 0, 0, 0)

    def randomize(self, data: Sequence[int]) -> None:
        """Draw the crop box ``(top, left, height, width)`` for an image of shape ``(H, W)``."""
        height, width = data
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * self.R.uniform(*self.scale)
            aspect = math.exp(self.R.uniform(*log_ratio))
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                self.box = (int(self.R.randint(0, height - h + 1)), int(self.R.randint(0, width - w + 1)), h, w)
                return
        aspect = min(max(width / height, self.ratio[0]), self.ratio[1])
        w, h = (width, round(width / aspect)) if width / height < aspect else (round(height * aspect), height)
        w, h = min(w, width), min(h, height)
        self.box = ((height - h) // 2, (width - w) // 2, h, w)

    def __call__(self, img: Any) -> torch.Tensor:
        """Crop and resize ``img`` ``(C, H, W)`` to ``(C, size, size)``."""
        img = convert_to_tensor(img, dtype=torch.float32)
        if img.ndim != 3:
            raise ValueError(f"RandResizedCrop expects a (C, H, W) image, got shape {tuple(img.shape)}")
        self.randomize(img.shape[1:])
        top, left, h, w = self.box
        crop = img[:, top : top + h, left : left + w].unsqueeze(0)
        return F.interpolate(crop, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)[0]


@dataclass(frozen=True)
class AugmentParams:
    """One item's draw: crop box (fractions of height/width), flip, affine, intensity and blur parameters."""

    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # top, left, height, width (fractions)
    flip: bool = False
    angle: float = 0.0  # radians
    shift: tuple[float, float] = (0.0, 0.0)  # x, y in output pixels
    scale: tuple[float, float] = (1.0, 1.0)
    brightness: float = 0.0  # intensity x (1 + brightness)
    contrast: float = 0.0  # (x - mean) x (1 + contrast) + mean
    blur_sigma: float = 0.0  # 0: no blur


def draw_params(strength: AugmentStrength, rng: np.random.RandomState, height: int, width: int, size: int) -> AugmentParams:
    """Draw one item's augmentation for an ``height x width`` input resized to ``size``."""
    s = strength
    crop = RandResizedCrop(size, s.crop_scale, s.crop_ratio)
    crop.set_random_state(state=rng)
    crop.randomize((height, width))
    top, left, h, w = crop.box
    flip = bool(rng.uniform() < s.flip_prob)
    angle, shift, scale = 0.0, (0.0, 0.0), (1.0, 1.0)
    if rng.uniform() < s.affine_prob:
        angle = float(rng.uniform(-1, 1) * math.radians(s.rotate_degrees))
        limit = s.translate_fraction * size
        shift = (float(rng.uniform(-limit, limit)), float(rng.uniform(-limit, limit)))
        scale = (float(1 + rng.uniform(-s.scale_delta, s.scale_delta)), float(1 + rng.uniform(-s.scale_delta, s.scale_delta)))
    brightness = float(rng.uniform(-s.brightness, s.brightness)) if rng.uniform() < s.jitter_prob else 0.0
    contrast = float(rng.uniform(-s.contrast, s.contrast)) if rng.uniform() < s.jitter_prob else 0.0
    blur = float(rng.uniform(*s.blur_sigma)) if rng.uniform() < s.blur_prob else 0.0
    return AugmentParams((top / height, left / width, h / height, w / width), flip, angle, shift, scale, brightness, contrast, blur)


def _sampling_grid(params: Sequence[AugmentParams], size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Source coordinates ``(B, size, size, 2)`` (normalised, ``align_corners=False``) and a validity mask.

    The output is the crop (flipped) seen through the affine transform; points the affine moves outside the
    crop are invalid (zero padding, as an affine applied after the crop would give).
    """
    base = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1
    yy, xx = torch.meshgrid(base, base, indexing="ij")
    out = torch.stack([xx, yy], dim=-1).expand(len(params), size, size, 2)
    angle = torch.tensor([p.angle for p in params], device=device)
    shift = torch.tensor([p.shift for p in params], device=device) * (2 / size)
    scale = torch.tensor([p.scale for p in params], device=device)
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    px, py = out[..., 0] - shift[:, None, None, 0], out[..., 1] - shift[:, None, None, 1]
    u = (cos * px + sin * py) / scale[:, None, None, 0]  # rotate back, then undo the scale
    v = (-sin * px + cos * py) / scale[:, None, None, 1]
    valid = (u.abs() <= 1) & (v.abs() <= 1)
    crop = torch.tensor([p.crop for p in params], device=device)  # top, left, h, w as fractions
    flip = torch.tensor([-1.0 if p.flip else 1.0 for p in params], device=device)[:, None, None]
    cx = (crop[:, 1] + crop[:, 3] / 2) * 2 - 1
    cy = (crop[:, 0] + crop[:, 2] / 2) * 2 - 1
    x = cx[:, None, None] + flip * u * crop[:, 3, None, None]
    y = cy[:, None, None] + v * crop[:, 2, None, None]
    return torch.stack([x, y], dim=-1), valid


def _gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with one sigma per item (0: unchanged), reflect padding."""
    if not bool((sigmas > 0).any()):
        return images
    b, c, h, w = images.shape
    radius = int(math.ceil(4 * float(sigmas.max())))
    radius = min(radius, h - 1, w - 1)
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    safe = sigmas.clamp(min=1e-6)[:, None]
    kernels = torch.exp(-0.5 * (offsets[None] / safe) ** 2)
    kernels = torch.where(sigmas[:, None] > 0, kernels, (offsets[None] == 0).to(images.dtype))
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, K)
    flat = images.reshape(1, b * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernels[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernels[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, h, w)


def augment_batch(images: torch.Tensor, params: Sequence[AugmentParams], size: int) -> torch.Tensor:
    """Apply each item's draw to a batch ``(B, C, H, W)`` (C = 1 for images, the slices of a volume), on
    the batch's device, giving ``(B, C, size, size)``. One ``grid_sample`` does crop, flip and affine."""
    if images.ndim != 4 or len(params) != images.shape[0]:
        raise ValueError(f"augment_batch expects (B, C, H, W) images and B draws, got {tuple(images.shape)} and {len(params)}")
    images = images.float()
    grid, valid = _sampling_grid(params, size, images.device)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out * valid[:, None].to(out.dtype)
    brightness = torch.tensor([1 + p.brightness for p in params], device=out.device)[:, None, None, None]
    out = out * brightness
    contrast = torch.tensor([1 + p.contrast for p in params], device=out.device)[:, None, None, None]
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean
    return _gaussian_blur(out, torch.tensor([p.blur_sigma for p in params], device=out.device))


class ConvirtAugment(Randomizable, Transform):
    """The ConVIRT augmentation chain for an image ``(1, H, W)`` or a slice stack ``(S, 1, H, W)``.

    A MONAI transform over :func:`draw_params` + :func:`augment_batch` (the same code the trainer runs on
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

    def draw(self, height: int, width: int) -> AugmentParams:
        """The next draw for an ``height x width`` input."""
        return draw_params(self.strength, self.R, height, width, self.size)

    def __call__(self, img: Any) -> torch.Tensor:
        img = convert_to_tensor(img, dtype=torch.float32, track_meta=False)
        if img.ndim == 3 and img.shape[0] == 1:
            return augment_batch(img[None], [self.draw(*img.shape[1:])], self.size)[0]
        if img.ndim == 4 and img.shape[1] == 1:
            return augment_batch(img[:, 0][None], [self.draw(*img.shape[2:])], self.size)[0].unsqueeze(1)
        raise ValueError(f"ConvirtAugment expects an image (1, H, W) or slices (S, 1, H, W), got shape {tuple(img.shape)}")


class ConvirtAugmentd(Randomizable, MapTransform):
    """Dictionary twin of :class:`ConvirtAugment`: the same random draw for every key of one sample."""

    def __init__(
        self, keys: Hashable | Sequence[Hashable], size: int, strength: AugmentStrength = AugmentStrength(), allow_missing_keys: bool = False
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.augment = ConvirtAugment(size, strength)
        self.sample_seed = 0

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> ConvirtAugmentd:
        """Seed the draws."""
        super().set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the seed shared by all keys of the next sample."""
        self.sample_seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        self.randomize()
        for key in self.key_iterator(out):
            out[key] = self.augment.set_random_state(self.sample_seed)(out[key])
        return out
