"""A tamper-evident audit log: append-only JSON Lines in which every entry is chained to the one before by a keyed hash.

Each line is one entry ``{seq, time, actor, action, subject, details, prev_hash, hash}``: ``seq`` counts from 1
(it equals the line number), ``time`` is UTC ISO-8601, ``prev_hash`` is the previous entry's ``hash`` (64 zeros
for the first) and ``hash`` is the HMAC-SHA256, under the audit key, of the canonical JSON (sorted keys, no
spaces, UTF-8) of the entry without ``hash``. Without the key nobody can write a valid entry, so editing,
deleting, inserting or reordering lines (and re-chaining them) is detected and :func:`verify` names the first bad
line.

Lines cut off the end, or an emptied file, would leave a valid shorter chain: every append therefore also records
the new head ``(seq, hash)``, with its own HMAC, in an *anchor file* kept apart from the log (in
``$MEDVL_AUDIT_ANCHOR_DIR``, else ``~/.config/medvl/audit-anchors/``), and :func:`verify` checks it by default.
A head recorded elsewhere (a ticket, a model card) can be checked too, as ``anchor``.

The key comes from ``--audit-key-file`` / ``$MEDVL_AUDIT_KEY_FILE`` (or the text of ``$MEDVL_AUDIT_KEY``); when
none is configured, a random key is created once at ``~/.config/medvl/audit.key`` (mode 0600). Keep the key and the
anchors where the people who can write the log cannot (another account, a secrets mount).

Appending is safe from several processes at once: each append holds an exclusive ``flock`` on the log file while
it reads the last entry, writes the next one and records the anchor. The log is created readable by its owner only.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from governance.secret_keys import config_dir, create_key_file, load_secret_key

GENESIS_HASH = "0" * 64
KEY_FILE_ENV = "MEDVL_AUDIT_KEY_FILE"
KEY_ENV = "MEDVL_AUDIT_KEY"
ANCHOR_DIR_ENV = "MEDVL_AUDIT_ANCHOR_DIR"
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


def default_key_file() -> Path:
    """Where the audit key is created when none is configured: ``~/.config/medvl/audit.key``."""
    return config_dir() / "audit.key"


def load_audit_key(key_file: str | Path | None = None, create: bool = False) -> bytes:
    """The audit key: ``key_file``, else ``$MEDVL_AUDIT_KEY_FILE``, else ``$MEDVL_AUDIT_KEY``, else the default
    key file (created with a random key when ``create`` and it does not exist yet).

    Raises:
        AuditLogError: no key can be found or read, or it is shorter than 16 bytes.
    """
    if not (key_file or os.environ.get(KEY_FILE_ENV) or os.environ.get(KEY_ENV)):
        key_file = default_key_file()
        if not key_file.exists():
            if not create:
                raise AuditLogError(key_file, f"no audit key: pass --audit-key-file, or set {KEY_FILE_ENV} or "
                                    f"{KEY_ENV} (the key the log was written with)")  # fmt: skip
            try:
                return create_key_file(key_file)
            except FileExistsError:
                pass  # another process created it just now
    return load_secret_key(key_file, KEY_FILE_ENV, KEY_ENV, "audit key", AuditLogError, "audit.key")


def entry_hash(entry: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) under ``key`` of the canonical JSON of ``entry`` without its ``hash`` field."""
    return hmac.new(key, canonical_json({k: v for k, v in entry.items() if k != "hash"}), hashlib.sha256).hexdigest()


def default_anchor_file(log: str | Path) -> Path:
    """The anchor file of the log at ``log``: named after its absolute path, in ``$MEDVL_AUDIT_ANCHOR_DIR``, else
    ``~/.config/medvl/audit-anchors``."""
    folder = Path(os.environ.get(ANCHOR_DIR_ENV) or config_dir() / "audit-anchors")
    return folder / f"{hashlib.sha256(str(Path(log).resolve()).encode()).hexdigest()[:16]}.json"


def _anchor_mac(log: Path, seq: int, digest: str, key: bytes) -> str:
    message = canonical_json({"log": str(log.resolve()), "seq": seq, "hash": digest})
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def record_anchor(anchor_file: Path, log: Path, seq: int, digest: str, key: bytes) -> None:
    """Replace the anchor of ``log`` with ``(seq, digest)`` and its HMAC (atomically, mode 0600)."""
    anchor_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {"log": str(log.resolve()), "seq": seq, "hash": digest, "mac": _anchor_mac(log, seq, digest, key)}
    fd, tmp = tempfile.mkstemp(dir=anchor_file.parent, prefix=".anchor-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(canonical_json(body))
    os.replace(tmp, anchor_file)


def read_anchor(anchor_file: Path, log: Path, key: bytes) -> tuple[int, str]:
    """The ``(seq, hash)`` recorded for ``log`` in ``anchor_file``.

    Raises:
        AuditLogError: the anchor is missing, unreadable, for another log, or its HMAC fails (forged).
    """
    try:
        body = json.loads(anchor_file.read_bytes())
        seq, digest, mac = int(body["seq"]), str(body["hash"]), str(body["mac"])
    except FileNotFoundError as exc:
        raise AuditLogError(anchor_file, "no anchor is recorded for this log: it was deleted, or the log was "
                            "written elsewhere (pass --anchor-file, or --no-anchor to check the chain alone)") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AuditLogError(anchor_file, f"the anchor cannot be read ({exc})") from exc
    if not hmac.compare_digest(mac, _anchor_mac(log, seq, digest, key)):
        raise AuditLogError(anchor_file, "the anchor's HMAC fails: it was forged, belongs to another log, or was "
                            "written under another key")  # fmt: skip
    return seq, digest


def _problem(entry: Any, number: int, prev_hash: str, key: bytes) -> str | None:
    """Why ``entry`` cannot stand at line ``number`` after an entry hashed ``prev_hash``, or None."""
    if not isinstance(entry, dict) or set(entry) != FIELDS:
        return f"not an audit entry (expected the fields {', '.join(sorted(FIELDS))})"
    if not hmac.compare_digest(str(entry["hash"]), entry_hash(entry, key)):
        return "hash does not match the entry's content: the line was edited (or the log has another key)"
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
        first_bad_line: 1-based line number of the first bad line; None when ``ok`` or when the recorded anchor
            itself is missing or forged.
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


def verify(
    path: str | Path,
    anchor: tuple[int, str] | None = None,
    *,
    key: bytes | None = None,
    anchor_file: str | Path | None = None,
    use_recorded_anchor: bool = True,
) -> VerifyResult:
    """Check the whole chain of the log at ``path``, and that it still holds its recorded head.

    Args:
        path: the log file.
        anchor: ``(seq, hash)`` of an entry recorded elsewhere; the log must still hold that entry.
        key: the audit key (default :func:`load_audit_key`).
        anchor_file: the anchor file (default :func:`default_anchor_file`).
        use_recorded_anchor: check the anchor file (False checks the chain alone, e.g. a copied log).

    Raises:
        AuditLogError: the log or the key cannot be read (a missing or forged anchor is a failed result).
    """
    path = Path(path)
    key = key if key is not None else load_audit_key()
    data = _read(path)
    anchors = [anchor] if anchor is not None else []
    if use_recorded_anchor:
        try:
            anchors.append(read_anchor(Path(anchor_file or default_anchor_file(path)), path, key))
        except AuditLogError as exc:
            return VerifyResult(False, 0, None, f"anchor {exc}", GENESIS_HASH)
    if not data:
        return VerifyResult(False, 0, 1, "the log is empty: a log is created by its first entry, so its entries "
                            "were removed", GENESIS_HASH)  # fmt: skip
    lines = data.split(b"\n")
    cut_short = lines.pop()  # empty when the file ends with a newline, else a line whose write was cut short
    if cut_short:
        lines.append(cut_short)
    prev_hash, count = GENESIS_HASH, 0
    for number, raw in enumerate(lines, start=1):
        try:
            entry = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return VerifyResult(False, count, number, "not valid JSON", prev_hash)
        problem = _problem(entry, number, prev_hash, key)
        if problem is None and cut_short and number == len(lines):
            problem = "the last line has no newline: the write was cut short"
        mismatch = [a for a in anchors if a[0] == number and a[1] != entry["hash"]] if problem is None else []
        if mismatch:
            problem = f"hash differs from the anchor {mismatch[0][1]}"
        if problem is not None:
            return VerifyResult(False, count, number, problem, prev_hash)
        prev_hash, count = entry["hash"], count + 1
    beyond = [a for a in anchors if a[0] > count]
    if beyond:
        return VerifyResult(False, count, count + 1, f"entry {beyond[0][0]} of the anchor is missing: entries were "
                            "cut off the end", prev_hash)  # fmt: skip
    return VerifyResult(True, count, None, "ok", prev_hash)


def _last_entry(handle: BinaryIO, path: Path, key: bytes) -> dict[str, Any] | None:
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
    if not isinstance(entry, dict) or set(entry) != FIELDS or entry["hash"] != entry_hash(entry, key):
        raise AuditLogError(path, "the last entry fails its hash: the log was tampered with; run 'medvl audit verify'")
    return entry


class AuditLog:
    """An audit log file (created, mode 0600, on the first append).

    Args:
        path: the JSON Lines file.
        key_file: the audit key file (default: see :func:`load_audit_key`).
        anchor_file: where each append records the head (default :func:`default_anchor_file`).
    """

    def __init__(self, path: str | Path, key_file: str | Path | None = None,
                 anchor_file: str | Path | None = None) -> None:  # fmt: skip
        self.path = Path(path)
        self.key_file = key_file
        self.anchor_file = Path(anchor_file) if anchor_file else default_anchor_file(self.path)

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
            AuditLogError: the key cannot be read, or the log's last entry is damaged or was tampered with
                (nothing is appended).
        """
        for name, value in (("actor", actor), ("action", action), ("subject", subject)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"audit {name} must be a non-empty string, not {value!r}")
        try:
            canonical_json(details)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"audit details of {action!r} must be JSON-serialisable: {exc}") from exc
        key = load_audit_key(self.key_file, create=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                last = _last_entry(handle, self.path, key)
                entry: dict[str, Any] = {
                    "seq": last["seq"] + 1 if last else 1,
                    "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "actor": actor,
                    "action": action,
                    "subject": subject,
                    "details": details,
                    "prev_hash": last["hash"] if last else GENESIS_HASH,
                }
                entry["hash"] = entry_hash(entry, key)
                handle.write(canonical_json(entry) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
                try:
                    record_anchor(self.anchor_file, self.path, entry["seq"], entry["hash"], key)
                except OSError as exc:
                    raise AuditLogError(self.anchor_file, f"entry {entry['seq']} was written but its anchor could "
                                        f"not be recorded: {exc.strerror}") from exc  # fmt: skip
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return entry

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last entry, ``(0, 64 zeros)`` for an empty or absent log: keep it elsewhere
        and pass it to :func:`verify` as ``anchor`` to detect entries cut off the end."""
        if not self.path.exists():
            return 0, GENESIS_HASH
        with open(self.path, "rb") as handle:
            last = _last_entry(handle, self.path, load_audit_key(self.key_file))
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
