"""Split a radiology report into its sections.

Recognised headings (any case) and the section they open:

- ``findings``: FINDINGS, FINDING, FINDINGS AND IMPRESSION, REPORT, BODY
- ``impression``: IMPRESSION(S), CONCLUSION(S), SUMMARY, OPINION, INTERPRETATION, DIAGNOSIS
- ``comparison``: COMPARISON(S), COMPARISON STUDY/STUDIES, PRIOR STUDY/STUDIES
- ``indication``: INDICATION(S), CLINICAL INDICATION, HISTORY, CLINICAL HISTORY, REASON FOR EXAM(INATION),
  REASON FOR STUDY, CLINICAL INFORMATION, CLINICAL DATA, CLINICAL DETAILS, CLINICAL NOTES
- ``technique``: TECHNIQUE, EXAMINATION, EXAM, PROCEDURE, VIEWS
- ``other``: FINAL REPORT, ADDENDUM, NOTIFICATION, RECOMMENDATION(S), WET READ, any other upper-case heading
  that ends in a colon at the start of a line, and text before the first heading.

A heading counts when it is followed by a colon (at a line start or after a sentence end, e.g.
``... clear. Impression: normal``), when it stands alone on its line, or when it is written in capitals at a
line start or after a sentence end and followed by a capitalised word (``FINDINGS The lungs ...``).
"""

from __future__ import annotations

import re

SECTION_NAMES = ("findings", "impression", "comparison", "indication", "technique", "other")

HEADINGS: dict[str, tuple[str, ...]] = {
    "findings": ("findings and impressions?", "findings?", "report", "body"),
    "impression": ("impressions?", "conclusions?", "summary", "opinion", "interpretation", "diagnosis"),
    "comparison": ("comparisons?", "comparison stud(?:y|ies)", "prior stud(?:y|ies)"),
    "indication": (
        "clinical indications?",
        "indications?",
        "clinical history",
        "history",
        "reason for (?:exam|examination|study)",
        "clinical (?:information|data|details|notes)",
    ),
    "technique": ("technique", "examination", "exam", "procedure", "views"),
    "other": ("final report", "addendum", "notification", "recommendations?", "wet read"),
}



def _alias_group(upper: bool = False) -> str:
    """One named group per section, alternatives longest first (upper-cased for the capitals-only rule)."""
    groups = []
    for name, aliases in HEADINGS.items():
        ordered = sorted(aliases, key=len, reverse=True)
        body = "|".join(alias.upper() if upper else alias for alias in ordered)
        groups.append(f"(?P<{name}>{body})")
    return "|".join(groups)


_ALIASES = _alias_group()
_AFTER_BREAK = r"(?:^|(?<=[.!?])[ \t]+)[ \t]*"
_WITH_COLON = re.compile(rf"{_AFTER_BREAK}(?:{_ALIASES})[ \t]*(?::|-(?=\s))[ \t]*", re.IGNORECASE | re.MULTILINE)
_ALONE_ON_LINE = re.compile(rf"^[ \t]*(?:{_ALIASES})[ \t]*$\n?", re.IGNORECASE | re.MULTILINE)
_CAPITALS = re.compile(rf"{_AFTER_BREAK}(?:{_alias_group(upper=True)})[ \t]+(?=[A-Z][a-z])", re.MULTILINE)
_UNKNOWN_CAPITALS = re.compile(r"^[ \t]*[A-Z][A-Z0-9 /&()'-]{2,40}:[ \t]*", re.MULTILINE)


def split_sections(text: str) -> dict[str, str]:
    """Sections of ``text`` keyed by :data:`SECTION_NAMES` (only non-empty ones).

    A section that occurs more than once is joined with a line break; text before the first heading and
    under unknown headings is returned as ``other``.
    """
    headings = _find_headings(text)
    parts: dict[str, list[str]] = {}
    bounds = [(0, 0, "other"), *headings, (len(text), len(text), "other")]
    for (_, body_start, name), (next_start, _, _) in zip(bounds, bounds[1:], strict=False):
        body = text[body_start:next_start].strip()
        if body:
            parts.setdefault(name, []).append(body)
    return {name: "\n".join(parts[name]) for name in SECTION_NAMES if name in parts}


def _find_headings(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(heading_start, body_start, section)`` triples in text order."""
    found: dict[int, tuple[int, int, str]] = {}
    for pattern in (_WITH_COLON, _ALONE_ON_LINE, _CAPITALS):
        for match in pattern.finditer(text):
            name = next(key for key, value in match.groupdict().items() if value is not None)
            found.setdefault(match.start(), (match.start(), match.end(), name))
    for match in _UNKNOWN_CAPITALS.finditer(text):
        found.setdefault(match.start(), (match.start(), match.end(), "other"))
    headings: list[tuple[int, int, str]] = []
    for start, end, name in sorted(found.values()):
        if not headings or start >= headings[-1][1]:
            headings.append((start, end, name))
    return headings
