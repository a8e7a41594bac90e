"""Rule-based findings labeller: per report, 1 / 0 / -1 for each mentioned observation of a label space.

Mentions are found with each observation's synonyms (with morphology) and patterns; their status comes from
:mod:`medvl.text.assertion` (negation, uncertainty, scope) unless an ``absent`` / ``uncertain`` pattern fixes it.
Per observation, the mentions are aggregated as CheXpert does: any present -> 1, else any uncertain -> -1,
else 0. ``No Finding`` is 1 when no observation that blocks it is present or uncertain and no abnormal
``finding`` concept of the lexicon is present or uncertain (support devices do not block it).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from tqdm import tqdm

from medvl.text.assertion import ABSENT, PRESENT, UNCERTAIN, AssertionContext
from medvl.text.labels import NO_FINDING_RULE, LabelSpace, Observation
from medvl.text.lexicon import Lexicon
from medvl.text.patterns import Alternation, PhraseIndex, TextWords, words

_FIXED_STATUS = {"absent": ABSENT, "uncertain": UNCERTAIN}
_PHRASE_KINDS = frozenset({"synonym", "exclude"})


@dataclass(frozen=True)
class Mention:
    """One mention of an observation, for explanations.

    Attributes:
        observation: the observation's name.
        start, end: character offsets in the labelled text.
        text: the mention as written.
        status: 1 present, 0 absent, -1 uncertain.
        kind: how it was found: ``synonym``, ``pattern``, ``absent`` or ``uncertain`` (the last two fix the status).
    """

    observation: str
    start: int
    end: int
    text: str
    status: int
    kind: str


class _Vocabulary:
    """The label space's phrases in one index and each observation's regexes in one alternation."""

    def __init__(self, observations: list[Observation]) -> None:
        self.phrases = PhraseIndex()
        self.regexes: list[tuple[str, list[str], Alternation]] = []
        for obs in observations:
            for phrase in obs.synonyms:
                self.phrases.add(phrase, (obs.name, "synonym"))
            for phrase in obs.exclude:
                self.phrases.add(phrase, (obs.name, "exclude"))
            kinds = ["pattern"] * len(obs.patterns) + ["absent"] * len(obs.absent) + ["uncertain"] * len(obs.uncertain)
            regexes = [*obs.patterns, *obs.absent, *obs.uncertain]
            if regexes:
                self.regexes.append((obs.name, kinds, Alternation(regexes)))

    def find(self, text: str, tokens: TextWords) -> list[tuple[int, int, str, str]]:
        """``(start, end, observation, kind)``: per observation the leftmost-longest non-overlapping matches,
        minus phrases nested in a longer phrase of another observation."""
        candidates: dict[str, list[tuple[int, int, str]]] = {}
        for start, end, (name, kind) in self.phrases.find_all(text, tokens):
            candidates.setdefault(name, []).append((start, end, kind))
        for name, kinds, alternation in self.regexes:
            candidates.setdefault(name, []).extend((s, e, kinds[i]) for s, e, i in alternation.matches(text, tokens))
        chosen = []
        for name, found in candidates.items():
            cursor = 0
            for start, end, kind in sorted(found, key=lambda f: (f[0], -f[1])):
                if start >= cursor:
                    chosen.append((start, end, name, kind))
                    cursor = end
        return _drop_nested_phrases(chosen)


class Labeller:
    """Label report text with a label space (CheXpert's 14 observations by default).

    Args:
        label_space: the observations and their vocabulary; :meth:`LabelSpace.default` when None.
        lexicon: concepts whose abnormal findings rule out No Finding; :meth:`Lexicon.default` when None.
    """

    def __init__(self, label_space: LabelSpace | None = None, lexicon: Lexicon | None = None) -> None:
        self.label_space = label_space or LabelSpace.default()
        self.lexicon = lexicon if lexicon is not None else Lexicon.default()
        self._vocabulary = _Vocabulary([obs for obs in self.label_space if obs.rule != NO_FINDING_RULE])
        self._no_finding = next((obs.name for obs in self.label_space if obs.rule == NO_FINDING_RULE), None)
        self._blocking = {obs.name for obs in self.label_space if obs.blocks_no_finding and not obs.rule}

    @property
    def observations(self) -> list[str]:
        """Output observation names, in label-space order."""
        return self.label_space.names

    def mentions(self, text: str) -> list[Mention]:
        """Every mention of an observation in ``text`` with its status, in text order."""
        return self._analyse(text)[0]

    def label(self, text: str) -> dict[str, int]:
        """``{observation: 1 | 0 | -1}`` for the observations mentioned in ``text`` (plus No Finding when it holds)."""
        mentions, finding_concepts = self._analyse(text)
        labels: dict[str, int] = {}
        for mention in mentions:
            labels[mention.observation] = _aggregate(labels.get(mention.observation), mention.status)
        if self._no_finding and text.strip():
            blocked = any(labels.get(name) in (PRESENT, UNCERTAIN) for name in self._blocking) or finding_concepts
            if not blocked:
                labels[self._no_finding] = PRESENT
        return {name: labels[name] for name in self.observations if name in labels}

    def label_many(self, texts: Iterable[str], progress: bool = False) -> list[dict[str, int]]:
        """:meth:`label` for each text; ``progress=True`` shows a progress bar."""
        items = list(texts)
        return [self.label(t) for t in tqdm(items, desc="labelling", unit="report", disable=not progress)]

    def _analyse(self, text: str) -> tuple[list[Mention], bool]:
        """Mentions with status, and whether an abnormal lexicon finding is present or uncertain."""
        tokens = words(text)
        raw = self._vocabulary.find(text, tokens)
        concepts = self.lexicon.find(text, tokens) if self._no_finding else []
        spans = [(s, e) for s, e, _, _ in raw] + [(s, e) for _, s, e in concepts]
        context = AssertionContext(text, spans, tokens)
        mentions = []
        for start, end, name, kind in sorted(raw):
            if kind == "exclude":
                continue
            status = _FIXED_STATUS.get(kind)
            if status is None:
                status = context.status(start, end)
            mentions.append(Mention(name, start, end, text[start:end], status, kind))
        finding = any(
            c.category == "finding" and context.status(s, e) in (PRESENT, UNCERTAIN) for c, s, e in concepts
        )
        return mentions, finding


def _drop_nested_phrases(raw: list[tuple[int, int, str, str]]) -> list[tuple[int, int, str, str]]:
    """Drop a vocabulary-phrase match lying inside a longer phrase match of another observation.

    ``nodular opacity`` (Lung Lesion) hides the ``opacity`` (Lung Opacity) inside it; regex patterns (attribute
    phrases such as ``heart size and mediastinal contours are normal``) hide nothing.
    """
    phrases = sorted((s, e, name) for s, e, name, kind in raw if kind in _PHRASE_KINDS)
    starts = [s for s, _, _ in phrases]
    longest = max((e - s for s, e, _ in phrases), default=0)
    kept = []
    for start, end, name, kind in raw:
        window = phrases[bisect.bisect_left(starts, start - longest) : bisect.bisect_right(starts, start)]
        inside = kind in _PHRASE_KINDS and any(
            end <= e and (e - s) > (end - start) and other != name for s, e, other in window
        )
        if not inside:
            kept.append((start, end, name, kind))
    return kept


def _aggregate(current: int | None, status: int) -> int:
    """CheXpert's rule: present beats uncertain beats absent."""
    if current is None:
        return status
    rank = {PRESENT: 2, UNCERTAIN: 1, ABSENT: 0}
    return current if rank[current] >= rank[status] else status
