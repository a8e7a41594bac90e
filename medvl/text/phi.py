"""Detection and masking of protected health information (PHI) in report text.

Rule-based and precision-oriented; each span has a type:

- ``NAME``: a name after a title (``Dr.``, ``Mr.``, ``Mrs.``, ``Ms.``, ``Prof.``...), after a label
  (``Patient:``, ``Name:``, ``Signed by:``, ``Dictated by:``, ``Referring physician:``...) or before a degree
  (``John Smith, MD``);
- ``DATE``: ``03/14/2021``, ``3-14-21``, ``2021-03-14``, ``March 14, 2021``, ``14 Mar 2021``, ``March 2021``;
- ``MRN``: the value after ``MRN``, ``MR#``, ``Medical record number``, ``Patient ID``..., and any unlabelled
  run of 7 or more digits;
- ``ACCESSION``: the value after ``Accession`` / ``Acc#``, and letter-prefixed numbers such as ``CT12345678``;
- ``PHONE``: North-American style numbers (``(317) 555-0123``, ``317.555.0123``, ``+1 317 555 0123``, ``x123``);
- ``EMAIL``: e-mail addresses;
- ``ADDRESS``: a house number with a street name and type (``1200 West Michigan Street``, ``Apt 4B``), with an
  optional ``City, ST 46202``; ``P.O. Box`` numbers;
- ``AGE``: ages of 90 and over (``93-year-old``, ``aged 95``, ``age: 101``, ``92 yo``); younger ages are kept.

:func:`mask_phi` replaces each span with ``[TYPE]``. Offsets always refer to the original text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("NAME", "DATE", "MRN", "ACCESSION", "PHONE", "EMAIL", "ADDRESS", "AGE")
# When two spans overlap, the one of the earlier kind here wins (then the longer one).
_PRIORITY = ("EMAIL", "PHONE", "ADDRESS", "DATE", "ACCESSION", "MRN", "AGE", "NAME")

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_NAME_WORD = r"(?:[A-Z](?:[a-z]|['\u2019][A-Z])[a-zA-Z'\u2019]*(?:-[A-Z][a-z][a-zA-Z'\u2019]*)?)"
_PARTICLE = r"(?:van|von|de|der|del|della|di|da|du|la|le|st\.?|mc|mac|o')"
_FULL_NAME = rf"{_NAME_WORD}(?:\s+(?:[A-Z]\.|{_PARTICLE}|{_NAME_WORD})){{0,3}}"
_TITLE = r"(?:Dr|Drs|Mr|Mrs|Ms|Mx|Miss|Prof|Doctor|Nurse|Sister|Rev)\.?"
_NAME_LABEL = (
    r"(?:patient(?:'s)?(?:\s+name)?|name|signed(?:\s+by)?|electronically\s+signed\s+by|dictated\s+by|"
    r"transcribed\s+by|reviewed\s+by|read\s+by|attending(?:\s+physician)?|referring(?:\s+physician)?|"
    r"ordering(?:\s+physician)?|physician|radiologist|resident|technologist|discussed\s+with|"
    r"communicated\s+to|notified)"
)
_STREET_WORDS = (
    "Street St Avenue Ave Road Rd Boulevard Blvd Lane Ln Drive Dr Court Ct Place Pl Way Terrace Ter Circle Cir "
    "Parkway Pkwy Highway Hwy Square Sq Trail Trl"
).split()
_STREET_TYPE = "(?:" + "|".join([*_STREET_WORDS, *(w.upper() for w in _STREET_WORDS)]) + ")"
_AGE_NUMBER = r"(?:9\d|1[0-4]\d)"

# A pattern with a group named ``v`` marks only that group (the value after a label such as ``MRN:``).
_PATTERNS: dict[str, tuple[re.Pattern[str], ...]] = {
    "EMAIL": (re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),),
    "PHONE": (
        re.compile(
            r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?:\s*(?:x|ext\.?)\s*\d{1,5})?"
            r"(?!\d)",
            re.IGNORECASE,
        ),
    ),
    "ADDRESS": (
        re.compile(
            rf"(?<![\w.])\d{{1,6}}\s+(?:[NSEW]\.?\s+)?(?:[A-Z0-9][A-Za-z0-9'.-]*\s+){{1,4}}{_STREET_TYPE}\b\.?"
            r"(?:,?\s*(?i:apt|apartment|suite|ste|unit|#)\.?\s*[A-Za-z0-9-]+)?"
            r"(?:,?\s+[A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)*,?\s+[A-Z]{2}(?:\s+\d{5}(?:-\d{4})?)?)?"
        ),
        re.compile(r"\bP\.?\s?O\.?\s+Box\s+\d+\b", re.IGNORECASE),
        re.compile(r"\b[A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)*,\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?\b"),
    ),
    "DATE": (
        re.compile(r"(?<![\w/.-])\d{4}([-/.])\d{1,2}\1\d{1,2}(?![\w/.-]\w|[\w/-])"),
        re.compile(r"(?<![\w/.-])\d{1,2}([-/.])\d{1,2}\1(?:\d{4}|\d{2})(?![\w/.-]\w|[\w/-])"),
        re.compile(rf"\b{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b", re.IGNORECASE),
        re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}\.?,?\s+\d{{4}}\b", re.IGNORECASE),
        re.compile(rf"\b{_MONTH}\.?,?\s+(?:19|20)\d{{2}}\b", re.IGNORECASE),
    ),
    "ACCESSION": (
        re.compile(r"\b(?:accession|acc)\b\.?(?:\s*(?:no\.?|number|#))?\s*[:#]?\s*(?P<v>[A-Z0-9][A-Z0-9-]{3,})", re.I),
        re.compile(r"\b[A-Z]{1,4}-?\d{6,}\b"),
    ),
    "MRN": (
        re.compile(
            r"\b(?:MRN|MR\s?#|MR\s?No\.?|medical\s+record(?:\s+(?:number|no\.?|#))?|patient\s+ID|PID|"
            r"hospital\s+(?:number|no\.?)|unit\s+(?:number|no\.?))\s*[:#]?\s*(?P<v>[A-Z]{0,3}\d[\d-]{3,})\b",
            re.IGNORECASE,
        ),
        re.compile(r"(?<![\w.-])\d[\d-]{5,}\d(?![\w.-])"),
    ),
    "AGE": (
        re.compile(rf"\b{_AGE_NUMBER}(?=\s*-?\s*(?:years?|yrs?|y/?o|y\.o\.|yo)\b)", re.IGNORECASE),
        re.compile(rf"\baged?\s*[:=]?\s*(?P<v>{_AGE_NUMBER})\b", re.IGNORECASE),
    ),
    "NAME": (
        re.compile(rf"\b{_TITLE}\s+(?P<v>{_FULL_NAME})"),
        re.compile(rf"(?i:\b{_NAME_LABEL})\s*[:\-]?\s*(?:{_TITLE}\s+)?(?P<v>{_FULL_NAME}(?:,\s*{_NAME_WORD})?)"),
        re.compile(rf"\b{_FULL_NAME}(?=,?\s+(?:M\.?D\.?|D\.?O\.?|R\.?N\.?|Ph\.?D\.?|PA-C|NP)\b)"),
    ),
}
_NOT_NAMES = frozenset(
    "The This That There These Those No Normal Heart Lungs Chest Findings Impression Comparison History "
    "Indication Technique Left Right Bilateral Stable Mild Patient Report Clinical Notified".split()
)


@dataclass(frozen=True)
class PhiSpan:
    """A PHI span: ``text[start:end]`` of type ``kind`` (one of :data:`KINDS`)."""

    start: int
    end: int
    kind: str
    text: str


def find_phi(text: str) -> list[PhiSpan]:
    """PHI spans in ``text``, sorted and non-overlapping."""
    candidates = []
    for kind, patterns in _PATTERNS.items():
        for pattern in patterns:
            for match in pattern.finditer(text):
                start, end = match.span("v") if "v" in pattern.groupindex else match.span()
                span = _accept(text, start, end, kind)
                if span is not None:
                    candidates.append(span)
    candidates.sort(key=lambda s: (_PRIORITY.index(s.kind), -(s.end - s.start), s.start))
    chosen: list[PhiSpan] = []
    for span in candidates:
        if all(span.end <= other.start or span.start >= other.end for other in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def mask_phi(text: str, template: str = "[{kind}]") -> tuple[str, list[PhiSpan]]:
    """``text`` with every PHI span replaced by ``template.format(kind=...)`` (``[NAME]``, ``[DATE]``...).

    Returns the masked text and the spans (offsets in the original text).
    """
    spans = find_phi(text)
    pieces = []
    cursor = 0
    for span in spans:
        pieces.append(text[cursor : span.start])
        pieces.append(template.format(kind=span.kind))
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces), spans


def _accept(text: str, start: int, end: int, kind: str) -> PhiSpan | None:
    """The span, or None when it is implausible (a capitalised common word taken for a name, an invalid date)."""
    value = text[start:end]
    if not value:
        return None
    if kind == "NAME" and value.split()[0] in _NOT_NAMES:
        return None
    if kind == "DATE" and not _plausible_date(value):
        return None
    return PhiSpan(start, end, kind, value)


def _plausible_date(value: str) -> bool:
    """Numeric dates must have a month 1-12 and a day 1-31 (either order); named-month dates pass."""
    numbers = [int(n) for n in re.findall(r"\d+", value)]
    if len(numbers) != 3 or re.search(r"[A-Za-z]", value):
        return True
    first, second, third = numbers
    if first > 31:
        month, day = second, third
    else:
        month, day = (first, second) if first <= 12 else (second, first)
    return 1 <= month <= 12 and 1 <= day <= 31
