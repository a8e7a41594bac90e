"""A curated radiology concept lexicon and concept-mention extraction.

Concepts (anatomy, findings, devices, descriptors) carry a UMLS CUI where one was verified, a preferred name,
synonyms and the CheXpert observation they belong to. :meth:`Lexicon.extract` finds mentions with character
offsets and their assertion status; :meth:`Lexicon.token_spans` maps them to the tokens of a Hugging Face fast
tokenizer. Used by concept-aligned pretraining, the review app's attribution and the labeller's No Finding rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from medvl.text.assertion import ABSENT, UNCERTAIN, AssertionContext
from medvl.text.errors import LabelSpaceError
from medvl.text.patterns import PhraseIndex, TextWords, phrase_words, words

CATEGORIES = ("anatomy", "finding", "device", "descriptor")
DEFAULT_YAML = "lexicon.yaml"
_CUI = re.compile(r"^C\d{7}$")


@dataclass(frozen=True)
class Concept:
    """One lexicon concept.

    Attributes:
        cui: UMLS concept id (``C0018800``) or None where none was verified.
        name: preferred name.
        synonyms: other surface forms (the preferred name is matched too).
        category: ``anatomy``, ``finding``, ``device`` or ``descriptor``.
        parent_observation: the CheXpert observation the concept belongs to, or None.
    """

    cui: str | None
    name: str
    synonyms: tuple[str, ...]
    category: str
    parent_observation: str | None = None

    @property
    def surface_forms(self) -> tuple[str, ...]:
        """The preferred name followed by the synonyms, without duplicates."""
        return tuple(dict.fromkeys((self.name, *self.synonyms)))


@dataclass(frozen=True)
class ConceptMention:
    """A concept found in a text.

    Attributes:
        concept: the concept.
        start, end: character offsets (``text[start:end]`` is the mention).
        text: the mention as written.
        negated: an assertion cue says it is absent ("no effusion").
        uncertain: a cue says it is uncertain ("possible effusion").
    """

    concept: Concept
    start: int
    end: int
    text: str
    negated: bool = False
    uncertain: bool = False


@dataclass(frozen=True)
class TokenSpan:
    """A concept mention with the tokens that cover it: ``input_ids[token_start:token_end]``."""

    mention: ConceptMention
    token_start: int
    token_end: int


class Lexicon:
    """A set of concepts with a compiled matcher (longest surface form wins at each position).

    Args:
        concepts: the concepts; surface forms shared by two concepts go to the first one.
    """

    def __init__(self, concepts: Sequence[Concept]) -> None:
        self.concepts = tuple(concepts)
        self._index = PhraseIndex()
        seen: set[tuple[str, ...]] = set()
        for i, concept in enumerate(self.concepts):
            for form in concept.surface_forms:
                key = tuple(phrase_words(form))
                if key not in seen:
                    seen.add(key)
                    self._index.add(form, i)

    def __len__(self) -> int:
        return len(self.concepts)

    def __iter__(self):
        return iter(self.concepts)

    @classmethod
    def default(cls) -> Lexicon:
        """The lexicon shipped with medvl (``medvl/text/data/lexicon.yaml``)."""
        text = files("medvl.text.data").joinpath(DEFAULT_YAML).read_text(encoding="utf-8")
        return cls(_concepts(yaml.safe_load(text), "default lexicon"))

    @classmethod
    def from_yaml(cls, path: str | Path, extend: bool = True) -> Lexicon:
        """Load concepts from YAML (``concepts: [...]``); ``extend=True`` adds them to :meth:`default`.

        Raises:
            LabelSpaceError: the file is missing, not YAML, or a concept breaks the schema.
        """
        path = Path(path)
        if not path.is_file():
            raise LabelSpaceError(path, "no such lexicon file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise LabelSpaceError(path, f"not valid YAML ({exc})") from exc
        loaded = _concepts(data, str(path))
        return cls([*loaded, *cls.default().concepts] if extend else loaded)

    def by_category(self, category: str) -> list[Concept]:
        """Concepts of one category."""
        return [c for c in self.concepts if c.category == category]

    def children(self, observation: str) -> list[Concept]:
        """Concepts whose parent observation is ``observation``."""
        return [c for c in self.concepts if c.parent_observation == observation]

    def find(self, text: str, tokens: TextWords | None = None) -> list[tuple[Concept, int, int]]:
        """``(concept, start, end)`` of every concept mention, without assertion status (fast path).

        Args:
            text: the text.
            tokens: ``medvl.text.patterns.words(text)`` when the caller already has them.
        """
        return [(self.concepts[i], start, end) for start, end, i in self._index.find_longest(text, tokens)]

    def extract(self, text: str, context: AssertionContext | None = None) -> list[ConceptMention]:
        """Concept mentions in ``text`` with offsets and negation / uncertainty.

        Args:
            text: the text.
            context: a prebuilt :class:`AssertionContext` for ``text`` (built here when omitted).
        """
        tokens = words(text)
        found = self.find(text, tokens)
        context = context or AssertionContext(text, [(s, e) for _, s, e in found], tokens)
        mentions = []
        for concept, start, end in found:
            status = context.status(start, end)
            mentions.append(
                ConceptMention(concept, start, end, text[start:end], status == ABSENT, status == UNCERTAIN)
            )
        return mentions

    def token_spans(self, text: str, tokenizer: Any, add_special_tokens: bool = True) -> list[TokenSpan]:
        """Mentions of :meth:`extract` with the token range covering each, for a Hugging Face fast tokenizer.

        Token indices refer to ``tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]``.
        Mentions cut off by truncation are dropped.

        Raises:
            TypeError: the tokenizer cannot return offsets (not a fast tokenizer).
        """
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("token_spans needs a fast (Rust-backed) tokenizer that returns offset mappings")
        encoding = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        offsets = [(s, e) for s, e in encoding["offset_mapping"]]
        spans = []
        for mention in self.extract(text):
            covering = [i for i, (s, e) in enumerate(offsets) if e > s and s < mention.end and e > mention.start]
            if covering:
                spans.append(TokenSpan(mention, covering[0], covering[-1] + 1))
        return spans


def _concepts(data: Any, source: str) -> list[Concept]:
    """Validate the parsed YAML ``{"concepts": [...]}`` and build the concepts."""
    if not isinstance(data, Mapping) or not isinstance(data.get("concepts"), list):
        raise LabelSpaceError(source, "expected a mapping with a 'concepts' list")
    concepts = []
    for i, entry in enumerate(data["concepts"]):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise LabelSpaceError(source, f"concepts[{i}]: needs a non-empty string 'name'")
        where = f"concept '{entry['name']}'"
        cui = entry.get("cui")
        if cui is not None and not (isinstance(cui, str) and _CUI.match(cui)):
            raise LabelSpaceError(source, f"{where}: 'cui' must look like C0123456 or be null, got {cui!r}")
        category = entry.get("category")
        if category not in CATEGORIES:
            raise LabelSpaceError(source, f"{where}: 'category' must be one of {CATEGORIES}, got {category!r}")
        synonyms = entry.get("synonyms") or []
        if not isinstance(synonyms, list) or not all(isinstance(s, str) and s.strip() for s in synonyms):
            raise LabelSpaceError(source, f"{where}: 'synonyms' must be a list of non-empty strings")
        parent = entry.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise LabelSpaceError(source, f"{where}: 'parent' must be an observation name or null")
        concepts.append(Concept(cui, entry["name"].strip(), tuple(s.strip() for s in synonyms), category, parent))
    return concepts
