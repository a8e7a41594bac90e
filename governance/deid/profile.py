"""The PS3.15 Basic Application Level Confidentiality Profile (Table E.1-1), loaded from ``basic_profile.csv``.

Each table row becomes a :class:`Rule`; :meth:`Rule.action` resolves the row's action code for an element's VR to
one concrete :class:`Action`. Compound codes resolve to the choice that keeps any IOD conformant without carrying
the IOD type tables (the right-most code): ``X/Z`` -> ``Z``, ``X/D``, ``Z/D`` and ``X/Z/D`` -> ``D``; ``X/Z/U*`` on
a sequence keeps the sequence and cleans its items, so the UIDs inside are remapped. Under the *Retain
Longitudinal Temporal Information with Modified Dates* option (column ``modified_dates`` = ``C``) dates (DA) and
date-times (DT) are shifted and times of day (TM) are kept, since the shift is a whole number of days; any other
VR in that column keeps its basic action.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path

from governance.deid.errors import DeidConfigError

BASIC_PROFILE_CSV = Path(__file__).with_name("basic_profile.csv")

_TAG_RE = re.compile(r"^\(([0-9A-Fa-fx]{4}),([0-9A-Fa-fx]{4})\)$")
_CODES = {"D", "Z", "X", "K", "U"}


class Action(Enum):
    """What happens to one data element."""

    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    KEEP = "K"
    REMAP_UID = "U"
    SHIFT_DATE = "C"
    CLEAN_ITEMS = "U*"


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1.

    Attributes:
        tag: the tag as written in the standard, e.g. ``(0010,0010)`` or ``(60xx,3000)``.
        name: the attribute name in the standard.
        basic: the Basic Profile action code (``X``, ``Z/D``, ``X/Z/U*``...).
        modified_dates: ``C`` when the Modified Dates option cleans the attribute, else empty.
    """

    tag: str
    name: str
    basic: str
    modified_dates: str

    def action(self, vr: str) -> Action:
        """The concrete action for an element of this attribute with value representation ``vr``."""
        if self.modified_dates == "C":
            if vr in ("DA", "DT"):
                return Action.SHIFT_DATE
            if vr == "TM":
                return Action.KEEP
        codes = self.basic.split("/")
        if "U*" in codes:
            return Action.CLEAN_ITEMS if vr == "SQ" else Action.REMAP_UID
        return Action(codes[-1])


class Profile:
    """The rules of a confidentiality profile, looked up by tag (exact tags first, then ``xx`` masks)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = tuple(rules)
        self._exact: dict[int, Rule] = {}
        self._masked: list[tuple[int, int, Rule]] = []
        for rule in rules:
            match = _TAG_RE.match(rule.tag)
            if match is None:
                raise ValueError(f"bad tag {rule.tag!r}")
            digits = match.group(1) + match.group(2)
            if "x" in digits:
                mask = int("".join("0" if c == "x" else "F" for c in digits), 16)
                self._masked.append((mask, int(digits.replace("x", "0"), 16), rule))
            elif int(digits, 16) in self._exact:
                raise ValueError(f"tag {rule.tag} listed twice")
            else:
                self._exact[int(digits, 16)] = rule

    def __len__(self) -> int:
        return len(self.rules)

    def rule_for(self, tag: int) -> Rule | None:
        """The rule for ``tag`` or None when the profile does not list it."""
        rule = self._exact.get(int(tag))
        if rule is not None:
            return rule
        for mask, value, masked_rule in self._masked:
            if int(tag) & mask == value:
                return masked_rule
        return None


def _parse_rule(row: dict[str, str]) -> Rule:
    rule = Rule(row["tag"].strip(), row["name"].strip(), row["basic"].strip(), row["modified_dates"].strip())
    codes = rule.basic.split("/")
    if not codes or any(code not in _CODES and code != "U*" for code in codes):
        raise ValueError(f"unknown action code {rule.basic!r} for {rule.tag} {rule.name}")
    if rule.modified_dates not in ("", "C"):
        raise ValueError(f"modified_dates must be C or empty, not {rule.modified_dates!r} for {rule.tag}")
    return rule


@lru_cache(maxsize=4)
def load_profile(path: Path = BASIC_PROFILE_CSV) -> Profile:
    """Read a profile table (CSV with ``tag,name,basic,modified_dates``; ``#`` lines are comments).

    Raises:
        DeidConfigError: the file is missing or a row is malformed (names the row).
    """
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    except OSError as exc:
        raise DeidConfigError(path, f"cannot read the profile table: {exc.strerror}") from exc
    rules = []
    for number, row in enumerate(csv.DictReader(lines), start=1):
        try:
            rules.append(_parse_rule(row))
        except (ValueError, KeyError, AttributeError) as exc:
            raise DeidConfigError(path, f"data row {number}: {exc}") from exc
    try:
        return Profile(rules)
    except ValueError as exc:
        raise DeidConfigError(path, str(exc)) from exc
