"""Fast matching of vocabulary phrases and of regex alternations in report text.

Vocabulary phrases (label-space synonyms, lexicon surface forms) follow one syntax: words are matched
case-insensitively as whole words; spaces and hyphens between words are interchangeable (``air space``,
``air-space``; write ``airspace`` separately when the closed form is meant); the last word may take its regular
plural or inflected forms (``opacity`` -> ``opacities``, ``atelectasis`` -> ``atelectases``, ``nodule`` ->
``nodules``, ``mass`` -> ``masses``); a trailing ``*`` makes the last word a prefix (``atelecta*`` matches
``atelectatic``). :class:`PhraseIndex` matches thousands of phrases in one pass over the words of a text.

:class:`Alternation` runs a list of regular expressions as one leftmost, first-alternative-wins scan. A regex
that begins with a literal word (after ``\\b``, and after splitting a leading ``(?:a|b)`` group) is only tried
where a word with that beginning occurs, found by a dictionary look-up per word; others are scanned everywhere.
Both take the words of the text (:func:`words`) so that a caller can compute them once.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

_WORD = re.compile(r"[^\W_]+")
_JOINER = re.compile(r"[\s\-]*")
_LEADING_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_PREFIX = 3



class TextWords:
    """The words of a text (runs of letters and digits), indexed for look-ups by word and by 3-letter prefix.

    Attributes:
        spans: ``(start, end, lower-case word)`` per word, in text order.
        by_word: word -> indices into ``spans``.
        by_prefix: first three letters -> indices into ``spans``.
    """

    def __init__(self, text: str) -> None:
        self.spans = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(text)]
        self.by_word: dict[str, list[int]] = {}
        self.by_prefix: dict[str, list[int]] = {}
        for i, (_, _, word) in enumerate(self.spans):
            self.by_word.setdefault(word, []).append(i)
            self.by_prefix.setdefault(word[:_PREFIX], []).append(i)


def words(text: str) -> TextWords:
    """The indexed words of ``text`` (compute once, pass to several matchers)."""
    return TextWords(text)


def inflections(word: str) -> tuple[str, ...]:
    """A word with its regular plural / inflected forms."""
    if len(word) > 3 and word.endswith("sis"):
        return (word, word[:-2] + "es")
    if len(word) > 2 and word.endswith("y") and word[-2] not in "aeiou":
        return (word, word[:-1] + "ies")
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return (word, word + "es")
    if word[-1:].isalpha():
        return (word, word + "s")
    return (word,)


def phrase_words(phrase: str) -> list[str]:
    """The lower-case words of a phrase (``*`` kept on the last word); raises ``ValueError`` if there are none."""
    text = phrase.strip().lower()
    prefix = text.endswith("*")
    found = _WORD.findall(text.rstrip("*"))
    if not found:
        raise ValueError(f"phrase {phrase!r} has no words")
    if prefix:
        found[-1] += "*"
    return found


@dataclass
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    payloads: list[Hashable] = field(default_factory=list)
    prefixes: dict[str, list[tuple[str, Hashable]]] = field(default_factory=dict)


class PhraseIndex:
    """A word trie of vocabulary phrases, each with a payload (e.g. the observation or concept it stands for)."""

    def __init__(self, phrases: Iterable[tuple[str, Hashable]] = ()) -> None:
        self._root = _Node()
        for phrase, payload in phrases:
            self.add(phrase, payload)

    def add(self, phrase: str, payload: Hashable) -> None:
        """Index ``phrase`` (see the module docstring for its syntax) with ``payload``."""
        parts = phrase_words(phrase)
        node = self._root
        for word in parts[:-1]:
            node = node.children.setdefault(word, _Node())
        last = parts[-1]
        if last.endswith("*"):
            stem = last[:-1]
            node.prefixes.setdefault(stem[:_PREFIX], []).append((stem, payload))
            return
        for form in inflections(last):
            child = node.children.setdefault(form, _Node())
            if payload not in child.payloads:
                child.payloads.append(payload)

    def find_all(self, text: str, tokens: TextWords | None = None) -> list[tuple[int, int, Hashable]]:
        """Every ``(start, end, payload)`` occurrence, overlapping ones included, sorted by start then length.

        Args:
            text: the text.
            tokens: ``words(text)`` when the caller already has them.
        """
        indexed = words(text) if tokens is None else tokens
        tokens = indexed.spans
        root = self._root
        starts = {i for w in root.children.keys() & indexed.by_word.keys() for i in indexed.by_word[w]}
        starts.update(i for p in root.prefixes.keys() & indexed.by_prefix.keys() for i in indexed.by_prefix[p])
        found = []
        for i in sorted(starts):
            start = tokens[i][0]
            if start and text[start - 1] == "-":
                continue
            node = root
            j = i
            while j < len(tokens):
                if j > i and _JOINER.fullmatch(text, tokens[j - 1][1], tokens[j][0]) is None:
                    break
                word = tokens[j][2]
                for stem, payload in node.prefixes.get(word[:_PREFIX], ()):
                    if word.startswith(stem):
                        found.append((start, tokens[j][1], payload))
                node = node.children.get(word)
                if node is None:
                    break
                found.extend((start, tokens[j][1], payload) for payload in node.payloads)
                j += 1
        found.sort(key=lambda item: (item[0], -item[1]))
        return found

    def find_longest(self, text: str, tokens: TextWords | None = None) -> list[tuple[int, int, Hashable]]:
        """Non-overlapping occurrences, scanning left to right and taking the longest phrase at each position."""
        chosen = []
        cursor = 0
        for start, end, payload in self.find_all(text, tokens):
            if start >= cursor:
                chosen.append((start, end, payload))
                cursor = end
        return chosen


class Alternation:
    """Regular expressions matched as one leftmost, first-alternative-wins alternation (case-insensitive).

    Args:
        regexes: the alternatives, most specific first. They must not contain named groups.
    """

    def __init__(self, regexes: Sequence[str]) -> None:
        exact: dict[str, list[tuple[int, str]]] = {}
        prefixed: dict[str, list[tuple[int, str]]] = {}
        anywhere: list[tuple[int, str]] = []
        for i, regex in enumerate(regexes):
            for variant in expand_leading_group(regex[2:] if regex.startswith(r"\b") else regex):
                lead = _leading_literal(variant)
                if lead is None:
                    anywhere.append((i, regex))
                elif lead[1]:
                    exact.setdefault(lead[0], []).append((i, variant))
                else:
                    prefixed.setdefault(lead[0][:_PREFIX], []).append((i, variant))
        self._exact = {w: _compile(entries) for w, entries in exact.items()}
        self._prefixed = {p: _compile(entries) for p, entries in prefixed.items()}
        self._anywhere = _compile(anywhere) if anywhere else None

    def matches(self, text: str, tokens: TextWords | None = None) -> list[tuple[int, int, int]]:
        """Non-overlapping ``(start, end, index)`` matches, left to right; at one position the lowest index wins.

        Args:
            text: the text.
            tokens: ``words(text)`` when the caller already has them.
        """
        indexed = words(text) if tokens is None else tokens
        tries = [(self._exact[w], indexed.by_word[w]) for w in self._exact.keys() & indexed.by_word.keys()]
        tries += [(self._prefixed[p], indexed.by_prefix[p]) for p in self._prefixed.keys() & indexed.by_prefix.keys()]
        candidates = []
        for pattern, positions in tries:
            for i in positions:
                start = indexed.spans[i][0]
                if start and text[start - 1] in "-_":
                    continue
                match = pattern.match(text, start)
                if match is not None and match.end() > start:
                    candidates.append((start, match.end(), _index(match)))
        if self._anywhere is not None:
            candidates += [(m.start(), m.end(), _index(m)) for m in self._anywhere.finditer(text) if m.end() > m.start()]
        candidates.sort(key=lambda c: (c[0], c[2]))
        chosen = []
        cursor = 0
        for start, end, index in candidates:
            if start >= cursor:
                chosen.append((start, end, index))
                cursor = end
        return chosen


def expand_leading_group(regex: str) -> list[str]:
    """Split a leading ``(?:a|b)rest`` group into ``arest``, ``brest`` (recursively); other regexes unchanged."""
    if not regex.startswith("(?:"):
        return [regex]
    depth, alternatives, begin = 0, [], 3
    for i, char in enumerate(regex):
        if char == "\\":
            continue
        if char == "(" and (i == 0 or regex[i - 1] != "\\"):
            depth += 1
        elif char == ")" and regex[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                if regex[i + 1 : i + 2] in ("?", "*", "+", "{"):
                    return [regex]
                alternatives.append(regex[begin:i])
                return [expanded for alt in alternatives for expanded in expand_leading_group(alt + regex[i + 1 :])]
        elif char == "|" and depth == 1:
            alternatives.append(regex[begin:i])
            begin = i + 1
    return [regex]


def _leading_literal(regex: str) -> tuple[str, bool] | None:
    """``(literal, is_whole_word)`` for a regex starting with a literal word, else None.

    The literal must be followed by a character that cannot extend the word (space, ``\\s``, punctuation,
    end) for ``is_whole_word``; a literal of at least three characters followed by more pattern is a prefix.
    """
    match = _LEADING_WORD.match(regex.lower())
    if match is None:
        return None
    literal, rest = match.group(), regex[match.end() :]
    if rest[:1] in ("?", "*", "+", "{"):
        return None
    if rest == "" or rest[0] in " -/'.;:,)" or rest.startswith(("\\s", "\\.", "\\b", "(?!", "(?=", "(?<")):
        return literal, True
    return (literal, False) if len(literal) >= _PREFIX else None


def _compile(entries: Sequence[tuple[int, str]]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?P<g{i}_{k}>{regex})" for k, (i, regex) in enumerate(entries)), re.IGNORECASE)


def _index(match: re.Match[str]) -> int:
    return int(match.lastgroup[1:].split("_", 1)[0])  # type: ignore[index]


def validate_regex(regex: str, where: str) -> str:
    """Return ``regex`` if it compiles and has no named groups; otherwise raise ``ValueError`` naming ``where``."""
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise ValueError(f"{where}: invalid regular expression {regex!r} ({exc})") from exc
    if compiled.groupindex:
        raise ValueError(f"{where}: regular expression {regex!r} uses named groups; use (?:...) instead")
    return regex
