"""Assertion marks: absent and uncertain findings written as words of their own before tokenisation.

A small text encoder trained from scratch learns which findings a report names long before it learns what ``no``,
``free of`` or ``cannot be excluded`` do to them, so "There is no pneumothorax." and "Pneumothorax is present." end
up close and zero-shot polarity flips from seed to seed (docs/pretraining.md). With marks on, the labeller's
NegEx-style scopes (:mod:`medvl.text.assertion`) decide each mention's status first, and every word of an absent
mention gets the prefix ``neg`` and of an uncertain one ``unc``: "no pleural effusion" becomes
"no negpleural negeffusion", whatever the phrasing of the negation. The text encoder then sees the polarity in
the word itself. The same marks are applied to training texts, the tokenizer's corpus and every text the model
encodes later (prompts, queries), so they must be a property of the model (``text.assertion_marks``); they suit a
tokenizer trained on marked text, not a pretrained tower's vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from medvl.text.assertion import ABSENT, UNCERTAIN
from medvl.text.labeller import Labeller
from medvl.text.labels import LabelSpace

PREFIXES = {ABSENT: "neg", UNCERTAIN: "unc"}
_WORD = re.compile(r"\w+")


@lru_cache(maxsize=1)
def _labeller() -> Labeller:
    return Labeller(LabelSpace.chest_abdomen_ct())


def mark_assertions(text: str) -> str:
    """``text`` with each word of an absent or uncertain finding mention prefixed (see the module docstring)."""
    pieces, cursor = [], 0
    for mention in _labeller().mentions(text):
        prefix = PREFIXES.get(mention.status)
        if prefix is None or mention.start < cursor:
            continue
        pieces += [text[cursor : mention.start], _WORD.sub(lambda w, p=prefix: p + w.group(0).lower(), mention.text)]
        cursor = mention.end
    return "".join([*pieces, text[cursor:]])


def mark_all(texts: Iterable[str]) -> list[str]:
    """:func:`mark_assertions` of each text."""
    return [mark_assertions(text) for text in texts]


class MarkingTokenizer:
    """A Hugging Face tokenizer that marks assertions in its input first; every other attribute is the wrapped
    tokenizer's (``pad_token_id``, ``save_pretrained``...)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str | list[str], *args: Any, **kwargs: Any) -> Any:
        """Tokenise the marked text(s) with the wrapped tokenizer's arguments."""
        marked = mark_assertions(text) if isinstance(text, str) else mark_all(text)
        return self.tokenizer(marked, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tokenizer, name)
