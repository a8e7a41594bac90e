"""ConVIRT's image augmentations as seeded MONAI transforms, for single images and whole volumes.

ConVIRT (Zhang et al., 2020) draws, per image: a random resized crop covering 60-100 % of the area, a
horizontal flip (p = 0.5), an affine transform (rotation within +-20 degrees, translation up to 10 % of the
size, scaling 0.95-1.05), brightness and contrast factors in [0.6, 1.4], and a Gaussian blur with sigma in
[0.1, 3.0]. :class:`AugmentStrength` holds those numbers; every one can be changed.

Inputs are channel-first tensors or arrays: an image ``(1, H, W)`` or a volume as a slice stack
``(S, 1, H, W)``. A volume receives one draw of the random parameters for all its slices, so its anatomy
stays aligned from slice to slice. "Horizontal" means the last axis (columns). Seed with
``set_random_state(seed)`` (e.g. the per-item seed of :mod:`medvl.train.sampling`).
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
    Compose,
    MapTransform,
    RandAffine,
    RandFlip,
    RandGaussianSmooth,
    Randomizable,
    RandScaleIntensity,
    RandScaleIntensityFixedMean,
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


class ConvirtAugment(Randomizable, Transform):
    """The ConVIRT augmentation chain for an image ``(1, H, W)`` or a slice stack ``(S, 1, H, W)``.

    Args:
        size: output height and width.
        strength: ranges and probabilities (:class:`AugmentStrength`).

    Returns tensors of shape ``(1, size, size)`` or ``(S, 1, size, size)``.
    """

    def __init__(self, size: int, strength: AugmentStrength = AugmentStrength()) -> None:
        s = strength
        shift = s.translate_fraction * size
        self.pipeline = Compose(
            [
                RandResizedCrop(size, s.crop_scale, s.crop_ratio),
                RandFlip(prob=s.flip_prob, spatial_axis=1),
                RandAffine(
                    prob=s.affine_prob,
                    rotate_range=(math.radians(s.rotate_degrees),),
                    translate_range=(shift, shift),
                    scale_range=(s.scale_delta, s.scale_delta),
                    padding_mode="zeros",
                ),
                RandScaleIntensity(factors=s.brightness, prob=s.jitter_prob),
                RandScaleIntensityFixedMean(prob=s.jitter_prob, factors=s.contrast, fixed_mean=True),
                RandGaussianSmooth(sigma_x=s.blur_sigma, sigma_y=s.blur_sigma, prob=s.blur_prob),
            ]
        )

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> ConvirtAugment:
        """Seed every step of the chain (reproducible draws)."""
        super().set_random_state(seed, state)
        self.pipeline.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """The steps draw their own parameters; nothing to draw here."""

    def __call__(self, img: Any) -> torch.Tensor:
        img = convert_to_tensor(img, dtype=torch.float32)
        if img.ndim == 3 and img.shape[0] == 1:
            return convert_to_tensor(self.pipeline(img), track_meta=False)
        if img.ndim == 4 and img.shape[1] == 1:
            out = convert_to_tensor(self.pipeline(img[:, 0]), track_meta=False)
            return out.unsqueeze(1)
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
