"""The concept vocabulary of ConceptCLIP-style patch-concept alignment.

The vocabulary is the lexicon concepts that the training reports mention (most frequent first). A report's
target for a concept is 1 when it asserts the concept (a mention that is neither negated nor uncertain) and 0
otherwise; uncertain-only mentions are left out of the loss (NaN). With a :class:`Labeller`, an observation the
labeller finds (its patterns read phrasings the lexicon has no single term for, such as "hypodense lesion in
the right hepatic lobe") counts as a mention of the vocabulary's concept for that observation
(:meth:`ConceptVocabulary.for_observation`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from medvl.text.assertion import ABSENT, PRESENT, UNCERTAIN
from medvl.text.key_images import sentence_key_images
from medvl.text.labeller import Labeller
from medvl.text.lexicon import Lexicon


@dataclass
class ConceptVocabulary:
    """Concept names (the texts the text encoder embeds), the lexicon that finds them in reports and, optionally,
    a labeller whose observations stand for their concepts."""

    names: list[str]
    lexicon: Lexicon
    labeller: Labeller | None = None

    @classmethod
    def from_reports(
        cls,
        reports: Sequence[str],
        lexicon: Lexicon | None = None,
        max_concepts: int = 64,
        categories: Sequence[str] | None = None,
        labeller: Labeller | None = None,
    ) -> ConceptVocabulary:
        """The ``max_concepts`` concepts asserted most often in ``reports`` (of the lexicon ``categories`` only,
        e.g. ``["finding"]``, when given); ``labeller`` also finds them (see the module docstring)."""
        lexicon = lexicon or Lexicon.default()
        counts: Counter[str] = Counter()
        for text in reports:
            counts.update({m.concept.name for m in lexicon.extract(text)
                           if not (m.negated or m.uncertain) and (categories is None or m.concept.category in categories)})  # fmt: skip
        if not counts:
            raise ValueError("no lexicon concept is asserted in the training reports; drop the concept loss term")
        return cls([name for name, _ in counts.most_common(max_concepts)], lexicon, labeller)

    def for_observation(self, observation: str) -> str | None:
        """The most often asserted concept whose parent observation is ``observation`` (None when there is none)."""
        children = {c.name for c in self.lexicon.children(observation)}
        return next((name for name in self.names if name in children), None)

    def mentions(self, text: str) -> list[tuple[int, int, int]]:
        """``(concept index, character offset, status)`` of every mention of a vocabulary concept in ``text``;
        status 1 asserted, 0 negated, -1 uncertain."""
        index = {name: j for j, name in enumerate(self.names)}
        found = [(index[m.concept.name], m.start, ABSENT if m.negated else UNCERTAIN if m.uncertain else PRESENT)
                 for m in self.lexicon.extract(text) if m.concept.name in index]  # fmt: skip
        if self.labeller is not None:
            for mention in self.labeller.mentions(text):
                name = self.for_observation(mention.observation)
                if name is not None:
                    found.append((index[name], mention.start, mention.status))
        return found

    def targets(self, reports: Sequence[str]) -> torch.Tensor:
        """``(B, C)`` float targets: 1 asserted, 0 absent or negated, NaN uncertain-only."""
        out = torch.zeros(len(reports), len(self.names))
        for i, text in enumerate(reports):
            for j, _, status in self.mentions(text):
                if status == PRESENT:
                    out[i, j] = 1.0
                elif status == UNCERTAIN and out[i, j] == 0:
                    out[i, j] = float("nan")
        return out

    def key_images(self, reports: Sequence[str]) -> torch.Tensor:
        """``(B, C)`` long: the image number a report cites in a sentence asserting the concept
        (:mod:`medvl.text.key_images`), 0 where it cites none."""
        out = torch.zeros(len(reports), len(self.names), dtype=torch.long)
        for i, text in enumerate(reports):
            cited = sentence_key_images(text)
            for j, offset, status in self.mentions(text) if cited else ():
                number = next((n for start, end, n in cited if start <= offset < end), 0)
                if status == PRESENT and number and not out[i, j]:
                    out[i, j] = number
        return out
