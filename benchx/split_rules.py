"""Split rules: how a benchmark draws its rows and splits from what a medvl source adapter read.

A dataset card names its source (a :data:`medvl.data.adapters.ADAPTERS` name) and, under ``split``, one rule of
:data:`SPLIT_RULES` with that rule's options. Reading the files is the adapter's job; a rule only says which rows
the benchmark keeps, in which split, and (for GLoRIA's CheXpert protocols) which labels. Every rule is
deterministic: the same data and options give the same split on every machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medvl.data.adapters.common import CHEXPERT_LABELS
from medvl.data.manifest import from_rows, make_row
from medvl.data.splits import patient_position, split_for_patient

BENCHX_SEED = 42
"""``random_state`` of every ``train_test_split`` call in BenchX's preprocessing scripts."""
SOURCE_FRACTIONS = (0.65, 0.2, 0.15)
"""Default (train, val, test) shares of the patients a source leaves without a split (rule ``source``)."""
COMPETITION = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
U_MAPPING = {"Atelectasis": 1, "Cardiomegaly": 0, "Consolidation": 0, "Edema": 1, "Pleural Effusion": 1}
"""GLoRIA / MGCA's uncertain-label mapping (U-Ones / U-Zeros per observation)."""
R2GEN_FRACTIONS = (0.7, 0.1, 0.2)


@dataclass(frozen=True)
class SplitRule:
    """A rule: ``apply(manifest, options, where)`` gives the benchmark's rows; ``options`` names what it takes."""

    apply: Callable[[pd.DataFrame, Mapping[str, Any], str], pd.DataFrame]
    options: tuple[str, ...]


def keep_source(df: pd.DataFrame, options: Mapping[str, Any], where: str) -> pd.DataFrame:
    """The source's own splits; patients it leaves unplaced were drawn at ingestion by salted patient hash."""
    return df


def carve_val(df: pd.DataFrame, options: Mapping[str, Any], where: str) -> pd.DataFrame:
    """The source's test split is test (with ``val_is_test``, its val split is test instead); val is the train
    patients whose salted hash falls below ``val_fraction``, so no patient is in two splits."""
    held = "val" if options.get("val_is_test") else "test"
    val = hashed_patients(df.loc[df["split"] == "train", "patient_id"], float(options.get("val_fraction", 0.1)),
                          str(options.get("salt", "benchx-val")))
    out = df.copy()
    out["split"] = [
        "test" if split == held else "val" if patient in val else "train"
        for split, patient in zip(df["split"], df["patient_id"], strict=True)
    ]
    return out


def chexpert_competition(df: pd.DataFrame, options: Mapping[str, Any], where: str) -> pd.DataFrame:
    """GLoRIA / MGCA's CheXpert protocol: :func:`carve_val` with the official ``valid.csv`` as test, and the five
    competition labels under ``uncertain``: ``gloria`` (blank -> 0, -1 by :data:`U_MAPPING`) or ``keep``."""
    policy = str(options.get("uncertain", "gloria"))
    if policy not in ("gloria", "keep"):
        raise ValueError(f"{where}: option uncertain={policy!r}; expected 'gloria' or 'keep'")
    out = carve_val(df, {"val_is_test": True, "val_fraction": 0.025, "salt": "benchx-chexpert-val", **options}, where)
    out["labels"] = [json.dumps(competition_labels(json.loads(labels), policy), sort_keys=True)
                     for labels in out["labels"]]
    return out


def competition_labels(labels: Mapping[str, int], policy: str) -> dict[str, int]:
    """The five competition observations under an uncertainty policy (see :func:`chexpert_competition`)."""
    if policy == "keep":
        return {name: labels[name] for name in COMPETITION if name in labels}
    return {name: U_MAPPING[name] if labels.get(name, 0) == -1 else labels.get(name, 0) for name in COMPETITION}


def chexpert_5x200(df: pd.DataFrame, options: Mapping[str, Any], where: str) -> pd.DataFrame:
    """GLoRIA's CheXpert 5x200 zero-shot set: ``n`` (200) frontal train images per competition observation whose
    study is positive for it alone (the other 12 observations negative or blank, none uncertain), drawn with
    ``seed`` (0); one row per image, one-hot labels, all test."""
    n, seed = int(options.get("n", 200)), int(options.get("seed", 0))
    candidates: dict[str, list[tuple[dict, dict]]] = {name: [] for name in COMPETITION}
    for row in df.to_dict("records"):
        only = sole_positive(json.loads(row["labels"])) if row["split"] == "train" else None
        if only is not None:
            candidates[only] += [(row, ref) for ref in row["images"] if ref["view"] != "LATERAL"]
    rng = np.random.default_rng(seed)
    out = []
    for name, pool in candidates.items():
        if len(pool) < n:
            raise ValueError(f"{where}: only {len(pool)} frontal images are positive for {name} alone; "
                             f"chexpert-5x200 needs {n} (option n)")
        pool.sort(key=lambda item: item[1]["path"])
        for index in sorted(rng.choice(len(pool), size=n, replace=False)):
            row, ref = pool[index]
            out.append(make_row(
                patient_id=row["patient_id"], study_id="/".join(Path(ref["path"]).parts[-3:]), source=row["source"],
                images=[ref], labels={c: int(c == name) for c in COMPETITION}, split="test",
                sex=row["sex"], age=None if pd.isna(row["age"]) else row["age"], view=ref["view"],
            ))
    return from_rows(out)


def sole_positive(labels: Mapping[str, int]) -> str | None:
    """The competition observation a study is positive for alone, else None (see :func:`chexpert_5x200`)."""
    observed = {name: labels.get(name, 0) for name in CHEXPERT_LABELS if name != "No Finding"}
    positives = [name for name, value in observed.items() if value == 1]
    if len(positives) == 1 and positives[0] in COMPETITION and -1 not in observed.values():
        return positives[0]
    return None


def stratified_70_15_15(df: pd.DataFrame, options: Mapping[str, Any], where: str) -> pd.DataFrame:
    """BenchX's rule for datasets without official splits: the studies sorted by id, stratified on label
    ``stratify``, 70% train, the rest halved into val and test (``train_test_split`` twice, ``random_state=42``)."""
    if not options.get("stratify"):
        raise ValueError(f"{where}: rule stratified-70-15-15 needs option 'stratify' (the label to stratify on)")
    ids = sorted(df["study_id"])
    strata = dict(zip(df["study_id"], label_column(df, str(options["stratify"]), where), strict=True))
    train, rest = stratified_holdout(ids, [strata[i] for i in ids], 0.3, where)
    val, test = stratified_holdout(rest, [strata[i] for i in rest], 0.5, where)
    split = {**dict.fromkeys(train, "train"), **dict.fromkeys(val, "val"), **dict.fromkeys(test, "test")}
    return df.assign(split=df["study_id"].map(split))


def val_like_test(df: pd.DataFrame, options: Mapping[str, Any], where: str) -> pd.DataFrame:
    """BenchX's VinDr-CXR rule: the source's test split is test; val is drawn from the train ids in sorted order,
    as many as the test set, stratified on "has any finding" (``random_state=42``)."""
    train = sorted(df.loc[df["split"] == "train", "study_id"])
    any_finding = dict(zip(df["study_id"], [any(json.loads(v).values()) for v in df["labels"]], strict=True))
    _, val = stratified_holdout(train, [any_finding[i] for i in train], int((df["split"] == "test").sum()), where)
    return df.assign(split=df["split"].mask(df["study_id"].isin(set(val)), "val"))


def r2gen(df: pd.DataFrame, options: Mapping[str, Any], where: str) -> pd.DataFrame:
    """R2Gen's IU X-ray split: from its ``annotation.json`` (option ``annotation``; reports it left out are left
    out), else each report (its own patient) by salted hash into 70 / 10 / 20, R2Gen's proportions."""
    if not options.get("annotation"):
        salt = str(options.get("salt", "benchx-iu-xray"))
        return df.assign(split=[split_for_patient(s, R2GEN_FRACTIONS, salt) for s in df["study_id"]])
    path = Path(str(options["annotation"])).expanduser()
    splits = r2gen_splits(path)
    unknown = sorted(set(splits) - set(df["study_id"]))
    if unknown:
        raise ValueError(f"{path}: report {unknown[0]} is not in the {where} data")
    kept = df[df["study_id"].isin(set(splits))]
    return kept.assign(split=kept["study_id"].map(splits)).reset_index(drop=True)


def r2gen_splits(path: Path) -> dict[str, str]:
    """``{report id: split}`` from R2Gen's ``annotation.json`` (ids ``CXR2384_IM-0942`` -> report ``CXR2384``)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; split option 'annotation' names R2Gen's annotation.json")
    try:
        data = json.loads(path.read_text())
        pairs = [(entry["id"].split("_")[0], split) for split in ("train", "val", "test") for entry in data[split]]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not R2Gen's annotation.json (train/val/test lists of {{id, ...}}): {exc}") from exc
    splits: dict[str, str] = {}
    for report, split in pairs:
        if splits.setdefault(report, split) != split:
            raise ValueError(f"{path}: report {report} is in both {splits[report]} and {split}")
    return splits


def label_column(df: pd.DataFrame, label: str, where: str) -> list[int]:
    """The value of ``label`` for every row; refuses a label no row has."""
    values = [json.loads(labels).get(label) for labels in df["labels"]]
    if all(v is None for v in values):
        raise ValueError(f"{where}: no study has label {label!r} (split option 'stratify')")
    return [-2 if v is None else v for v in values]


def stratified_holdout(ids: Sequence[str], strata: Sequence[Any], test_size: float | int, where: str,
                       seed: int = BENCHX_SEED) -> tuple[list[str], list[str]]:
    """``sklearn.model_selection.train_test_split(ids, test_size, stratify=strata, random_state=seed)``: the exact
    call BenchX's preprocessing makes, so the same ids in the same order give BenchX's split."""
    from sklearn.model_selection import train_test_split  # slow to import: only when a split is drawn

    try:
        kept, held = train_test_split(list(ids), test_size=test_size, stratify=list(strata), random_state=seed)
    except ValueError as exc:
        raise ValueError(f"{where}: cannot draw a stratified split of {len(ids)} images ({exc})") from exc
    return list(kept), list(held)


def hashed_patients(patient_ids: pd.Series, fraction: float, salt: str) -> set[str]:
    """The patients whose :func:`medvl.data.splits.patient_position` falls below ``fraction``: a deterministic
    draw that does not depend on which other patients are present."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction {fraction!r} must be between 0 and 1")
    return {p for p in set(patient_ids) if patient_position(p, salt) < fraction}


SPLIT_RULES: dict[str, SplitRule] = {
    "source": SplitRule(keep_source, ("split_fractions", "salt")),
    "carve-val": SplitRule(carve_val, ("val_fraction", "salt", "val_is_test")),
    "chexpert-competition": SplitRule(chexpert_competition, ("val_fraction", "salt", "uncertain")),
    "chexpert-5x200": SplitRule(chexpert_5x200, ("n", "seed")),
    "stratified-70-15-15": SplitRule(stratified_70_15_15, ("stratify",)),
    "val-like-test": SplitRule(val_like_test, ()),
    "r2gen": SplitRule(r2gen, ("annotation", "salt")),
}
"""The rules by name; each function's docstring says what it does (table: docs/benchx_datasets.md)."""
