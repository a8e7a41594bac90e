"""Assertion status of a mention (present, absent, uncertain) from negation and uncertainty cues.

A NegEx-style rule set working on character spans, built once per text:

- *pre* cues (``no``, ``without``, ``free of``, ``negative for``, ``no evidence of``; ``may``, ``possible``,
  ``suggestive of``, ``cannot exclude``...) act on mentions after them (or inside them: ``heart is not enlarged``);
  negated verbs (``does not demonstrate``, ``does not appear to be``) are pre cues, so their verb ends no scope;
- *historical* pre cues (``history of``) mark a mention as absent from the current study;
- *post* cues (``has resolved``, ``is not seen``; ``cannot be excluded``, ``is suspected``...) act on mentions
  before them;
- *two-sided* cues (``versus``, ``vs``, ``and/or``, ``?``, ``suspected``; ``unlikely``, ``essentially resolved``)
  act on both sides;
- *pseudo* cues (``no change in``, ``no increase in``, ``not only``...) look like cues but assert nothing, so
  ``no change in the effusion`` leaves the effusion present, ``partially resolved`` keeps it present, and
  ``consistent with`` / ``compatible with`` / ``to suggest`` keep an earlier cue's scope open;
- a scope ends at the sentence end, at a terminator (``but``, ``however``, ``although``, ``except``, ``aside
  from``, ``other than``, ``;``...) and at a finite verb outside any mention or cue (``No pneumothorax is seen
  and the effusion is larger``: ``is`` closes the scope of ``no``);
- the nearest applicable post cue wins, else the nearest pre cue; two negations in a row cancel (``not free
  of``, ``not without``).

Statuses are :data:`PRESENT` (1), :data:`ABSENT` (0) and :data:`UNCERTAIN` (-1), the CheXpert values.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from medvl.text.patterns import Alternation, TextWords, expand_leading_group
from medvl.text.sentences import sentence_spans

PRESENT, ABSENT, UNCERTAIN = 1, 0, -1

_SEEN = (
    r"(?:seen|identified|visualized|visualised|present|evident|appreciated|demonstrated|detected|noted|visible|"
    r"apparent|observed)"
)
# Every cue starts with a literal word (or is punctuation), so it can be looked up by its first letter.
# Post cues absorb an auxiliary right before them (``has resolved``, ``is not seen``): see _AUXILIARY_BEFORE.
CUES: dict[str, tuple[str, ...]] = {
    "pre_neg": (
        r"no",
        r"not",
        r"without",
        r"free of",
        r"clear of",
        r"negative for",
        r"absence of",
        r"never",
        r"neither",
        r"nor",
        r"rather than",
        r"resolution of",
        r"interval resolution of",
        r"complete resolution of",
        r"no (?:\w+ )?(?:evidence|signs?|findings?|indication|suggestion) (?:of|for|to suggest)",
        r"no (?:definite|convincing|visible|significant|suspicious|focal|acute|other|additional)",
        r"without (?:\w+ )?(?:evidence|signs?|findings?) of",
        r"no longer",
        r"(?:does|do|did) not (?:appear to (?:be|have)|appear|demonstrate|show|reveal|suggest|indicate)",
    ),
    "post_neg": (
        r"(?:resolved|cleared|absent|gone|removed|withdrawn|excluded|ruled out)",
        r"(?:not|no longer) (?:be )?(?:(?!definitely|clearly)\w+ly )?" + _SEEN,
        r"negative",
        r"within (?:the )?(?:normal limits|limits of normal)",
    ),
    "pre_unc": (
        r"may",
        r"might",
        r"could",
        r"possible",
        r"possibly",
        r"possibility of",
        r"probable",
        r"probably",
        r"likely",
        r"most likely",
        r"more likely",
        r"presumed",
        r"presumably",
        r"perhaps",
        r"questionable",
        r"question of",
        r"suspicion (?:for|of)",
        r"favor(?:s|ed|ing)?",
        r"favour(?:s|ed|ing)?",
        r"borderline",
        r"suggestive of",
        r"suggesting",
        r"suggests",
        r"suggest",
        r"suggestion of",
        r"(?:suspicious|concerning|worrisome) for",
        r"concern for",
        r"differential(?: diagnosis| diagnoses| considerations?)?(?: (?:includes?|including|is|are|of))?",
        r"(?:cannot|can not|can't|could not|unable to) (?:entirely |completely |totally )?(?:exclude|rule out)",
        r"rule out",
        r"to (?:rule out|evaluate for|assess for|exclude|identify|detect|look for)",
        r"exclude",
        r"evaluate for",
        r"evaluation (?:for|of)",
        r"assess for",
        r"r/o",
        r"no new",
        r"no new (?:area|areas|focus|foci) of",
        r"alternatively",
        r"(?:correlate|correlation) (?:clinically )?(?:for|to exclude|to evaluate for)",
        r"clinical correlation (?:for|to exclude|to evaluate for)",
    ),
    "wide_unc": (
        r"in (?:the|an|a) (?:appropriate|correct|right|proper|suitable) clinical (?:setting|context|scenario|situation)",
    ),
    "post_unc": (
        r"(?:cannot|can not|can't|could not) (?:be )?(?:entirely |completely |totally )?(?:excluded|ruled out)",
        r"not (?:entirely |completely |totally |definitely )?(?:excluded|ruled out)",
        r"difficult to exclude",
        r"(?:is|are|was|were) (?:\w+ly )?(?:possible|questioned|probable|likely|a consideration|a possibility|considered)",
        r"(?:is|are|was|were|remains?) (?:also )?(?:another|an additional|a further|a) (?:consideration|possibility)",
        r"(?:would|could|might|may) (?:also )?be (?:another|an additional|a further|a) (?:consideration|possibility)",
        r"not (?:definitely|well|clearly)[ -](?:seen|identified|visualized|excluded)",
    ),
    "both_neg": (r"unlikely", r"less likely", r"(?:essentially|completely) (?:resolved|cleared)"),
    "pre_hist": (r"(?:history|hx) of", r"(?:known|prior|remote) (?:history|hx) of", r"h/o"),
    "both_unc": (r"versus", r"vs\.?", r"and/or", r"\?", r"suspected", r"equivocal"),
    "pseudo": (
        r"no (?:significant |appreciable |substantial )?(?:interval )?(?:change|increase|decrease|enlargement)"
        r"(?: in| of)?",
        r"not (?:significantly |appreciably )?(?:changed|increased|decreased)",
        r"without (?:significant |appreciable )?(?:interval )?change(?: in| of)?",
        r"not only",
        r"gram negative",
        r"no further",
        r"not necessarily",
        r"not been",
        r"(?:partially|partly|incompletely|not completely|not entirely|not fully) (?:resolved|cleared)",
        r"(?:almost|nearly|largely) (?:completely )?(?:resolved|cleared)",
        r"to suggest",
        r"(?:compatible|consistent|in keeping) with",
    ),
    "term": (
        r";",
        r":",
        r"but",
        r"however",
        r"although",
        r"though",
        r"except(?: for)?",
        r"with the exception of",
        r"aside from",
        r"apart from",
        r"other than",
        r"besides",
        r"whereas",
        r"while",
        r"yet",
        r"nevertheless",
        r"nonetheless",
        r"otherwise",
        r"with",
    ),
}
_AUXILIARY_BEFORE = re.compile(
    r"(?:\b(?:is|are|was|were|has|have|had|has been|have been|had been|been|to be|appears?|remains?)\s+)(?:\w+ly\s+)?$",
    re.IGNORECASE,
)
_NEGATION = frozenset({"pre_neg", "post_neg", "both_neg"})
_POST_KINDS = frozenset({"post_neg", "post_unc", "both_neg", "both_unc"})
_PRE_KINDS = frozenset({"pre_neg", "pre_unc", "pre_hist", "both_neg", "both_unc", "wide_unc"})
# Pre cues whose scope a finite verb does not end (it still ends at a terminator or the sentence end): a
# sentence-level hedge such as "In the appropriate clinical setting, this is compatible with pneumonia".
_WIDE_KINDS = frozenset({"wide_unc"})
_STATUS = {"neg": ABSENT, "unc": UNCERTAIN, "hist": ABSENT}


def _cue_matcher() -> tuple[Alternation, list[tuple[str, str]]]:
    """All cues as one alternation, longest regex first; returns it with the ``(kind, regex)`` of each entry."""
    expanded = [(kind, alt) for kind, regexes in CUES.items() for regex in regexes for alt in expand_leading_group(regex)]
    entries = sorted(expanded, key=lambda e: -len(e[1]))
    regexes = [regex + r"(?![\w/])" if regex[-1] not in ";:?" else regex for _, regex in entries]
    return Alternation(regexes), entries


_CUE_MATCHER, _CUE_ENTRIES = _cue_matcher()
_FINITE_VERB = re.compile(
    r"\b(?:is|are|was|were|has|have|had|persists?|remains?|appears?|demonstrates?|shows?|reveals?|measures?)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Cue:
    """A cue found in the text: ``kind`` is a key of :data:`CUES`."""

    kind: str
    start: int
    end: int


class AssertionContext:
    """Cues, sentences and clause breaks of one text, to decide the status of any of its spans.

    Args:
        text: the text the spans refer to.
        mention_spans: all mention spans of the text; verbs inside them do not end a scope.
        tokens: ``medvl.text.patterns.words(text)`` when the caller already has them.
    """

    def __init__(
        self, text: str, mention_spans: Sequence[tuple[int, int]] = (), tokens: TextWords | None = None
    ) -> None:
        self.text = text
        self.sentences = sentence_spans(text)
        self._sentence_starts = [start for start, _ in self.sentences]
        self.cues = [self._cue(match) for match in _CUE_MATCHER.matches(text, tokens)]
        self._cue_starts = [c.start for c in self.cues]
        covered = _merge([*mention_spans, *((c.start, c.end) for c in self.cues)])
        self._verbs = [v.start() for v in _FINITE_VERB.finditer(text) if not _inside(v.start(), covered)]
        self._mention_starts = sorted(start for start, _ in mention_spans)

    def _cue(self, match: tuple[int, int, int]) -> Cue:
        """A matched cue, with a post cue's leading auxiliary absorbed (``has resolved``)."""
        start, end, index = match
        kind = _CUE_ENTRIES[index][0]
        if kind.startswith(("post", "both")):
            auxiliary = _AUXILIARY_BEFORE.search(self.text, max(0, start - 30), start)
            if auxiliary is not None:
                start = auxiliary.start()
        return Cue(kind, start, end)

    def status(self, start: int, end: int) -> int:
        """:data:`PRESENT`, :data:`ABSENT` or :data:`UNCERTAIN` for the mention at ``text[start:end]``."""
        s_start, s_end = self._sentence_of(start)
        first = bisect.bisect_left(self._cue_starts, s_start)
        last = bisect.bisect_left(self._cue_starts, s_end)
        cues = self.cues[first:last]
        left = max([c.end for c in cues if c.kind == "term" and c.end <= start] or [s_start])
        right = min([c.start for c in cues if c.kind == "term" and c.start >= end] or [s_end])
        post = [
            c
            for c in cues
            if c.kind in _POST_KINDS and end <= c.start and c.end <= right and not self._verb_between(end, c.start)
        ]
        if post:
            return _STATUS[min(post, key=lambda c: c.start).kind.rsplit("_", 1)[1]]
        pre = [
            c
            for c in cues
            if c.kind in _PRE_KINDS
            and left <= c.start
            and c.end <= end
            and (c.kind in _WIDE_KINDS or not self._verb_between(c.end, start))
        ]
        if not pre:
            return PRESENT
        nearest = max(pre, key=lambda c: c.end)
        if nearest.kind in _NEGATION and self._double_negation(nearest, pre):
            return PRESENT
        return _STATUS[nearest.kind.rsplit("_", 1)[1]]

    def _sentence_of(self, index: int) -> tuple[int, int]:
        i = bisect.bisect_right(self._sentence_starts, index) - 1
        if i < 0:
            return (0, len(self.text))
        return self.sentences[i]

    def _verb_between(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self._verbs, start)
        return i < len(self._verbs) and self._verbs[i] < end

    def _double_negation(self, nearest: Cue, pre: list[Cue]) -> bool:
        """``not without X``, ``not free of X``: a negation right before the nearest one cancels it."""
        for cue in pre:
            if cue.kind in _NEGATION and cue.end <= nearest.start:
                gap = self.text[cue.end : nearest.start]
                i = bisect.bisect_left(self._mention_starts, cue.end)
                no_mention = i == len(self._mention_starts) or self._mention_starts[i] >= nearest.start
                if len(gap.split()) <= 1 and no_mention:
                    return True
        return False


def _merge(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint union of ``spans``."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _inside(index: int, disjoint: Sequence[tuple[int, int]]) -> bool:
    """Whether ``index`` falls in one of the sorted, disjoint ``spans``."""
    i = bisect.bisect_right(disjoint, (index, float("inf"))) - 1
    return i >= 0 and disjoint[i][0] <= index < disjoint[i][1]
