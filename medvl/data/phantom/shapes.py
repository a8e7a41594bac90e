"""Vectorised shape and texture helpers shared by the 2D and 3D phantom renderers."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ellipse(
    u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float, angle: float = 0.0
) -> np.ndarray:
    """Normalised radius of points ``(u, v)`` in a rotated ellipse (< 1 inside)."""
    c, s = np.cos(angle), np.sin(angle)
    du, dv = u - cu, v - cv
    return ((du * c + dv * s) / ru) ** 2 + ((dv * c - du * s) / rv) ** 2


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float | tuple[float, ...]
) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation (``sigma`` in pixels, one or one per axis)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-6)


def pick_point(rng: np.random.Generator, allowed: np.ndarray) -> tuple[int, ...] | None:
    """A uniformly drawn index where ``allowed`` is True, or None when nothing is allowed."""
    candidates = np.flatnonzero(allowed)
    if candidates.size == 0:
        return None
    return tuple(
        int(i) for i in np.unravel_index(int(candidates[rng.integers(candidates.size)]), allowed.shape)
    )


def inner_distance(region: np.ndarray, spacing: float | tuple[float, ...] = 1.0) -> np.ndarray:
    """Distance of every point of ``region`` to the nearest point outside it (0 outside)."""
    return ndimage.distance_transform_edt(region, sampling=spacing)
