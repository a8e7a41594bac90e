"""The concept vocabulary of ConceptCLIP-style patch-concept alignment.

The vocabulary is the lexicon concepts that the training reports mention (most frequent first). A report's
target for a concept is 1 when it asserts the concept (a mention that is neither negated nor uncertain) and 0
otherwise; uncertain-only mentions are left out of the loss (NaN).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from medvl.text.lexicon import Lexicon


@dataclass
class ConceptVocabulary:
    """Concept names (the texts the text encoder embeds) and the lexicon that finds them in reports."""

    names: list[str]
    lexicon: Lexicon

    @classmethod
    def from_reports(
        cls, reports: Sequence[str], lexicon: Lexicon | None = None, max_concepts: int = 64, categories: Sequence[str] | None = None
    ) -> ConceptVocabulary:
        """The ``max_concepts`` concepts asserted most often in ``reports`` (of the lexicon ``categories`` only,
        e.g. ``["finding"]``, when given)."""
        lexicon = lexicon or Lexicon.default()
        counts: Counter[str] = Counter()
        for text in reports:
            counts.update({m.concept.name for m in lexicon.extract(text)
                           if not (m.negated or m.uncertain) and (categories is None or m.concept.category in categories)})  # fmt: skip
        if not counts:
            raise ValueError("no lexicon concept is asserted in the training reports; drop the concept loss term")
        return cls([name for name, _ in counts.most_common(max_concepts)], lexicon)

    def for_observation(self, observation: str) -> str | None:
        """The most often asserted concept whose parent observation is ``observation`` (None when there is none)."""
        children = {c.name for c in self.lexicon.children(observation)}
        return next((name for name in self.names if name in children), None)

    def targets(self, reports: Sequence[str]) -> torch.Tensor:
        """``(B, C)`` float targets: 1 asserted, 0 absent or negated, NaN uncertain-only."""
        index = {name: j for j, name in enumerate(self.names)}
        out = torch.zeros(len(reports), len(self.names))
        for i, text in enumerate(reports):
            for mention in self.lexicon.extract(text):
                j = index.get(mention.concept.name)
                if j is None:
                    continue
                if not (mention.negated or mention.uncertain):
                    out[i, j] = 1.0
                elif mention.uncertain and out[i, j] == 0:
                    out[i, j] = float("nan")
        return out
