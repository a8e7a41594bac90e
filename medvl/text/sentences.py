"""Sentence splitting for radiology text.

Rules: a blank line, a bullet or an enumeration marker (``1.``, ``2)``, ``-`` at the start of a line, or ``2.``
after a sentence end) starts a new sentence; ``.``, ``!`` or ``?`` followed by white space ends one, except

- after titles and Latin abbreviations (``Dr.``, ``Mrs.``, ``e.g.``, ``i.e.``, ``vs.``, ``approx.``),
- after a single capital initial followed by a name (``J. Smith``),
- after a unit or clinical abbreviation (``cm.``, ``pt.``, ``hx.``) or a dotted abbreviation (``a.m.``) when the
  next word starts in lower case or with a digit.

Decimals (``3.5``) never split (their period is not followed by white space); measurements such as ``3.5 cm.``
end a sentence when a capitalised word follows. A single line break does not end a sentence (reports are often
hard-wrapped). Enumeration markers are left out of the returned sentences.
"""

from __future__ import annotations

import re

_NEVER_FINAL = frozenset("dr mr mrs ms prof sr jr st vs e.g i.e cf viz approx".split())
_BEFORE_LOWER = frozenset(
    "cm mm m in ft kg g mg ml cc l sec min hr hrs wk wks mo yr yrs pt pts hx dx sx tx fx rx no nos fig figs "
    "ap pa lat a.m p.m etc incl ca".split()
)
_SENTENCE_OPENERS = frozenset("a an the there this these it no mild stable normal heart lungs lung".split())

_BOUNDARY = re.compile(r"[.!?]+(?=\s|$)")
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE_MARKER = re.compile(r"^[ \t]*(?:\d{1,2}[.)]|[a-hA-H][.)]|[-*\u2022])[ \t]+", re.MULTILINE)
_INLINE_NUMBER = re.compile(r"(?<=[.!?:])[ \t]+(\d{1,2}[.)])[ \t]+(?=[A-Z])")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of ``text``, in order, without surrounding white space."""
    cuts: set[int] = {0, len(text)}
    skip_to: dict[int, int] = {}
    cuts.update(match.start() for match in _PARAGRAPH.finditer(text))
    for match in _LINE_MARKER.finditer(text):
        cuts.add(match.start())
        skip_to[match.start()] = match.end()
    for match in _INLINE_NUMBER.finditer(text):
        cuts.add(match.start(1))
        skip_to[match.start(1)] = match.end()
    cuts.update(match.end() for match in _BOUNDARY.finditer(text) if _ends_sentence(text, match))
    spans = []
    ordered = sorted(cuts)
    for begin, end in zip(ordered, ordered[1:], strict=False):
        begin = skip_to.get(begin, begin)
        while begin < end and text[begin].isspace():
            begin += 1
        while end > begin and text[end - 1].isspace():
            end -= 1
        if end > begin:
            spans.append((begin, end))
    return spans


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (enumeration markers removed, surrounding white space stripped)."""
    return [text[start:end] for start, end in sentence_spans(text)]


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Whether the punctuation ``match`` closes a sentence."""
    if match.group()[0] != ".":
        return True
    nxt = _skip_space(text, match.end())
    begin = _word_start(text, match.start())
    if nxt == len(text) or begin == match.start():
        return True
    rest = text[nxt : nxt + 40]
    raw = text[begin : match.start()].lstrip("([\"'")
    token = raw.lower()
    if token in _NEVER_FINAL:
        return False
    if len(raw) == 1 and raw.isupper():
        return not _starts_with_name(rest)
    if token.isdigit() and _at_sentence_start(text, begin):
        return False
    if token in _BEFORE_LOWER or "." in token:
        return not (rest[0].islower() or rest[0].isdigit())
    return True


def _starts_with_name(rest: str) -> bool:
    """After an initial (``J. Smith``): a capitalised word that is not a common sentence opener."""
    first = rest.split(maxsplit=1)[0].rstrip(".,;:")
    return first[:1].isupper() and first.lower() not in _SENTENCE_OPENERS


def _at_sentence_start(text: str, index: int) -> bool:
    i = index - 1
    while i >= 0 and text[i] in " \t":
        i -= 1
    return i < 0 or text[i] in ".!?:\n"


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index


def _word_start(text: str, end: int) -> int:
    """Start of the run of non-space characters that ends at ``end``."""
    i = end
    while i > 0 and not text[i - 1].isspace():
        i -= 1
    return i
