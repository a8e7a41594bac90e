"""The training cache: prepared images in memory-mapped shards, read at memory speed.

Layout of a cache folder (written by :func:`medvl.data.cache_build.build_cache`)::

    cache.json              format, key (manifest hash + settings + label space), settings, label space, part,
                            counts
    index.parquet           one row per cached image (see INDEX_COLUMNS)
    quarantine.csv          images that could not be prepared: study_id, path, reason, error_type
    images-00000.u8 ...     uint8 slices, (slices, size, size) row-major, appended image after image
    masks-00000.u8 ...      uint8 mask slices of the images that have one, same layout

Every image of every study is one item; a 2D image is a one-slice volume in the shards. The reader,
:class:`CachedCohort`, opens each shard once per process as an ``np.memmap`` (never pickled: DataLoader
workers open their own), so reading an item is a slice of mapped memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from medvl.data.manifest import SPLITS
from medvl.errors import MedvlError

FORMAT = "medvl-cache/1"
META_FILE = "cache.json"
INDEX_FILE = "index.parquet"
QUARANTINE_FILE = "quarantine.csv"
INDEX_COLUMNS = (
    "study_id", "patient_id", "split", "source", "image", "path", "view", "modality", "kind", "shard", "offset",
    "depth", "mask_offset", "z_mm", "spacing", "content_box", "labels", "report", "findings", "impression",
)
"""``image``: position in the study's images; ``offset``/``mask_offset``: first slice in the shard's image/mask
file (``mask_offset`` -1 without a mask); ``spacing``: output (row, col, slice) mm, NaN when unknown;
``content_box``: (top, left, bottom, right) of the image inside the padded square; ``labels``: vector in the
cache's label space, NaN unknown."""
_TEXT_FIELDS = ("study_id", "patient_id", "view", "report", "findings", "impression", "path")


class CacheError(MedvlError, ValueError):
    """A cache folder that is missing, incomplete, of another format, or built for other settings."""


def image_file(cache_dir: Path, shard: int) -> Path:
    """The image slices of one shard."""
    return cache_dir / f"images-{shard:05d}.u8"


def mask_file(cache_dir: Path, shard: int) -> Path:
    """The mask slices of one shard."""
    return cache_dir / f"masks-{shard:05d}.u8"


def part_of(meta: dict) -> list[int]:
    """``[i, n]``: the part of a sharded build a cache folder holds (``[0, 1]``: the whole cache)."""
    return list(meta.get("part", [0, 1]))


def read_meta(cache_dir: str | Path) -> dict:
    """The cache's ``cache.json``; raises :class:`CacheError` when absent or of another format."""
    path = Path(cache_dir) / META_FILE
    if not path.is_file():
        raise CacheError(f"{cache_dir}: not a medvl cache (no {META_FILE}); build one with 'medvl cache'")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise CacheError(f"{path}: format {meta.get('format')!r}, this medvl reads {FORMAT!r}")
    return meta


class PackedStrings:
    """Many strings in one UTF-8 byte array plus offsets: no per-string Python objects, so forked DataLoader
    workers do not copy them page by page through reference counting."""

    def __init__(self, values: Sequence[str]) -> None:
        encoded = [str(v).encode() for v in values]
        self.offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=self.offsets[1:])
        self.data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.data[self.offsets[i]:self.offsets[i + 1]].tobytes().decode()


def even_slices(depth: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` slices spread evenly over ``depth`` (all of them when it fits)."""
    if depth <= limit:
        return np.arange(depth)
    return np.unique(np.round(np.linspace(0, depth - 1, limit)).astype(int))


def jittered_slices(depth: int, limit: int, u: np.ndarray) -> np.ndarray:
    """Indices of at most ``limit`` slices, one drawn from each of ``limit`` equal runs of ``depth`` slices (``u``:
    at least ``limit`` uniforms in ``[0, 1)``; all slices when they fit). Every slice can be drawn, so a lesion
    between the evenly spread slices of :func:`even_slices` is seen in training too."""
    if depth <= limit:
        return np.arange(depth)
    starts = np.arange(limit) * depth // limit
    stops = np.arange(1, limit + 1) * depth // limit
    return starts + (u[:limit] * (stops - starts)).astype(np.int64)


def with_required(picks: np.ndarray, required: Sequence[int]) -> np.ndarray:
    """``picks`` (sorted slice indices) with each of ``required`` in place of the nearest pick that is not itself
    required (all of them when they fit in ``len(picks)`` slots); sorted."""
    picks, required = np.array(picks, dtype=np.int64), sorted({int(r) for r in required if r >= 0})[: len(picks)]
    for r in required:
        if r not in picks:
            free = np.flatnonzero(~np.isin(picks, required))
            picks[free[np.argmin(np.abs(picks[free] - r))]] = r
    return np.sort(picks)


class CachedCohort(Dataset):
    """A :class:`torch.utils.data.Dataset` over a built cache (one item per cached image).

    Items are dicts:

    - ``image``: float32 in ``[0, 1]``, ``(1, H, W)`` for a 2D image, ``(S, 1, H, W)`` for a volume;
    - ``mask``: uint8 labels of the same shape (only when the image has a mask);
    - ``z_mm``: float32 ``(S,)`` physical z of each slice (``[0.]`` for a 2D image);
    - ``spacing``: float32 ``(3,)`` output (row, col, slice) mm, NaN when unknown;
    - ``labels``: float32 ``(P,)`` in :attr:`label_space` order (1, 0, -1 uncertain, NaN unknown);
    - ``study_id``, ``patient_id``, ``view``, ``report``, ``findings``, ``impression``, ``path`` (the source
      image): strings;
    - ``is_volume``: bool.

    Args:
        cache_dir: a folder written by ``medvl cache``.
        split: ``train``, ``val`` or ``test`` to keep one split (None: all).

    Raises:
        CacheError: the folder is not a complete cache; ValueError: unknown split.
    """

    def __init__(self, cache_dir: str | Path, split: str | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        meta = read_meta(self.cache_dir)
        if not meta.get("complete"):
            raise CacheError(f"{self.cache_dir}: the cache is incomplete; run 'medvl cache' again to finish it")
        part = part_of(meta)
        if part[1] > 1:
            raise CacheError(f"{self.cache_dir}: holds only part {part[0]}/{part[1]} of a sharded build; join the "
                             "parts with 'medvl cache --merge PART... -o CACHE' and read that")
        if split is not None and split not in SPLITS:
            raise ValueError(f"split '{split}' is not one of {SPLITS}")
        index = pd.read_parquet(self.cache_dir / INDEX_FILE)
        if split is not None:
            index = index[index["split"] == split].reset_index(drop=True)
        self.label_space: list[str] = list(meta["label_space"])
        self.settings: dict = meta["settings"]
        self.key: str = meta["key"]
        self.manifest_hash: str = meta["manifest_hash"]
        self.size = int(self.settings["size"])
        self.splits = index["split"].to_numpy(dtype=str)
        self._study_ids = index["study_id"].to_numpy(dtype=str)
        self._shard = index["shard"].to_numpy(np.int32)
        self._offset = index["offset"].to_numpy(np.int64)
        self._depth = index["depth"].to_numpy(np.int64)
        self._mask_offset = index["mask_offset"].to_numpy(np.int64)
        self._volume = (index["kind"] == "3d").to_numpy()
        self._modality = index["modality"].fillna("").to_numpy(dtype=str)
        self._content_box = np.asarray([list(b) for b in index["content_box"]], np.int64).reshape(-1, 4)
        self._z = np.concatenate([np.asarray(z, np.float32) for z in index["z_mm"]]) if len(index) else np.zeros(0)
        self._z_start = np.concatenate([[0], np.cumsum(self._depth)]).astype(np.int64)
        self._spacing = np.asarray([list(s) for s in index["spacing"]], np.float32).reshape(-1, 3)
        self._labels = np.asarray([list(v) for v in index["labels"]], np.float32).reshape(
            len(index), len(self.label_space))
        self._text = {field: PackedStrings(index[field].tolist()) for field in _TEXT_FIELDS}
        self._maps: dict[tuple[str, int], np.memmap] = {}

    def __len__(self) -> int:
        return len(self._offset)

    @property
    def is_volume(self) -> np.ndarray:
        """Per item: True for a volume, False for a 2D image."""
        return self._volume

    @property
    def modalities(self) -> np.ndarray:
        """Per item: its modality code (``CR``, ``CT``...; empty when unknown)."""
        return self._modality

    def select(self, split: str, kinds: str = "all") -> np.ndarray:
        """Indices of the items of ``split`` whose kind is allowed (``2d``, ``3d`` or ``all``)."""
        mask = self.splits == split
        if kinds == "2d":
            mask &= ~self._volume
        elif kinds == "3d":
            mask &= self._volume
        return np.flatnonzero(mask)

    def content_box(self, i: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of item ``i``'s image inside its padded square."""
        return tuple(int(v) for v in self._content_box[int(i)])  # type: ignore[return-value]

    def text(self, field: str, i: int) -> str:
        """One text field (``report``, ``findings``, ``impression``, ``study_id``...) of item ``i``, no pixels read."""
        return self._text[field][int(i)]

    def split_hashes(self) -> dict[str, str]:
        """Per split present: a SHA-256 of its sorted study ids (for lineage: which studies trained a model)."""
        hashes = {}
        for split in sorted(set(self.splits.tolist())):
            ids = "\n".join(sorted(self._study_ids[self.splits == split].tolist()))
            hashes[split] = hashlib.sha256(ids.encode()).hexdigest()
        return hashes

    @property
    def depths(self) -> np.ndarray:
        """Slices per item (for depth-bucketing samplers)."""
        return self._depth

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        i = int(i) % len(self)
        start, depth, shard = int(self._offset[i]), int(self._depth[i]), int(self._shard[i])
        pixels = self._map("images", shard)[start:start + depth]
        image = torch.from_numpy(np.asarray(pixels, dtype=np.float32)).mul_(1.0 / 255.0)
        item: dict[str, Any] = {field: self._text[field][i] for field in _TEXT_FIELDS}
        volume = bool(self._volume[i])
        item["image"] = image.unsqueeze(1) if volume else image
        item["is_volume"] = volume
        item["z_mm"] = torch.from_numpy(self._z[self._z_start[i]:self._z_start[i + 1]].copy())
        item["spacing"] = torch.from_numpy(self._spacing[i].copy())
        item["labels"] = torch.from_numpy(self._labels[i].copy())
        if self._mask_offset[i] >= 0:
            m_start = int(self._mask_offset[i])
            mask = torch.from_numpy(np.array(self._map("masks", shard)[m_start:m_start + depth]))
            item["mask"] = mask.unsqueeze(1) if volume else mask
        return item

    def item_labels(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``(len(indices), P)`` float32 labels of items in :attr:`label_space` order (NaN unknown)."""
        return self._labels[np.asarray(indices, dtype=np.int64)]

    def image_slice(self, i: int, number: int) -> int:
        """The slice of volume ``i`` that a report cites as image ``number`` (counted from the head, from 1, as
        :mod:`medvl.text.key_images` reads citations); -1 when the volume has fewer slices.

        Raises:
            CacheError: the cache resampled its slices (``--slice-mm``), so image numbers no longer name a slice.
        """
        if self.settings.get("slice_mm"):
            raise CacheError(f"{self.cache_dir}: slices were resampled to {self.settings['slice_mm']} mm, so a "
                             "report's image numbers name no cached slice; build the cache without --slice-mm")
        z = self._z[self._z_start[int(i)]:self._z_start[int(i) + 1]]
        return int(np.argsort(-z, kind="stable")[number - 1]) if 0 < number <= len(z) else -1

    def slice_picks(self, indices: Sequence[int] | np.ndarray, max_slices: int, slice_draws: np.ndarray | None = None,
                    required: Sequence[Sequence[int]] | None = None) -> list[np.ndarray]:
        """Per volume, the sorted slices a batch reads: at most ``max_slices``, evenly spread or, given
        ``slice_draws`` ``(B, max_slices)`` uniforms, drawn by :func:`jittered_slices`; each of ``required[k]``
        (e.g. key images) takes the place of the nearest pick that is not itself required."""
        picks = [even_slices(int(self._depth[i]), max_slices) if slice_draws is None
                 else jittered_slices(int(self._depth[i]), max_slices, slice_draws[k]) for k, i in enumerate(indices)]
        return picks if required is None else [with_required(p, r) for p, r in zip(picks, required, strict=True)]

    def read_batch(self, indices: Sequence[int] | np.ndarray, max_slices: int = 1, slice_draws: np.ndarray | None = None,
                   picks: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw uint8 pixels of many items at once, for the training loop's host path.

        Returns ``pixels`` ``(B, S, H, W)`` uint8 (volumes keep the slices of :meth:`slice_picks` with
        ``max_slices`` and ``slice_draws``, or the given ``picks``; zero-padded to the deepest; a 2D image is one
        slice), ``depth`` ``(B,)`` real slices per item and ``z_mm`` ``(B, S)`` float32. One fancy-index read per
        shard: no per-item float conversion.
        """
        indices = np.asarray(indices, dtype=np.int64)
        if (self._depth[indices] == 1).all():  # 2D: one slice per item
            depth = np.ones(len(indices), dtype=np.int64)
            rows, zs, slot = self._offset[indices], self._z_start[indices], np.arange(len(indices))
            s = 1
        else:
            picks = self.slice_picks(indices, max_slices, slice_draws) if picks is None else picks
            depth = np.array([len(p) for p in picks], dtype=np.int64)
            s = int(depth.max())
            rows = np.concatenate([self._offset[i] + p for i, p in zip(indices, picks, strict=True)])
            zs = np.concatenate([self._z_start[i] + p for i, p in zip(indices, picks, strict=True)])
            slot = np.concatenate([b * s + np.arange(len(p)) for b, p in enumerate(picks)])
        alloc = np.empty if s == 1 else np.zeros  # 2D fills every row; volumes need zero padding
        pixels = alloc((len(indices) * s, self.size, self.size), dtype=np.uint8)
        z = np.zeros(len(indices) * s, dtype=np.float32)
        shards = np.repeat(self._shard[indices], depth)
        for shard in np.unique(shards):
            mine = shards == shard
            pixels[slot[mine]] = self._map("images", int(shard))[rows[mine]]
        z[slot] = self._z[zs]
        return pixels.reshape(len(indices), s, self.size, self.size), depth, z.reshape(len(indices), s)

    def _map(self, kind: str, shard: int) -> np.memmap:
        key = (kind, shard)
        if key not in self._maps:
            path = (image_file if kind == "images" else mask_file)(self.cache_dir, shard)
            self._maps[key] = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, self.size, self.size)
        return self._maps[key]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"] = {}  # each process maps the shards itself
        return state


def collate_cohort(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate :class:`CachedCohort` items into a batch.

    All 2D: ``image`` ``(B, 1, H, W)``, ``z_mm`` ``(B, 1)``. Any volume: every item becomes a volume (a 2D
    image is one slice), padded to the deepest: ``image`` ``(B, S, 1, H, W)``, ``z_mm`` ``(B, S)`` (0 where
    padded) and ``key_padding_mask`` ``(B, S)`` bool, True at padded slices (the convention of
    ``torch.nn.MultiheadAttention``). ``mask`` (zeros where absent) and ``has_mask`` ``(B,)`` appear when any
    item has a mask. ``labels`` ``(B, P)``, ``spacing`` ``(B, 3)``; strings become lists.
    """
    out: dict[str, Any] = {field: [item[field] for item in batch] for field in _TEXT_FIELDS}
    out["labels"] = torch.stack([item["labels"] for item in batch])
    out["spacing"] = torch.stack([item["spacing"] for item in batch])
    out["is_volume"] = torch.tensor([item["is_volume"] for item in batch])
    any_mask = any("mask" in item for item in batch)
    if not out["is_volume"].any():
        out["image"] = torch.stack([item["image"] for item in batch])
        out["z_mm"] = torch.stack([item["z_mm"] for item in batch])
        if any_mask:
            out["mask"] = torch.stack([item.get("mask", torch.zeros_like(item["image"], dtype=torch.uint8))
                                       for item in batch])
    else:
        volumes = [_slices(item, "image") for item in batch]
        depths = torch.tensor([v.shape[0] for v in volumes])
        out["image"] = pad_sequence(volumes, batch_first=True)
        out["z_mm"] = pad_sequence([item["z_mm"].reshape(-1).float() for item in batch], batch_first=True)
        out["key_padding_mask"] = torch.arange(out["image"].shape[1])[None] >= depths[:, None]
        if any_mask:
            masks = [_slices(item, "mask") if "mask" in item else torch.zeros_like(volume, dtype=torch.uint8)
                     for item, volume in zip(batch, volumes, strict=True)]  # fmt: skip
            out["mask"] = pad_sequence(masks, batch_first=True)
    if any_mask:
        out["has_mask"] = torch.tensor(["mask" in item for item in batch])
    return out


def _slices(item: dict[str, Any], field: str) -> torch.Tensor:
    """An item's ``field`` as a stack of slices (a 2D image is one slice)."""
    return item[field] if item["is_volume"] else item[field][None]
