"""Tiny phantom dataset cards and suites for the benchx tests (written into a temporary cards folder)."""

from __future__ import annotations

from pathlib import Path

import yaml

TINY_2D = {
    "name": "tiny-2d", "description": "60 phantom radiographs at 64 px", "source": "phantom",
    "generate": {"n_2d": 60, "n_3d": 0, "seed": 5, "size": 64},
    "options": {"images": "files"}, "split": {"rule": "source", "split_fractions": [0.5, 0.25, 0.25]},
    "kind": "2d", "tasks": ["linear_probe", "finetune_frozen", "finetune_full", "zero_shot", "retrieval", "segmentation"],
    "task_type": "multilabel", "label_space": ["No Finding", "Cardiomegaly", "Pleural Effusion"],
    "segmentation": {"mask": "lesion", "encoding": "bits", "classes": {"Cardiomegaly": 1, "Pleural Effusion": 2}},
    "preprocess": {"size": 64}, "fractions": [0.1, 1.0], "citation": "medvl phantom", "licence": "synthetic",
}
TINY_3D = {
    **TINY_2D, "name": "tiny-3d", "description": "12 phantom CTs", "kind": "3d",
    "generate": {"n_2d": 0, "n_3d": 12, "seed": 5, "ct_size": 32, "depth_range": [16, 18]},
    "tasks": ["linear_probe", "segmentation"], "label_space": ["No Finding", "Pleural Effusion", "Liver Lesion"],
    "segmentation": {"mask": "lesion", "encoding": "bits", "classes": {"Pleural Effusion": 2, "Liver Lesion": 32}},
    "preprocess": {"size": 32}, "fractions": [1.0],
}


def write_cards(folder: Path, **extra: dict) -> Path:
    """Write the tiny cards (plus ``extra`` cards by name) and a ``tiny`` suite; returns the suite path."""
    folder.mkdir(parents=True, exist_ok=True)
    for card in (TINY_2D, TINY_3D, *extra.values()):
        (folder / f"{card['name']}.yaml").write_text(yaml.safe_dump(card))
    suite = folder / "tiny-suite.yml"
    suite.write_text(yaml.safe_dump({"name": "tiny", "description": "tiny 2D phantom", "datasets": ["tiny-2d"]}))
    return suite
