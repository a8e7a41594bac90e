"""Similar cases: an embedding index of a cohort, searched by image or by text.

An index holds one L2-normalised image embedding per cached image (``embeddings.npy``) and a row-aligned table
(``studies.parquet``: study id, split, source path, impression, report text) plus ``index.json`` (the model's
fingerprint, the cache key, the count). It is built from a training cache (:meth:`EmbeddingIndex.from_cache`),
whose images were prepared exactly as the model's training data; loading it for another model is refused, since
embeddings of two models are not comparable. Thumbnails come from that cache (:meth:`EmbeddingIndex.thumbnail`).

A neighbour whose embedding is the query's own (cosine at least :data:`SAME_IMAGE`) is the query study itself,
opened from another file or name, and is never listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from medvl.data.cache import CachedCohort, collate_cohort
from medvl.errors import MedvlError
from medvl.infer.embed import encode_batch_images, encode_texts

FORMAT = "medvl-similar/1"
META_FILE = "index.json"
EMBEDDINGS_FILE = "embeddings.npy"
TABLE_FILE = "studies.parquet"
TABLE_COLUMNS = ("study_id", "split", "path", "impression", "report")
SAME_IMAGE = 0.9995
"""Cosine similarity above which a neighbour is the query image itself."""


class SimilarIndexError(MedvlError, ValueError):
    """An index that cannot be built or used (wrong model, incompatible cache, damaged files); says what to do."""


@dataclass(frozen=True)
class SimilarCase:
    """One neighbour: the study, its cosine similarity to the query, its impression, report, image path and its
    row in the index (for :meth:`EmbeddingIndex.thumbnail`)."""

    study_id: str
    score: float
    impression: str
    path: str
    split: str
    report: str = ""
    row: int = -1


class EmbeddingIndex:
    """Image embeddings of a cohort with their studies.

    Args:
        embeddings: ``(N, D)`` float32, L2-normalised rows.
        table: ``N`` rows with :data:`TABLE_COLUMNS`.
        meta: ``model_fingerprint`` and provenance (``cache_key``, ``cache_dir``).
    """

    def __init__(self, embeddings: np.ndarray, table: pd.DataFrame, meta: dict[str, Any]) -> None:
        if embeddings.ndim != 2 or len(embeddings) != len(table):
            raise SimilarIndexError(f"{len(embeddings)} embeddings for {len(table)} table rows: the index is damaged")
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.table = table.reset_index(drop=True)
        self.meta = dict(meta)
        self._cohort: CachedCohort | None = None

    def __len__(self) -> int:
        return len(self.table)

    @classmethod
    @torch.no_grad()
    def from_cache(
        cls,
        model: Any,
        cache_dir: str | Path,
        model_fingerprint: str,
        expected_size: int | None = None,
        split: str | None = None,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ) -> EmbeddingIndex:
        """Embed every image of a ``medvl cache`` folder.

        Args:
            model: the model in eval mode.
            cache_dir: the cache folder.
            model_fingerprint: :func:`medvl.infer.model_ref.model_fingerprint` of the model's folder.
            expected_size: the model's input size; a cache prepared at another size is refused.
            split: index only this split (None: all).
            batch_size: images per forward pass.
            device: where the model runs.
            progress: show a progress bar.

        Raises:
            SimilarIndexError: the cache was prepared at another size than the model's.
        """
        cohort = CachedCohort(cache_dir, split)
        if expected_size is not None and cohort.size != expected_size:
            raise SimilarIndexError(
                f"{cache_dir}: images cached at {cohort.size} px but the model takes {expected_size} px; "
                f"build a cache with 'medvl cache MANIFEST --size {expected_size}'"
            )
        device = torch.device(device)
        chunks, rows = [], []
        loader = DataLoader(cohort, batch_size=batch_size, shuffle=False, collate_fn=collate_cohort)
        for batch in tqdm(loader, desc="embedding", unit="batch", disable=not progress):
            embedding, _ = encode_batch_images(model, batch, device)
            chunks.append(embedding.float().cpu().numpy())
            rows.extend(
                {"study_id": s, "split": "", "path": p, "impression": i, "report": r}
                for s, p, i, r in zip(batch["study_id"], batch["path"], batch["impression"], batch["report"], strict=True)
            )
        table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
        table["split"] = cohort.splits
        dim = int(model.config["embed_dim"])
        embeddings = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
        meta = {"format": FORMAT, "model_fingerprint": model_fingerprint, "cache_key": cohort.key,
                "cache_dir": str(Path(cache_dir).resolve()), "split": split or "", "count": len(table)}  # fmt: skip
        return cls(embeddings, table, meta)

    def save(self, directory: str | Path) -> Path:
        """Write ``embeddings.npy``, ``studies.parquet`` and ``index.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / EMBEDDINGS_FILE, self.embeddings)
        self.table.to_parquet(directory / TABLE_FILE, index=False)
        (directory / META_FILE).write_text(json.dumps(self.meta, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, model_fingerprint: str | None = None) -> EmbeddingIndex:
        """Read an index; with ``model_fingerprint``, refuse one built with another model.

        Raises:
            SimilarIndexError: missing files, another format, or another model.
        """
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise SimilarIndexError(f"{directory}: not a similar-case index (no {META_FILE}); build one with 'medvl review index'")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise SimilarIndexError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        if model_fingerprint is not None and meta.get("model_fingerprint") != model_fingerprint:
            raise SimilarIndexError(
                f"{directory}: built with another model (fingerprint {str(meta.get('model_fingerprint'))[:12]}, "
                f"this model {model_fingerprint[:12]}); rebuild it with 'medvl review index'"
            )
        table = pd.read_parquet(directory / TABLE_FILE)
        if "report" not in table:  # an index built before reports were kept
            table["report"] = table["impression"]
        return cls(np.load(directory / EMBEDDINGS_FILE), table, meta)

    def thumbnail(self, row: int) -> np.ndarray | None:
        """``(H, W)`` uint8 of the indexed image (a volume's middle slice) as the cache holds it, or None when the
        cache the index was built from is gone or was rebuilt since."""
        if self._cohort is None:
            try:
                cohort = CachedCohort(self.meta["cache_dir"], self.meta.get("split") or None)
            except (OSError, ValueError, KeyError):
                return None
            if cohort.key != self.meta.get("cache_key") or len(cohort) != len(self.table):
                return None  # rebuilt since: its rows may be other studies
            self._cohort = cohort
        image = self._cohort[int(row)]["image"].numpy()
        plane = image[image.shape[0] // 2, 0] if image.ndim == 4 else image[0]
        return np.rint(plane * 255).astype(np.uint8)

    def nearest(self, embedding: torch.Tensor | np.ndarray, k: int = 5, exclude: str | None = None) -> list[SimilarCase]:
        """The ``k`` most similar studies (one entry per study, its best image), most similar first.

        Args:
            embedding: ``(D,)`` normalised query embedding (image or text).
            k: how many studies.
            exclude: a study id to leave out (the query study itself); images whose embedding is the query's
                (:data:`SAME_IMAGE`) are left out as well.
        """
        query = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.embeddings.shape[1]:
            raise SimilarIndexError(f"query has {query.shape[0]} dimensions, the index {self.embeddings.shape[1]}")
        scores = self.embeddings @ query
        out: list[SimilarCase] = []
        seen = {exclude} if exclude else set()
        for i in np.argsort(-scores, kind="stable"):
            row = self.table.iloc[int(i)]
            if row["study_id"] in seen or scores[i] >= SAME_IMAGE:
                seen.add(row["study_id"])
                continue
            seen.add(row["study_id"])
            out.append(SimilarCase(row["study_id"], float(scores[i]), row["impression"], row["path"], row["split"],
                                   row["report"], int(i)))  # fmt: skip
            if len(out) == k:
                break
        return out

    def search_text(self, model: Any, text: str, k: int = 5, device: str | torch.device = "cpu") -> list[SimilarCase]:
        """Text-to-image search: the studies whose images are closest to ``text``.

        Raises:
            ValueError: empty text.
        """
        if not text.strip():
            raise ValueError("text search: type what to look for (the text is empty)")
        return self.nearest(encode_texts(model, [text.strip()], torch.device(device))[0].numpy(), k)
