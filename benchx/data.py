"""A dataset ready to evaluate: manifest from the card's source and split rule, frozen split, prepared image cache.

Under the benchx data dir (:func:`benchx.paths.default_data_dir`) each dataset has a folder ``datasets/<name>/``:

- ``manifest.parquet``: the card's manifest (content-hashed);
- ``split.json`` + ``splits.csv``: the frozen split (hash of sorted ``study_id, split``) and its members;
  a later run whose data or rule gives another split refuses with :class:`SplitChangedError`;
- ``cache/<key>/``: the prepared images (``medvl.data.cache_build``) at the card's preprocessing, CT cropped
  to the body for a model trained that way (one cache each way).

Generated cards (``generate:``) synthesise the phantom cohort once into ``generated/<name>-<params hash>/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from benchx.cards import DatasetCard
from benchx.datasets import load_dataset
from benchx.errors import BenchxError, DataMissingError, LabelSpaceError, SplitChangedError
from benchx.paths import digest
from medvl.data.manifest import SPLITS, read_manifest, write_manifest

AGE_BANDS = ((0, 40, "<40"), (40, 60, "40-59"), (60, 80, "60-79"), (80, 200, "80+"))
GROUPS = ("sex", "age_band", "view")


@dataclass
class PreparedDataset:
    """One dataset of a suite, prepared for evaluation.

    Attributes:
        card: its card.
        manifest_hash: content hash of the card's manifest.
        split_hash: hash of the frozen split.
        cache_dir: the prepared-image cache.
        manifest: the manifest (one row per study).
    """

    card: DatasetCard
    manifest_hash: str
    split_hash: str
    cache_dir: Path
    manifest: pd.DataFrame

    def cohort(self, split: str):
        """The cached items of one split (a :class:`medvl.data.cache.CachedCohort`)."""
        from medvl.data.cache import CachedCohort

        return CachedCohort(self.cache_dir, split)

    @cached_property
    def cache_key(self) -> str:
        """The image cache's key (manifest hash, preprocessing, label space)."""
        from medvl.data.cache import read_meta

        return read_meta(self.cache_dir)["key"]

    @cached_property
    def preprocessing(self) -> str:
        """The image cache's preprocessing settings as JSON (size, CT window, body crop...), for the results."""
        from medvl.data.cache import read_meta

        return json.dumps(read_meta(self.cache_dir)["settings"], sort_keys=True)

    def groups(self, study_ids: list[str]) -> dict[str, np.ndarray]:
        """Per item: ``sex``, ``age_band`` and ``view`` strings (empty when unknown), for subgroup metrics."""
        meta = self.manifest.set_index("study_id")
        rows = meta.loc[study_ids]
        ages = rows["age"].to_numpy(dtype=float)
        return {
            "sex": rows["sex"].fillna("").astype(str).to_numpy(),
            "age_band": np.array([age_band(a) for a in ages]),
            "view": rows["view"].fillna("").astype(str).to_numpy(),
        }


def age_band(age: float) -> str:
    """The age band of an age in years (empty when unknown)."""
    if not np.isfinite(age):
        return ""
    return next(label for low, high, label in AGE_BANDS if low <= age < high)


def split_hash(df: pd.DataFrame) -> str:
    """SHA-256 of the sorted ``study_id<TAB>split`` lines."""
    lines = sorted(f"{s}\t{p}" for s, p in zip(df["study_id"], df["split"], strict=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def prepare_dataset(card: DatasetCard, data_dir: Path, progress: bool = False, crop_body: bool = False) -> PreparedDataset:
    """Load, check, freeze the split of and cache one dataset (CT cropped to the body when ``crop_body``).

    Raises:
        DataMissingError: the card's data folder is absent.
        IncompleteDataError: the source lists files that cannot be read.
        LabelSpaceError: a card label is in no study of the data.
        SplitChangedError: the split differs from the card's ``split.hash`` or from the frozen one.
    """
    root = data_root(card, data_dir)
    folder = data_dir / "datasets" / card.name
    folder.mkdir(parents=True, exist_ok=True)
    df = load_dataset(card, root, progress)
    check_label_space(card, df)
    manifest_path = folder / "manifest.parquet"
    manifest_hash = write_manifest(df, manifest_path)
    frozen = freeze_split(card, df, folder)
    cache_dir = build_dataset_cache(card, manifest_path, folder, progress, crop_body)
    return PreparedDataset(card, manifest_hash, frozen, cache_dir, read_manifest(manifest_path))


def data_root(card: DatasetCard, data_dir: Path) -> Path:
    """The card's data folder; generated cards are synthesised here once."""
    if card.generate is None:
        path = card.data_path()
        if path is None or not path.exists():
            raise DataMissingError(f"{card.file}: data path {path} of dataset '{card.name}' does not exist; "
                                   f"put the data there or set the variable the card's path uses")
        return path
    return generate_phantom(card, data_dir)


def generate_phantom(card: DatasetCard, data_dir: Path) -> Path:
    """Synthesise the card's phantom cohort (once; later runs reuse it)."""
    from medvl.data.phantom import PhantomError, synthesize

    params = dict(card.generate or {})
    if "depth_range" in params:
        params["depth_range"] = tuple(params["depth_range"])
    target = data_dir / "generated" / f"{card.name}-{digest(params)[:12]}"
    if (target / "studies.csv").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{card.name}-", dir=target.parent))
    try:
        synthesize(tmp / "cohort", **params)
    except (PhantomError, TypeError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BenchxError(f"{card.file}: field 'generate': {exc}") from exc
    (tmp / "cohort").replace(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def check_label_space(card: DatasetCard, df: pd.DataFrame) -> None:
    """Raise :class:`LabelSpaceError` when a card label is mentioned by no study (listing the data's labels)."""
    present: set[str] = set()
    for labels in df["labels"]:
        present.update(json.loads(labels))
    missing = [name for name in card.label_space if name not in present]
    if missing:
        raise LabelSpaceError(f"{card.file}: field 'label_space': {missing} not in the data of '{card.name}'; "
                              f"the data has: {', '.join(sorted(present)) or 'no labels'}")


def freeze_split(card: DatasetCard, df: pd.DataFrame, folder: Path) -> str:
    """Check the split against the card and the frozen one (freezing it on first use); returns its hash."""
    counts = {s: int((df["split"] == s).sum()) for s in SPLITS}
    empty = [s for s, n in counts.items() if n == 0]
    if empty:
        raise BenchxError(f"{card.file}: dataset '{card.name}' has no {'/'.join(empty)} studies ({counts}); "
                          f"change the card's split.split_fractions or use more data")
    current = split_hash(df)
    if card.split_hash and card.split_hash != current:
        raise SplitChangedError(f"{card.file}: field 'split.hash': the data's split hash is {current}, the card "
                                f"freezes {card.split_hash}; the split rule or the data changed")
    record = folder / "split.json"
    if record.is_file():
        frozen = json.loads(record.read_text())["split_hash"]
        if frozen != current:
            raise SplitChangedError(f"{record}: the split of '{card.name}' changed (frozen {frozen[:12]}, now "
                                    f"{current[:12]}); results would not be comparable. Delete {record} to re-freeze")
        return current
    df[["study_id", "patient_id", "split"]].sort_values("study_id").to_csv(folder / "splits.csv", index=False)
    record.write_text(json.dumps({"dataset": card.name, "split_hash": current, "counts": counts}, indent=2) + "\n")
    return current


def build_dataset_cache(card: DatasetCard, manifest: Path, folder: Path, progress: bool, crop_body: bool = False) -> Path:
    """The prepared-image cache of the manifest at the card's preprocessing, CT cropped to the body when
    ``crop_body`` (built when missing)."""
    from medvl.data.cache_build import build_cache, cache_key
    from medvl.data.preprocess import PrepSettings

    settings = PrepSettings(size=card.size, ct_window=card.ct_window, crop_body=crop_body)
    key = cache_key(read_manifest(manifest).attrs["hash"], settings, list(card.label_space))
    cache_dir = folder / "cache" / key[:16]
    build_cache(manifest, cache_dir, settings, label_space=list(card.label_space), progress=progress)
    return cache_dir
