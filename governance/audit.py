"""A tamper-evident audit log: append-only JSON Lines in which every entry is hash-chained to the one before.

Each line is one entry ``{seq, time, actor, action, subject, details, prev_hash, hash}``: ``seq`` counts from 1
(it equals the line number), ``time`` is UTC ISO-8601, ``prev_hash`` is the previous entry's ``hash`` (64 zeros
for the first) and ``hash`` is the SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of the entry
without ``hash``. Editing, deleting, inserting or reordering lines breaks the chain and :func:`verify` names the
first bad line. Lines cut off the end leave a valid shorter chain: record :meth:`AuditLog.head` somewhere else
(a ticket, a model card) and pass it to :func:`verify` as ``anchor`` to detect that too.

Appending is safe from several processes at once: each append holds an exclusive ``flock`` on the log file while
it reads the last entry and writes the next one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

GENESIS_HASH = "0" * 64
FIELDS = frozenset({"seq", "time", "actor", "action", "subject", "details", "prev_hash", "hash"})
_TAIL_CHUNK = 4096


class AuditLogError(Exception):
    """The log cannot be read or appended to (missing, damaged, tampered tail), with the path and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def canonical_json(value: Any) -> bytes:
    """The canonical encoding hashed by the log: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``entry`` without its ``hash`` field."""
    return hashlib.sha256(canonical_json({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _problem(entry: Any, number: int, prev_hash: str) -> str | None:
    """Why ``entry`` cannot stand at line ``number`` after an entry hashed ``prev_hash``, or None."""
    if not isinstance(entry, dict) or set(entry) != FIELDS:
        return f"not an audit entry (expected the fields {', '.join(sorted(FIELDS))})"
    if entry["hash"] != entry_hash(entry):
        return "hash does not match the entry's content: the line was edited"
    if entry["seq"] != number:
        return f"seq is {entry['seq']} where {number} was expected: a line was deleted, inserted or moved"
    if entry["prev_hash"] != prev_hash:
        return "prev_hash does not match the previous entry: a line was deleted, inserted, moved or re-hashed"
    return None


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`.

    Attributes:
        ok: True when every line is a valid link of the chain (and matches the anchor, if one was given).
        entries: number of valid entries before the first bad line (all of them when ``ok``).
        first_bad_line: 1-based line number of the first bad line, None when ``ok``.
        reason: what is wrong with that line, ``"ok"`` otherwise.
        head_hash: hash of the last valid entry (64 zeros when there is none).
    """

    ok: bool
    entries: int
    first_bad_line: int | None
    reason: str
    head_hash: str


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuditLogError(path, f"cannot read the audit log: {exc.strerror}") from exc


def verify(path: str | Path, anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Check the whole chain of the log at ``path``.

    Args:
        path: the log file.
        anchor: ``(seq, hash)`` of an entry recorded elsewhere; the log must still hold that entry.

    Raises:
        AuditLogError: the file cannot be read.
    """
    lines = _read(Path(path)).split(b"\n")
    cut_short = lines.pop()  # empty when the file ends with a newline, else a line whose write was cut short
    if cut_short:
        lines.append(cut_short)
    prev_hash, count = GENESIS_HASH, 0
    for number, raw in enumerate(lines, start=1):
        try:
            entry = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return VerifyResult(False, count, number, "not valid JSON", prev_hash)
        problem = _problem(entry, number, prev_hash)
        if problem is None and cut_short and number == len(lines):
            problem = "the last line has no newline: the write was cut short"
        if problem is None and anchor is not None and anchor[0] == number and anchor[1] != entry["hash"]:
            problem = f"hash differs from the anchor {anchor[1]}"
        if problem is not None:
            return VerifyResult(False, count, number, problem, prev_hash)
        prev_hash, count = entry["hash"], count + 1
    if anchor is not None and anchor[0] > count:
        return VerifyResult(False, count, count + 1, f"entry {anchor[0]} of the anchor is missing: entries were cut "
                            "off the end", prev_hash)
    return VerifyResult(True, count, None, "ok", prev_hash)


def _last_entry(handle: BinaryIO, path: Path) -> dict[str, Any] | None:
    """The last entry of an open log (None when empty), after checking it is intact."""
    end = handle.seek(0, os.SEEK_END)
    if end == 0:
        return None
    start = end
    tail = b""
    while start > 0 and tail.count(b"\n") < 2:
        start = max(0, start - _TAIL_CHUNK)
        handle.seek(start)
        tail = handle.read(end - start)
    if not tail.endswith(b"\n"):
        raise AuditLogError(path, "the last line has no newline (a write was cut short); run 'medvl audit verify'")
    raw = tail[:-1].rsplit(b"\n", 1)[-1]
    try:
        entry = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AuditLogError(path, "the last line is not valid JSON; run 'medvl audit verify'") from exc
    if not isinstance(entry, dict) or set(entry) != FIELDS or entry["hash"] != entry_hash(entry):
        raise AuditLogError(path, "the last entry fails its hash: the log was tampered with; run 'medvl audit verify'")
    return entry


class AuditLog:
    """An audit log file (created on the first append).

    Args:
        path: the JSON Lines file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, actor: str, action: str, subject: str, **details: Any) -> dict[str, Any]:
        """Append one entry and return it (with its ``seq`` and ``hash``).

        Args:
            actor: who did it (a user name, a service account, a pipeline).
            action: what was done, dotted lower case by convention (``deid.run``, ``model.promote``).
            subject: what it was done to (a path, a model URI, a study).
            **details: further JSON-serialisable facts.

        Raises:
            ValueError: ``actor``, ``action`` or ``subject`` is empty.
            TypeError: a detail is not JSON-serialisable.
            AuditLogError: the log's last entry is damaged or was tampered with (nothing is appended).
        """
        for name, value in (("actor", actor), ("action", action), ("subject", subject)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"audit {name} must be a non-empty string, not {value!r}")
        try:
            canonical_json(details)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"audit details of {action!r} must be JSON-serialisable: {exc}") from exc
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                last = _last_entry(handle, self.path)
                entry: dict[str, Any] = {
                    "seq": last["seq"] + 1 if last else 1,
                    "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "actor": actor,
                    "action": action,
                    "subject": subject,
                    "details": details,
                    "prev_hash": last["hash"] if last else GENESIS_HASH,
                }
                entry["hash"] = entry_hash(entry)
                handle.write(canonical_json(entry) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return entry

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last entry, ``(0, 64 zeros)`` for an empty or absent log: keep it elsewhere
        and pass it to :func:`verify` as ``anchor`` to detect entries cut off the end."""
        if not self.path.exists():
            return 0, GENESIS_HASH
        with open(self.path, "rb") as handle:
            last = _last_entry(handle, self.path)
        return (last["seq"], last["hash"]) if last else (0, GENESIS_HASH)

    def entries(self) -> Iterator[dict[str, Any]]:
        """The entries in order, as written (use :func:`verify` to check them).

        Raises:
            AuditLogError: the file cannot be read or a line is not JSON (names the line).
        """
        for number, raw in enumerate(_read(self.path).splitlines(), start=1):
            try:
                yield json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise AuditLogError(self.path, f"line {number} is not valid JSON; run 'medvl audit verify'") from exc
