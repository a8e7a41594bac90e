"""A picture of a cohort: example radiographs and CT slices with their lesion masks outlined."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from medvl.data.phantom.cohort import read_index
from medvl.data.phantom.files import read_mask

COLOURS = {
    "Cardiomegaly": "#ffb000",
    "Pleural Effusion": "#00c0ff",
    "Consolidation": "#ff4040",
    "Lung Lesion": "#40ff40",
    "Pneumothorax": "#ff40ff",
    "Liver Lesion": "#ffff40",
    "Kidney Cyst": "#40ffff",
    "Ascites": "#ff8000",
    "Lymphadenopathy": "#c080ff",
}
_ABDOMINAL = frozenset({"Liver Lesion", "Kidney Cyst", "Ascites"})
_WINDOWS = {"lung": (-600.0, 1500.0), "soft": (40.0, 400.0)}


def _examples(rows: list[dict[str, str]], kind: str, limit: int) -> list[dict[str, str]]:
    """A normal study and the first study showing each finding alone, then studies with several findings."""
    chosen: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["kind"] != kind:
            continue
        names = [d["name"] for d in json.loads(row["details"])]
        key = names[0] if len(names) == 1 else ("normal" if not names else "several")
        chosen.setdefault(key, row)
    return list(chosen.values())[:limit]


def _caption(row: dict[str, str]) -> str:
    details = json.loads(row["details"])
    if not details:
        return "normal"
    parts = []
    for d in details:
        where = " ".join(part for part in (d["side"], d["region"]) if part)
        size = f" {d['size_cm']:.1f} cm" if d["size_cm"] else ""
        parts.append(f"{d['name']} ({d['severity']}{', ' + where if where else ''}{size})")
    return "\n".join(parts)


def _radiograph(
    root: Path, row: dict[str, str]
) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[float, float]]:
    with Image.open(root / row["image"]) as image:
        pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels, read_mask(root / row["mask"]), (0.0, 1.0)


def _ct_slice(
    root: Path, row: dict[str, str]
) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[float, float]]:
    volume = np.asanyarray(nib.load(root / row["image"]).dataobj).astype(np.float32)
    masks = read_mask(root / row["mask"])
    lesion = sum(m.astype(np.int32) for m in masks.values())
    k = int(np.argmax(lesion.sum(axis=(0, 1)))) if lesion.any() else (3 * volume.shape[2]) // 4
    names = {d["name"] for d in json.loads(row["details"])}
    centre, width = _WINDOWS["soft" if names and names <= _ABDOMINAL else "lung"]
    # (X, Y) -> (rows, cols) for display: rows are Y, columns are X.
    return (
        volume[:, :, k].T,
        {n: m[:, :, k].T for n, m in masks.items()},
        (centre - width / 2, centre + width / 2),
    )


def write_montage(cohort: str | Path, out: str | Path, *, n_2d: int = 8, n_3d: int = 4) -> Path:
    """Draw example studies of a cohort with mask outlines and captions into a PNG; returns its path."""
    root = Path(cohort)
    rows = read_index(root)
    panels = [(row, _radiograph) for row in _examples(rows, "2d", n_2d)]
    panels += [(row, _ct_slice) for row in _examples(rows, "3d", n_3d)]
    if not panels:
        raise ValueError(f"{root}: the cohort has no studies to draw")
    columns = 4
    lines = max(len(_caption(row).splitlines()) for row, _ in panels)
    grid_rows = -(-len(panels) // columns)
    figure = Figure(figsize=(3.2 * columns, (3.2 + 0.18 * lines) * grid_rows))
    axes = figure.subplots(grid_rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (row, load) in zip(axes.flat, panels, strict=False):
        pixels, masks, (low, high) = load(root, row)
        axis.imshow(pixels, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        for name, mask in masks.items():
            if mask.any():
                axis.contour(mask.astype(np.float32), levels=[0.5], colors=[COLOURS[name]], linewidths=0.9)
        label = "CT" if row["kind"] == "3d" else row["view"]
        axis.set_title(f"{row['study_id']} ({label})\n{_caption(row)}", fontsize=7, loc="left")
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    return out
