"""Building the training cache (``medvl cache``): every manifest image prepared once into uint8 shards.

The build is idempotent and resumable. Its key is the SHA-256 of the manifest's content hash, the
:class:`~medvl.data.preprocess.PrepSettings` and the label space. A complete cache with the same key is left
as it is; an interrupted one continues after its last finished shard (a shard counts once its
``part-NNNNN.parquet`` index exists); a cache with another key is refused unless ``overwrite``. Images that
cannot be prepared (undecodable, constant, misaligned mask...) go to ``quarantine.csv`` and the build goes on.

On a cluster, ``part=(i, n)`` builds only the i-th of n contiguous blocks of the studies (in study id order)
into a folder of its own, so n tasks run at once; :func:`merge_parts` then links the parts' shards into one
folder that reads exactly as an unsharded build (same items, order and key).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Iterator, Sequence
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
    part_of,
    read_meta,
)
from medvl.data.ingest import check_shard
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


def manifest_cache_key(manifest: str | Path, settings: PrepSettings, label_space: list[str] | None = None) -> str:
    """The key a cache of ``manifest`` built with ``settings`` has (reads the manifest, writes nothing)."""
    return _keyed_manifest(manifest, settings, label_space)[2]


def whole_cache_key(cache_dir: str | Path) -> str | None:
    """The key of the complete, whole cache in ``cache_dir``; None when there is none (no cache, an unfinished
    build or merge, or one part of a sharded build)."""
    folder = Path(cache_dir)
    if not (folder / META_FILE).is_file():
        return None
    meta = read_meta(folder)
    return meta["key"] if meta.get("complete") and part_of(meta) == [0, 1] else None


def build_cache(
    manifest: str | Path,
    cache_dir: str | Path,
    settings: PrepSettings | None = None,
    *,
    label_space: list[str] | None = None,
    part: tuple[int, int] = (0, 1),
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
        part: ``(i, n)``: build only the i-th of n contiguous blocks of the studies (in study id order) into
            ``cache_dir``; join the n part folders with :func:`merge_parts`.
        workers: worker processes preparing images (0: in this process).
        shard_mb: start a new shard after this many MB of image slices.
        overwrite: replace a cache built from another manifest or with other settings.
        progress: show a progress bar.

    Raises:
        ManifestError: the manifest cannot be read; CacheError: the folder holds another cache.
    """
    started = time.perf_counter()
    settings = settings or PrepSettings()
    part = list(check_shard(part))
    df, space, key = _keyed_manifest(manifest, settings, label_space)
    out = Path(cache_dir)
    meta = _open(out, key, part, overwrite)
    if meta.get("complete"):
        return _result(out, meta, True, started)
    meta = {"format": FORMAT, "key": key, "manifest": str(Path(manifest).resolve()), "manifest_hash": df.attrs["hash"],
            "settings": settings.as_dict(), "label_space": space, "part": part, "complete": False}
    _write_json(out / META_FILE, meta)
    finished, done = _finished_work(out)
    items, skipped = _items(_studies_of_part(df, part), space, done)
    writer = _ShardWriter(out, finished, int(shard_mb * 2**20), settings.size)
    writer.quarantine.extend(skipped)
    with tqdm(total=len(items), desc="cache", unit="image", disable=not progress) as bar:
        for item, result in _prepared(items, settings, workers):
            writer.add(item, result)
            bar.update()
    writer.close()
    meta = _finalise(out, meta, writer.next_shard)
    if part[1] == 1:  # a part may hold no image at all
        _check_items(out, meta)
    return _result(out, meta, False, started)


def merge_parts(parts: Sequence[str | Path], cache_dir: str | Path, *, overwrite: bool = False) -> CacheResult:
    """Join the n part folders of ``build_cache(..., part=(i, n))`` into the cache an unsharded build writes.

    Shard files are hard-linked into ``cache_dir`` (copied only where the file system cannot link), so the
    merge takes seconds and leaves the parts intact: re-running it is safe and the parts may be deleted
    afterwards. Shards are renumbered in part order and the index and quarantine lists are joined.

    Raises:
        CacheError: no parts, a part missing, repeated, incomplete or built from another manifest or with other
            settings (the message names it), or ``cache_dir`` holds another cache (without ``overwrite``).
    """
    started = time.perf_counter()
    ordered = _check_parts([Path(p) for p in parts])
    first = read_meta(ordered[0])
    out = Path(cache_dir)
    meta = _open(out, first["key"], [0, 1], overwrite)
    if meta.get("complete"):
        return _result(out, meta, True, started)
    _clear(out)  # leftovers of an interrupted build or merge
    meta = {**{k: first[k] for k in ("format", "key", "manifest", "manifest_hash", "settings", "label_space")},
            "part": [0, 1], "complete": False, "merged_from": [str(p.resolve()) for p in ordered]}
    _write_json(out / META_FILE, meta)
    shards = 0
    for folder in ordered:
        for index in sorted(folder.glob("part-*.parquet")):
            _adopt_shard(folder, int(index.stem.removeprefix("part-")), out, shards)
            shards += 1
    meta = _finalise(out, meta, shards)
    _check_items(out, meta)
    return _result(out, meta, False, started)


def _check_parts(parts: list[Path]) -> list[Path]:
    """The part folders in part order, after checking they are the n complete parts of one build."""
    if not parts:
        raise CacheError("no part folders to merge")
    first = read_meta(parts[0])
    count = part_of(first)[1]
    seen: dict[int, Path] = {}
    for path in parts:
        meta = read_meta(path)
        index, n = part_of(meta)
        if n == 1:
            raise CacheError(f"{path}: a whole cache, not a part of a sharded build (medvl cache --shard i/n)")
        if meta["key"] != first["key"]:
            raise CacheError(f"{path}: built from another manifest or with other settings than {parts[0]} "
                             f"(key {meta['key'][:12]}, not {first['key'][:12]})")
        if n != count:
            raise CacheError(f"{path}: part {index}/{n} of a split into {n} parts, but {parts[0]} is of {count}")
        if not meta.get("complete"):
            raise CacheError(f"{path}: part {index}/{n} is incomplete; run 'medvl cache {meta['manifest']} -o {path} "
                             f"--shard {index}/{n}' again to finish it")
        if index in seen:
            raise CacheError(f"{path}: part {index}/{n} is given twice (also {seen[index]})")
        seen[index] = path
    missing = [f"{i}/{count}" for i in range(count) if i not in seen]
    if missing:
        raise CacheError(f"missing part {', '.join(missing)} of the build of {first['manifest']} (got "
                         f"{len(seen)} of {count}); run its 'medvl cache --shard' task first")
    return [seen[i] for i in range(count)]


def _adopt_shard(part_dir: Path, shard: int, out: Path, target: int) -> None:
    """Link one finished shard of a part into ``out`` as shard ``target``, with its index and quarantine."""
    for source, dest in ((image_file(part_dir, shard), image_file(out, target)),
                         (mask_file(part_dir, shard), mask_file(out, target))):
        if source.exists():
            _link(source, dest)
    index = _shard_index(part_dir, shard)
    _write_parquet(pd.read_parquet(index).assign(shard=target), _shard_index(out, target))
    shutil.copyfile(index.with_suffix(".quarantine.csv"), _shard_index(out, target).with_suffix(".quarantine.csv"))


def _link(source: Path, dest: Path) -> None:
    """Hard-link ``source`` as ``dest``; copy where the file system cannot link (another device...)."""
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _keyed_manifest(manifest: str | Path, settings: PrepSettings,
                    label_space: list[str] | None) -> tuple[pd.DataFrame, list[str], str]:
    """The manifest, the label space (default: every label it uses) and the cache key."""
    df = read_manifest(manifest)
    space = list(label_space) if label_space is not None else default_label_space(df)
    return df, space, cache_key(df.attrs["hash"], settings, space)


def _studies_of_part(df: pd.DataFrame, part: list[int]) -> pd.DataFrame:
    """The i-th of n contiguous blocks of the manifest's studies in study id order (all of them for 0/1)."""
    index, count = part
    df = df.sort_values("study_id", kind="stable")
    return df.iloc[index * len(df) // count:(index + 1) * len(df) // count]


def _result(out: Path, meta: dict, up_to_date: bool, started: float) -> CacheResult:
    return CacheResult(out, meta["key"], meta["items"], meta["slices"], meta["quarantined"], up_to_date,
                       time.perf_counter() - started)


def _check_items(out: Path, meta: dict) -> None:
    if not meta["items"]:
        raise CacheError(f"{out}: no image of {meta['manifest']} could be prepared; see {out / QUARANTINE_FILE}")


def _finished_work(out: Path) -> tuple[int, set[tuple[str, int]]]:
    """How many shards an earlier run finished, and the (study_id, image) pairs they hold or quarantined."""
    parts = sorted(out.glob("part-*.parquet"))
    done = {(r.study_id, r.image) for p in parts for r in pd.read_parquet(p, columns=["study_id", "image"]).itertuples()}
    done |= {(r["study_id"], int(r["image"])) for p in parts for r in _part_quarantine(p)}
    return len(parts), done


def _finalise(out: Path, meta: dict, shards: int) -> dict:
    """Join the shard indexes and quarantine lists, and mark the cache complete."""
    parts = sorted(out.glob("part-*.parquet"))
    frames = [frame for frame in (pd.read_parquet(p) for p in parts) if len(frame)]
    index = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(INDEX_COLUMNS))
    quarantine = [entry for part in parts for entry in _part_quarantine(part)]
    pd.DataFrame(quarantine, columns=[*QUARANTINE_COLUMNS, "image"]).to_csv(out / QUARANTINE_FILE, index=False)
    _write_parquet(index, out / INDEX_FILE)
    meta = {**meta, "complete": True, "items": len(index), "slices": int(index["depth"].sum()) if len(index) else 0,
            "studies": int(index["study_id"].nunique()) if len(index) else 0, "quarantined": len(quarantine),
            "shards": shards}
    _write_json(out / META_FILE, meta)
    return meta


def _open(out: Path, key: str, part: list[int], overwrite: bool) -> dict:
    """The existing meta for this key and part ({} when fresh); clears or refuses another cache or part."""
    if not (out / META_FILE).exists():
        if out.exists() and any(out.iterdir()):
            raise CacheError(f"{out}: folder is not empty and holds no medvl cache; choose an empty or new folder")
        out.mkdir(parents=True, exist_ok=True)
        return {}
    meta = read_meta(out)
    if meta["key"] == key and part_of(meta) == part:
        return meta
    if not overwrite:
        held = (f"a cache of another manifest or other settings (key {meta['key'][:12]})" if meta["key"] != key
                else f"{_part_name(part_of(meta))} of this cache, not {_part_name(part)}")
        raise CacheError(f"{out}: holds {held}; pass --overwrite to replace it or choose another folder")
    _clear(out)
    return {}


def _part_name(part: list[int]) -> str:
    return "the whole" if part[1] == 1 else f"part {part[0]}/{part[1]}"


def _clear(out: Path) -> None:
    """Remove the cache's own files; anything else in the folder stays."""
    for pattern in CACHE_FILES:
        for path in out.glob(pattern):
            path.unlink()


def _items(df: pd.DataFrame, space: list[str], done: set) -> tuple[list[_Item], list[dict]]:
    """Images still to prepare, with absolute paths and row data; text-only studies are reported."""
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
        part = _shard_index(self.out, self.shard)
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


def _shard_index(out: Path, shard: int) -> Path:
    """The index of one finished shard (its quarantine list sits beside it)."""
    return out / f"part-{shard:05d}.parquet"


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
