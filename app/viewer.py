"""Display images: window / level, heatmap overlays, relevance strips and orientation labels (numpy only).

Everything here returns ``uint8`` RGB arrays that ``st.image`` shows as they are; no Streamlit import, so the
rendering is tested directly.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from medvl.io import WINDOW_PRESETS, apply_window

MANUAL = "manual"
AUTO = "auto"
DISPLAY_PERCENTILES = (0.5, 99.5)


def window_choices(modality: str) -> list[str]:
    """Window options: ``auto`` (file window or robust range), the CT presets, ``manual``."""
    return [AUTO, *WINDOW_PRESETS, MANUAL] if modality == "CT" else [AUTO, MANUAL, *WINDOW_PRESETS]


def auto_window(slices: np.ndarray) -> tuple[float, float]:
    """``(center, width)`` covering the 0.5-99.5 percentile range of the values (at least width 1)."""
    low, high = np.percentile(slices[:: max(1, slices.shape[0] // 8)], DISPLAY_PERCENTILES)
    return float((low + high) / 2), float(max(high - low, 1.0))


def resolve_window(choice: str, slices: np.ndarray, manual: tuple[float, float] | None = None) -> tuple[float, float]:
    """``(center, width)`` for a window choice.

    Raises:
        ValueError: unknown choice, or ``manual`` without values.
    """
    if choice == AUTO:
        return auto_window(slices)
    if choice == MANUAL:
        if manual is None:
            raise ValueError("manual window: give (center, width)")
        return float(manual[0]), max(float(manual[1]), 1.0)
    if choice not in WINDOW_PRESETS:
        raise ValueError(f"window {choice!r}: choose auto, manual or one of {', '.join(WINDOW_PRESETS)}")
    return WINDOW_PRESETS[choice]


def to_grey(plane: np.ndarray, center: float, width: float) -> np.ndarray:
    """A slice through a window as ``(rows, cols)`` floats in ``[0, 1]``."""
    return apply_window(plane, center, width)


def normalise_heat(heat: np.ndarray) -> np.ndarray:
    """Heatmap scaled to ``[0, 1]`` over its own range (a flat map becomes zeros)."""
    low, high = float(np.min(heat)), float(np.max(heat))
    return np.zeros_like(heat, dtype=np.float32) if high <= low else ((heat - low) / (high - low)).astype(np.float32)


def overlay(grey: np.ndarray, heat: np.ndarray | None, opacity: float, colormap: str = "jet") -> np.ndarray:
    """``(rows, cols, 3)`` uint8: the grey image with the normalised heatmap blended in at ``opacity``.

    Raises:
        ValueError: shapes differ or opacity is outside ``[0, 1]``.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity {opacity} must be within [0, 1]")
    rgb = np.repeat(np.clip(grey, 0, 1)[..., None], 3, axis=-1)
    if heat is not None:
        if heat.shape != grey.shape:
            raise ValueError(f"heatmap shape {heat.shape} differs from image shape {grey.shape}")
        colours = colormaps[colormap](normalise_heat(heat))[..., :3]
        rgb = (1 - opacity) * rgb + opacity * colours
    return np.rint(rgb * 255).astype(np.uint8)


def colour_bar(colormap: str = "jet", width: int = 256, height: int = 12) -> np.ndarray:
    """``(height, width, 3)`` uint8: the heatmap colour scale, lowest score on the left."""
    colours = colormaps[colormap](np.linspace(0.0, 1.0, width))[:, :3]
    return np.rint(np.repeat(colours[None], height, axis=0) * 255).astype(np.uint8)


def relevance_strip(values: np.ndarray, current: int | None = None, height: int = 24, cell: int = 6) -> np.ndarray:
    """A horizontal strip, one ``cell``-wide column per slice coloured by relevance, the current slice marked."""
    colours = colormaps["viridis"](normalise_heat(np.asarray(values, dtype=np.float32)))[:, :3]
    strip = np.repeat(np.repeat(colours[None], height, axis=0), cell, axis=1)
    if current is not None:
        strip[-4:, current * cell : (current + 1) * cell] = (1.0, 0.2, 0.2)
    return np.rint(strip * 255).astype(np.uint8)


def edge_caption(orientation: dict[str, str] | None) -> str:
    """One line naming the patient directions at the image edges (or saying the file has no geometry)."""
    if orientation is None:
        return "Orientation unknown: the file carries no patient geometry."
    return "Top: {top} · Bottom: {bottom} · Left: {left} · Right: {right}".format(**orientation)
