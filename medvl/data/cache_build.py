"""Building the training cache (``medvl cache``): every manifest image prepared once into uint8 shards.

The build is idempotent and resumable. Its key is the SHA-256 of the manifest's content hash, the
:class:`~medvl.data.preprocess.PrepSettings` and the label space. A complete cache with the same key is left
as it is; an interrupted one continues after its last finished shard (a shard counts once its
``part-NNNNN.parquet`` index exists); a cache with another key is refused unless ``overwrite``. Images that
cannot be prepared (undecodable, constant, misaligned mask...) go to ``quarantine.csv`` and the build goes on.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from medvl.data.adapters.base import Rejected
from medvl.data.cache import (
    FORMAT,
    INDEX_COLUMNS,
    INDEX_FILE,
    META_FILE,
    QUARANTINE_FILE,
    CacheError,
    image_file,
    mask_file,
    read_meta,
)
from medvl.data.manifest import labels_matrix, read_manifest, resolve_path
from medvl.data.preprocess import Prepared, PrepSettings, prepare
from medvl.data.workers import process_pool
from medvl.io.errors import MedvlIOError

QUARANTINE_COLUMNS = ("study_id", "path", "reason", "error_type")
CACHE_FILES = (META_FILE, INDEX_FILE, QUARANTINE_FILE, "images-*.u8", "masks-*.u8", "part-*.parquet",
               "part-*.quarantine.csv")
PREPARE_ERRORS = (MedvlIOError, ValueError, OSError)
"""Exceptions that quarantine an image; anything else is a bug and stops the build."""


@dataclass(frozen=True)
class CacheResult:
    """What a build found or did."""

    cache_dir: Path
    key: str
    items: int
    slices: int
    quarantined: int
    up_to_date: bool
    seconds: float


@dataclass(frozen=True)
class _Item:
    study_id: str
    image: int
    ref: dict
    row: dict


def cache_key(manifest_hash: str, settings: PrepSettings, label_space: list[str]) -> str:
    """SHA-256 of what decides the cache's content."""
    payload = json.dumps({"format": FORMAT, "manifest": manifest_hash, "settings": settings.as_dict(),
                          "labels": label_space}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def build_cache(
    manifest: str | Path,
    cache_dir: str | Path,
    settings: PrepSettings | None = None,
    *,
    label_space: list[str] | None = None,
    workers: int = 0,
    shard_mb: float = 1024.0,
    overwrite: bool = False,
    progress: bool = True,
) -> CacheResult:
    """Prepare every image of a manifest into a cache folder (see :mod:`medvl.data.cache`).

    Args:
        manifest: a manifest written by ``medvl ingest``.
        cache_dir: the cache folder (created).
        settings: size, CT window, slice spacing, percentiles.
        label_space: label order of the vectors (default: every label in the manifest, sorted).
        workers: worker processes preparing images (0: in this process).
        shard_mb: start a new shard after this many MB of image slices.
        overwrite: replace a cache built from another manifest or with other settings.
        progress: show a progress bar.

    Raises:
        ManifestError: the manifest cannot be read; CacheError: the folder holds another cache.
    """
    started = time.perf_counter()
    settings = settings or PrepSettings()
    df = read_manifest(manifest)
    space = list(label_space) if label_space is not None else default_label_space(df)
    key = cache_key(df.attrs["hash"], settings, space)
    out = Path(cache_dir)
    meta = _open(out, key, overwrite)
    if meta.get("complete"):
        return CacheResult(out, key, meta["items"], meta["slices"], meta["quarantined"], True,
                           time.perf_counter() - started)
    meta = {"format": FORMAT, "key": key, "manifest": str(Path(manifest).resolve()), "manifest_hash": df.attrs["hash"],
            "settings": settings.as_dict(), "label_space": space, "complete": False}
    _write_json(out / META_FILE, meta)
    finished, done = _finished_work(out)
    items, skipped = _items(df, space, done)
    writer = _ShardWriter(out, finished, int(shard_mb * 2**20), settings.size)
    writer.quarantine.extend(skipped)
    with tqdm(total=len(items), desc="cache", unit="image", disable=not progress) as bar:
        for item, result in _prepared(items, settings, workers):
            writer.add(item, result)
            bar.update()
    writer.close()
    meta = _finalise(out, meta, writer.next_shard)
    if not meta["items"]:
        raise CacheError(f"{out}: no image of {manifest} could be prepared; see {out / QUARANTINE_FILE}")
    return CacheResult(out, key, meta["items"], meta["slices"], meta["quarantined"], False,
                       time.perf_counter() - started)


def _finished_work(out: Path) -> tuple[int, set[tuple[str, int]]]:
    """How many shards an earlier run finished, and the (study_id, image) pairs they hold or quarantined."""
    parts = sorted(out.glob("part-*.parquet"))
    done = {(r.study_id, r.image) for p in parts for r in pd.read_parquet(p, columns=["study_id", "image"]).itertuples()}
    done |= {(r["study_id"], int(r["image"])) for p in parts for r in _part_quarantine(p)}
    return len(parts), done


def _finalise(out: Path, meta: dict, shards: int) -> dict:
    """Join the shard indexes and quarantine lists, and mark the cache complete."""
    parts = sorted(out.glob("part-*.parquet"))
    index = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    quarantine = [entry for part in parts for entry in _part_quarantine(part)]
    pd.DataFrame(quarantine, columns=[*QUARANTINE_COLUMNS, "image"]).to_csv(out / QUARANTINE_FILE, index=False)
    _write_parquet(index, out / INDEX_FILE)
    meta = {**meta, "complete": True, "items": len(index), "slices": int(index["depth"].sum()) if len(index) else 0,
            "studies": int(index["study_id"].nunique()) if len(index) else 0, "quarantined": len(quarantine),
            "shards": shards}
    _write_json(out / META_FILE, meta)
    return meta


def _open(out: Path, key: str, overwrite: bool) -> dict:
    """The existing meta for this key ({} when fresh); clears or refuses a cache with another key."""
    if not (out / META_FILE).exists():
        if out.exists() and any(out.iterdir()):
            raise CacheError(f"{out}: folder is not empty and holds no medvl cache; choose an empty or new folder")
        out.mkdir(parents=True, exist_ok=True)
        return {}
    meta = read_meta(out)
    if meta["key"] == key:
        return meta
    if not overwrite:
        raise CacheError(f"{out}: holds a cache of another manifest or other settings (key {meta['key'][:12]}); "
                         "pass --overwrite to replace it or choose another folder")
    for pattern in CACHE_FILES:  # only the cache's own files: anything else in the folder stays
        for path in out.glob(pattern):
            path.unlink()
    return {}


def _items(df: pd.DataFrame, space: list[str], done: set) -> tuple[list[_Item], list[dict]]:
    """Images still to prepare, with absolute paths and row data; text-only studies are reported."""
    df = df.sort_values("study_id", kind="stable")
    labels = labels_matrix(df, space)
    items, skipped = [], []
    for row, vector in zip(df.to_dict("records"), labels, strict=True):
        data = {key: row[key] for key in ("study_id", "patient_id", "split", "source", "report", "findings",
                                          "impression")}
        data["labels"] = vector.tolist()
        if not row["images"] and (row["study_id"], -1) not in done:
            skipped.append({"study_id": row["study_id"], "path": "", "reason": "study has no image (text only)",
                            "error_type": "NoImage", "image": -1})
        for k, ref in enumerate(row["images"]):
            if (row["study_id"], k) in done:
                continue
            ref = {**ref, "path": str(resolve_path(df, ref["path"]))}
            if ref.get("mask"):
                ref["mask"] = str(resolve_path(df, ref["mask"]))
            items.append(_Item(row["study_id"], k, ref, data))
    return items, skipped


def _prepare_one(item: _Item, settings: PrepSettings) -> Prepared | Rejected:
    try:
        return prepare(item.ref, settings)
    except PREPARE_ERRORS as exc:
        return Rejected.from_exception(item.ref["path"], exc)


def _prepared(items: list[_Item], settings: PrepSettings, workers: int) -> Iterator[tuple[_Item, Prepared | Rejected]]:
    """Prepared items in order, computed here or in a bounded number of in-flight worker tasks."""
    if workers <= 0:
        for item in items:
            yield item, _prepare_one(item, settings)
        return
    with process_pool(workers, [__name__], initializer=torch.set_num_threads, initargs=(1,)) as pool:
        pending: deque[tuple[_Item, Future]] = deque()
        for item in items:
            pending.append((item, pool.submit(_prepare_one, item, settings)))
            if len(pending) >= 4 * workers:
                done_item, future = pending.popleft()
                yield done_item, future.result()
        while pending:
            done_item, future = pending.popleft()
            yield done_item, future.result()


class _ShardWriter:
    """Appends prepared images to the current shard; a shard is finished by writing its part index."""

    def __init__(self, out: Path, first_shard: int, shard_bytes: int, size: int) -> None:
        self.out, self.shard_bytes, self.size = out, shard_bytes, size
        self.next_shard = first_shard
        self.quarantine: list[dict] = []
        self._start(first_shard)

    def _start(self, shard: int) -> None:
        self.shard = shard
        for path in (image_file(self.out, shard), mask_file(self.out, shard)):
            path.unlink(missing_ok=True)  # leftovers of an interrupted run
        self.images = image_file(self.out, shard).open("wb")
        self.masks = None
        self.slices = self.mask_slices = 0
        self.rows: list[dict] = []

    def add(self, item: _Item, result: Prepared | Rejected) -> None:
        if isinstance(result, Rejected):
            self.quarantine.append({"study_id": item.study_id, "path": result.path, "reason": result.reason,
                                    "error_type": result.error_type, "image": item.image})
            return
        depth = result.pixels.shape[0]
        self.images.write(result.pixels.tobytes())
        mask_offset = -1
        if result.mask is not None:
            if self.masks is None:
                self.masks = mask_file(self.out, self.shard).open("wb")
            self.masks.write(result.mask.tobytes())
            mask_offset, self.mask_slices = self.mask_slices, self.mask_slices + depth
        ref = item.ref
        self.rows.append({**{k: item.row[k] for k in ("study_id", "patient_id", "split", "source")},
                          "image": item.image, "path": ref["path"], "view": ref.get("view", ""),
                          "modality": ref.get("modality", ""), "kind": "3d" if depth > 1 or ref.get("kind") == "3d" else "2d",
                          "shard": self.shard, "offset": self.slices, "depth": depth, "mask_offset": mask_offset,
                          "z_mm": result.z_mm.tolist(), "spacing": list(result.spacing),
                          "content_box": list(result.content_box), "labels": item.row["labels"],
                          **{k: item.row[k] for k in ("report", "findings", "impression")}})
        self.slices += depth
        if self.slices * self.size * self.size >= self.shard_bytes:
            self._finish()
            self._start(self.shard + 1)

    def _finish(self) -> None:
        self.images.close()
        if self.masks is not None:
            self.masks.close()
        part = self.out / f"part-{self.shard:05d}.parquet"
        _write_parquet(pd.DataFrame(self.rows, columns=list(INDEX_COLUMNS)), part)
        pd.DataFrame(self.quarantine, columns=[*QUARANTINE_COLUMNS, "image"]).to_csv(
            part.with_suffix(".quarantine.csv"), index=False)
        self.quarantine = []
        self.next_shard = self.shard + 1

    def close(self) -> None:
        """Finish the current shard (an empty last shard is removed)."""
        if self.rows or self.quarantine:
            self._finish()
            return
        self.images.close()
        image_file(self.out, self.shard).unlink(missing_ok=True)


def _part_quarantine(part: Path) -> list[dict]:
    path = part.with_suffix(".quarantine.csv")
    if not path.is_file():
        return []
    table = pd.read_csv(path, dtype={"study_id": str, "path": str, "reason": str, "error_type": str, "image": int},
                        keep_default_na=False)
    return table.to_dict("records")


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)


def default_label_space(df: pd.DataFrame) -> list[str]:
    """Every label name the manifest uses, sorted."""
    return sorted({name for labels in df["labels"] for name in json.loads(labels)})
