"""Token ids of every candidate text of the training items, computed once; a training step only picks.

ConVIRT samples one sentence of FINDINGS + IMPRESSION per item and step. Tokenising 256 sentences costs tens of
milliseconds on the main thread, every step; here every candidate (each sentence, or the whole report) is
tokenised once when the run starts and kept in flat arrays (no per-string Python objects, so forked
DataLoader workers share them). A step draws each item's candidate from the item seed and gathers its ids.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medvl.augment import STREAM_POLARITY, STREAM_TEXT, seed_uniforms
from medvl.config import ConfigError
from medvl.data.cache import CachedCohort, PackedStrings
from medvl.data.pairs import cached_report_text
from medvl.text.sentences import split_sentences

TOKENIZE_CHUNK = 8192


def candidates(report: str, mode: str) -> list[str]:
    """The texts an item can be paired with: its sentences (``sentence``) or its whole report (``report``)."""
    if mode == "sentence":
        return split_sentences(report) or [report]
    if mode == "report":
        return [report]
    raise ConfigError(f"text mode '{mode}' is not one of sentence, report")


@dataclass
class TokenBank:
    """Flat token ids of all candidates; item ``i`` owns candidates ``first[i]`` to ``first[i + 1] - 1``.

    Attributes:
        ids: int32 ids of every candidate, concatenated.
        token_start: ``(n_candidates + 1,)`` offsets of each candidate's ids in ``ids``.
        first: ``(n_items + 1,)`` offsets of each item's candidates.
        texts: the candidate strings (for concept targets and logging).
        pad_id: the tokenizer's padding id.
    """

    ids: np.ndarray
    token_start: np.ndarray
    first: np.ndarray
    texts: PackedStrings
    pad_id: int

    @classmethod
    def build(cls, item_texts: Sequence[Sequence[str]], tokenizer: Any, max_length: int) -> TokenBank:
        """Tokenise every candidate of every item (truncated to ``max_length``, special tokens added)."""
        flat = [text for texts in item_texts for text in texts]
        first = np.zeros(len(item_texts) + 1, dtype=np.int64)
        np.cumsum([len(texts) for texts in item_texts], out=first[1:])
        pieces: list[np.ndarray] = []
        for start in range(0, len(flat), TOKENIZE_CHUNK):
            encoded = tokenizer(flat[start : start + TOKENIZE_CHUNK], truncation=True, max_length=max_length)["input_ids"]
            pieces.extend(np.asarray(ids, dtype=np.int32) for ids in encoded)
        token_start = np.zeros(len(flat) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in pieces], out=token_start[1:])
        ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
        return cls(ids, token_start, first, PackedStrings(flat), int(tokenizer.pad_token_id))

    def choose(self, rows: np.ndarray, seeds: np.ndarray | None) -> np.ndarray:
        """The candidate of each item: drawn uniformly from its seed, or its first when ``seeds`` is None."""
        rows = np.asarray(rows, dtype=np.int64)
        start = self.first[rows]
        if seeds is None:
            return start
        count = self.first[rows + 1] - start
        u = seed_uniforms(seeds, 1, stream=STREAM_TEXT)[:, 0]
        return start + np.minimum((u * count).astype(np.int64), count - 1)

    def batch(self, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``input_ids`` and ``attention_mask`` ``(B, T)`` int64 of the chosen candidates, padded to the longest."""
        begin = self.token_start[chosen]
        length = self.token_start[chosen + 1] - begin
        width = int(length.max()) if len(chosen) else 0
        positions = np.arange(width)[None]
        real = positions < length[:, None]
        input_ids = np.full((len(chosen), width), self.pad_id, dtype=np.int64)
        input_ids[real] = self.ids[(begin[:, None] + positions)[real]]
        return input_ids, real.astype(np.int64)

    def save(self, path: Path) -> None:
        """Write the bank to ``path`` (``.npz``) atomically."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, ids=self.ids, token_start=self.token_start, first=self.first, text_data=self.texts.data,
                     text_offsets=self.texts.offsets, pad_id=np.int64(self.pad_id))  # fmt: skip
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TokenBank:
        """Read a bank written by :meth:`save`."""
        with np.load(path) as data:
            texts = PackedStrings([])
            texts.data, texts.offsets = data["text_data"], data["text_offsets"]
            return cls(data["ids"], data["token_start"], data["first"], texts, int(data["pad_id"]))


def bank_key(
    cohort: CachedCohort, indices: np.ndarray, mode: str, tokenizer: Any, max_length: int,
    label_prompts: int = 0, labels: np.ndarray | None = None,
) -> str:  # fmt: skip
    """A digest of everything a bank depends on: cache, items, text mode, tokenizer vocabulary and kind (assertion
    marks or not), length, and the label prompts with the labels they are written from."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    for part in (cohort.key, mode, max_length, vocabulary, type(tokenizer).__name__, label_prompts):
        digest.update(repr(part).encode())
    digest.update(np.asarray(indices, dtype=np.int64).tobytes())
    if label_prompts and labels is not None:
        digest.update(np.ascontiguousarray(labels, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def token_bank(
    cohort: CachedCohort, indices: np.ndarray, mode: str, tokenizer: Any, max_length: int,
    label_prompts: int = 0, labels: np.ndarray | None = None,
) -> TokenBank:  # fmt: skip
    """The bank of ``indices``' candidate texts (``mode``: ``sentence`` or ``report``), each item with
    ``label_prompts`` more candidates written from its ``labels`` row (:mod:`medvl.text.label_prompts`; the
    cache's labels when None)."""
    texts = [candidates(cached_report_text(cohort, i), mode) for i in indices]
    if label_prompts:
        from medvl.text.label_prompts import LabelPrompts

        writer = LabelPrompts()
        rows = cohort.item_labels(indices) if labels is None else labels
        for item, (i, row) in enumerate(zip(indices, rows, strict=True)):
            rng = np.random.default_rng([int(i), label_prompts])
            named = dict(zip(cohort.label_space, row.tolist(), strict=True))
            written = [writer.write(named, rng) for _ in range(label_prompts)]
            texts[item] += [text for text in written if text]
    return TokenBank.build(texts, tokenizer, max_length)



@dataclass
class PolarityBank:
    """Token ids of every (statement, negation) pair of the polarity loss, and which label column each finding
    is; :meth:`draw` picks one pair per finding for a batch.

    Attributes:
        tokens: a bank whose item ``k`` is pair ``k`` (candidate 0 the statement, 1 its negation).
        columns: label-space column of each finding with pairs; ``start`` / ``stop``: its pairs' range.
    """

    tokens: TokenBank
    columns: np.ndarray
    start: np.ndarray
    stop: np.ndarray

    @classmethod
    def build(
        cls, label_space: Sequence[str], tokenizer: Any, max_length: int, labels: np.ndarray | None = None
    ) -> PolarityBank:
        """Pairs for every finding of ``label_space`` that :class:`medvl.text.label_prompts.LabelPrompts` knows and,
        when the training ``labels`` ``(N, P)`` are given, that at least one training item has (a finding never
        present teaches the image nothing about it).

        Raises:
            ConfigError: no finding is left with statements.
        """
        from medvl.text.label_prompts import LabelPrompts

        names = list(label_space)
        if labels is not None:
            names = [n for j, n in enumerate(names) if (np.asarray(labels)[:, j] == 1).any()]
        pairs = LabelPrompts().statement_pairs(names)
        if not pairs:
            raise ConfigError(
                f"the polarity loss (loss.weights.polarity) has no finding to train: no training study is labelled "
                f"present for any finding of {list(label_space)} that it has statements for; train such data with "
                "model.overrides.loss.weights.polarity=0"
            )
        sizes = [len(v) for v in pairs.values()]
        stop = np.cumsum(sizes)
        flat = [list(pair) for name in pairs for pair in pairs[name]]
        columns = np.array([list(label_space).index(name) for name in pairs], dtype=np.int64)
        return cls(TokenBank.build(flat, tokenizer, max_length), columns, stop - np.asarray(sizes), stop)

    def draw(self, labels: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For a batch's ``(B, P)`` labels and item seeds: ``input_ids`` and ``attention_mask`` ``(2F, T)`` (one
        statement per finding, then one negation per finding) and ``targets`` ``(B, F)`` (0 present, 1 absent or
        not mentioned, -100 uncertain).

        The statement and the negation are drawn independently (wording and term) from the batch's first seed: the
        two sides of a zero-shot prompt pair are worded differently too ("findings consistent with X" / "no
        evidence of X"), so the decision must rest on the negation, not on the words around it.
        """
        findings = len(self.columns)
        u = seed_uniforms(np.asarray(seeds)[:1], 2 * findings, stream=STREAM_POLARITY)[0]
        count = np.tile(self.stop - self.start, 2)
        pair = np.tile(self.start, 2) + np.minimum((u * count).astype(np.int64), count - 1)
        first = self.tokens.first[pair]
        input_ids, attention_mask = self.tokens.batch(np.concatenate([first[:findings], first[findings:] + 1]))
        value = labels[:, self.columns]
        targets = np.where(value == 1, 0, np.where(value == -1, -100, 1)).astype(np.int64)
        return input_ids, attention_mask, targets
