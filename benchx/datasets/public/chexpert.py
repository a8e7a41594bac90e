"""``chexpert`` (competition labels) and ``chexpert-5x200``: CheXpert through medvl's ``chexpert`` adapter.

Layout (``CheXpert-v1.0-small`` or full size; the card path is that folder)::

    train.csv, valid.csv   Path, Sex, Age, Frontal/Lateral, AP/PA, the 14 observations (1.0 / 0.0 / -1.0 / blank)
    train/patient00001/study1/view1_frontal.jpg, valid/...

``chexpert``: one row per study, the five competition observations. Split rule (GLoRIA / MGCA, followed by
BenchX): the official ``valid.csv`` (200 patients, radiologist labels) is the test split; val is carved out of
``train.csv`` at patient level (patients whose salted hash falls below ``val_fraction``, default 0.025, about the
5,000 images GLoRIA samples). Uncertain and blank labels follow ``uncertain``: ``gloria`` (default; blank -> 0,
-1 -> 1 for Atelectasis, Edema, Pleural Effusion and -> 0 for Cardiomegaly, Consolidation) or ``keep``.

``chexpert-5x200``: GLoRIA's zero-shot set, one row per image, all ``test``: frontal ``train.csv`` images whose
study is positive for exactly one competition observation and negative (blank counts as negative, uncertain does
not) for the other 12 observations; ``n`` (default 200) drawn per observation with ``seed`` (default 0).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchx.datasets.public.common import adapter_rows, hashed_patients, require_root
from benchx.datasets.registry import register_loader
from medvl.data.adapters.chexpert import CheXpertAdapter
from medvl.data.adapters.common import CHEXPERT_LABELS
from medvl.data.manifest import from_rows, make_row
from medvl.data.splits import check_patient_splits

COMPETITION = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
U_MAPPING = {"Atelectasis": 1, "Cardiomegaly": 0, "Consolidation": 0, "Edema": 1, "Pleural Effusion": 1}
"""GLoRIA / MGCA's uncertain-label mapping (U-Ones / U-Zeros per observation)."""
LAYOUT = "train.csv, valid.csv and the train/ and valid/ image folders (the CheXpert-v1.0-small folder)"
SALT = "benchx-chexpert-val"


@register_loader("chexpert")
def load_competition(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """Studies with the five competition labels; test = ``valid.csv``, val carved from train by patient.

    Options:
        val_fraction: share of train patients that go to val (default 0.025).
        uncertain: ``gloria`` (default) or ``keep``.
    """
    policy = str(options.get("uncertain", "gloria"))
    if policy not in ("gloria", "keep"):
        raise ValueError(f"chexpert: option uncertain={policy!r}; expected 'gloria' or 'keep'")
    rows = adapter_rows(CheXpertAdapter(require_root(root, "chexpert", LAYOUT)), "chexpert")
    train_patients = [r["patient_id"] for r in rows if r["split"] == "train"]
    val = hashed_patients(train_patients, float(options.get("val_fraction", 0.025)), SALT)
    out = []
    for row in rows:
        split = "test" if row["split"] == "val" else "val" if row["patient_id"] in val else "train"
        labels = competition_labels(json.loads(row["labels"]), policy)
        out.append({**row, "source": "chexpert", "split": split, "labels": json.dumps(labels, sort_keys=True)})
    df = from_rows(out)
    check_patient_splits(df)
    return df


def competition_labels(labels: Mapping[str, int], policy: str) -> dict[str, int]:
    """The five competition observations under an uncertainty policy (see the module docstring)."""
    if policy == "keep":
        return {name: labels[name] for name in COMPETITION if name in labels}
    return {name: U_MAPPING[name] if labels.get(name, 0) == -1 else labels.get(name, 0) for name in COMPETITION}


@register_loader("chexpert-5x200")
def load_5x200(root: Path, options: Mapping[str, Any]) -> pd.DataFrame:
    """GLoRIA's CheXpert 5x200: ``n`` frontal images per competition observation, one-hot labels, all test.

    Options:
        n: images per observation (default 200).
        seed: the draw's seed (default 0).
    """
    n, seed = int(options.get("n", 200)), int(options.get("seed", 0))
    rows = adapter_rows(CheXpertAdapter(require_root(root, "chexpert-5x200", LAYOUT)), "chexpert-5x200")
    candidates: dict[str, list[tuple[dict, dict]]] = {name: [] for name in COMPETITION}
    for row in rows:
        only = sole_positive(json.loads(row["labels"])) if row["split"] == "train" else None
        if only is not None:
            candidates[only] += [(row, ref) for ref in row["images"] if ref["view"] != "LATERAL"]
    rng = np.random.default_rng(seed)
    out = []
    for name, pool in candidates.items():
        if len(pool) < n:
            raise ValueError(f"{root}/train.csv: only {len(pool)} frontal images are positive for {name} alone; "
                             f"chexpert-5x200 needs {n} (option n)")
        pool.sort(key=lambda item: item[1]["path"])
        for index in sorted(rng.choice(len(pool), size=n, replace=False)):
            row, ref = pool[index]
            out.append(make_row(
                patient_id=row["patient_id"], study_id="/".join(Path(ref["path"]).parts[-3:]), source="chexpert-5x200",
                images=[ref], labels={c: int(c == name) for c in COMPETITION}, split="test",
                sex=row["sex"], age=None if pd.isna(row["age"]) else row["age"], view=ref["view"],
            ))
    return from_rows(out)


def sole_positive(labels: Mapping[str, int]) -> str | None:
    """The competition observation a study is positive for alone (the other 12 observations negative or blank,
    none uncertain), else None."""
    observed = {name: labels.get(name, 0) for name in CHEXPERT_LABELS if name != "No Finding"}
    positives = [name for name, value in observed.items() if value == 1]
    if len(positives) == 1 and positives[0] in COMPETITION and -1 not in observed.values():
        return positives[0]
    return None
