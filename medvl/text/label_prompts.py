"""Label prompts: short training texts stated from a study's labels, as CXR-CLIP adds to its report texts.

A study labelled with cardiomegaly (1) and no pleural effusion (0) may get "Enlarged heart is present. Pleural
effusion is absent." Every positive finding gets a sentence, and up to ``max_negatives`` of its other findings a
denial (those labelled 0 and those the report does not mention, NaN, as CheXpert's "blank means negative"; never
uncertain ones), in a seeded random order, term and template. Drawing denials from every finding, not only the
ones a report denies, matters: reports deny pertinent negatives mostly in abnormal studies, so denials drawn from
them alone would teach "no ..." as a sign of disease. Trained alongside the reports, they show a
small text encoder a finding's name with and without its negation on equal terms, which the reports alone do
not (they write "no pneumothorax" far more often than "pneumothorax").

The templates differ from the zero-shot prompt ensembles (:data:`medvl.text.prompts.POSITIVE_TEMPLATES`), so
those stay held-out phrasings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from medvl.text.labels import NO_FINDING_RULE, LabelSpace
from medvl.text.lexicon import Lexicon
from medvl.text.prompts import prompt_terms

POSITIVE = ("{term} is present", "{term} is seen", "the image demonstrates {term}", "{term} is identified")
NEGATIVE = ("{term} is absent", "{term} is not seen", "negative for {term}", "without sign of {term}")
POLARITY_PAIRS = (
    ("{term} is seen", "{term} is not seen"),
    ("{term} is identified", "{term} is not identified"),
    ("the image shows {term}", "the image shows no {term}"),
    ("there are signs of {term}", "there are no signs of {term}"),
)
"""Minimal pairs for the polarity loss: statement and negation share every word but the negation, so over all
pairs the words around a finding say nothing of its polarity (with "is present" / "is absent" a text encoder can
decide by those words, which zero-shot prompts do not share). The loss's batches draw a finding's statement and
negation from different pairs (:meth:`medvl.train.text_ids.PolarityBank.draw`)."""
NORMAL = ("the study is normal", "no abnormality is identified", "the lungs and heart are unremarkable")
MAX_TERMS = 3


class LabelPrompts:
    """Writes label prompts for one label space (terms from the lexicon and the observations' synonyms)."""

    def __init__(self, label_space: LabelSpace | None = None, lexicon: Lexicon | None = None) -> None:
        space = label_space or LabelSpace.chest_abdomen_ct()
        lexicon = lexicon if lexicon is not None else Lexicon.default()
        self.normal = {o.name for o in space if o.rule == NO_FINDING_RULE}
        self.terms = {o.name: (prompt_terms(o, lexicon)[:MAX_TERMS] or [o.name.lower()]) for o in space}

    def write(self, labels: Mapping[str, float], rng: np.random.Generator, max_negatives: int = 2) -> str:
        """A label prompt for one study (``labels``: observation -> 1, 0, -1 or NaN; unknown names ignored)."""
        positive = [n for n, v in labels.items() if v == 1 and n in self.terms and n not in self.normal]
        negative = [n for n, v in labels.items() if (v == 0 or v != v) and n in self.terms and n not in self.normal]
        chosen = rng.permutation(negative)[:max_negatives].tolist() if negative else []
        sentences = [self._sentence(n, POSITIVE, rng) for n in positive]
        sentences += [self._sentence(n, NEGATIVE, rng) for n in chosen]
        if not positive and any(labels.get(n) == 1 for n in self.normal):
            sentences.append(str(rng.choice(NORMAL)))
        order = rng.permutation(len(sentences))
        return " ".join(_capitalised(sentences[i]) for i in order)

    def statement_pairs(self, names: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """For each finding of ``names`` the writer knows (not No Finding): every (statement, negation) pair of
        its terms and :data:`POLARITY_PAIRS`, e.g. ("Pleural effusion is seen.", "Pleural effusion is not
        seen."), for the polarity loss (:func:`medvl.losses.polarity_loss`)."""
        pairs = {}
        for name in names:
            if name in self.terms and name not in self.normal:
                pairs[name] = [(_capitalised(p.format(term=term)), _capitalised(n.format(term=term)))
                               for term in self.terms[name] for p, n in POLARITY_PAIRS]  # fmt: skip
        return pairs

    def _sentence(self, name: str, templates: Sequence[str], rng: np.random.Generator) -> str:
        return str(rng.choice(templates)).format(term=str(rng.choice(self.terms[name])))


def _capitalised(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:] + "."
