"""A montage of cached sample images, each captioned by the first line of its report."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from medvl.data.cache import CachedCohort

CAPTION_WIDTH = 34


def first_line(report: str) -> str:
    """The first non-empty line of a report, or ``(no report)``."""
    return next((line.strip() for line in report.splitlines() if line.strip()), "(no report)")


def sample_items(cohort: CachedCohort, count: int, seed: int = 0) -> list[int]:
    """Up to ``count`` item indices spread over the cohort's sources and splits, reproducibly."""
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(len(cohort), size=min(count, len(cohort)), replace=False).tolist())


def write_montage(cache_dir: str | Path, out: str | Path, count: int = 12, columns: int = 4, seed: int = 0) -> Path:
    """Draw ``count`` sample images of a training cache (middle slice for volumes) into a PNG.

    Raises:
        CacheError: ``cache_dir`` is not a complete cache; ValueError: the cache is empty.
    """
    cohort = CachedCohort(cache_dir)
    if len(cohort) == 0:
        raise ValueError(f"{cache_dir}: the cache holds no image to draw")
    items = sample_items(cohort, count, seed)
    rows = -(-len(items) // columns)
    figure = Figure(figsize=(3.0 * columns, 3.6 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, items, strict=False):
        item = cohort[index]
        image = item["image"]
        pixels = image[image.shape[0] // 2, 0] if item["is_volume"] else image[0]
        axis.imshow(pixels.numpy(), cmap="gray", vmin=0.0, vmax=1.0)
        caption = textwrap.shorten(first_line(item["report"]), width=2 * CAPTION_WIDTH, placeholder="...")
        axis.set_title(f"{item['study_id']}\n" + "\n".join(textwrap.wrap(caption, CAPTION_WIDTH)), fontsize=7, loc="left")
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out
