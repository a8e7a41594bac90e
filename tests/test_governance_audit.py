"""The keyed, hash-chained audit log: appends, tamper detection (with and without the key), anchors, file modes,
concurrent appenders, and the ``medvl audit`` CLI.

The test run's key and anchors live in a temporary folder (tests/conftest.py sets ``$MEDVL_AUDIT_KEY_FILE`` and
``$MEDVL_AUDIT_ANCHOR_DIR``)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import stat
from pathlib import Path

import pytest

from governance.audit import (
    ANCHOR_DIR_ENV,
    GENESIS_HASH,
    KEY_ENV,
    KEY_FILE_ENV,
    AuditLog,
    AuditLogError,
    canonical_json,
    default_anchor_file,
    entry_hash,
    load_audit_key,
    verify,
)
from medvl.cli import main


def _log(tmp_path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(n):
        log.append("alice", "test.step", f"subject-{i}", index=i, note="ü")
    return log


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(lines), encoding="utf-8")


def test_append_builds_a_chain(tmp_path):
    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    first = log.append("alice", "deid.run", "/data/in", files=3)
    second = log.append("bob", "model.promote", "models:/m-1", alias="champion")
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["prev_hash"] == GENESIS_HASH and second["prev_hash"] == first["hash"]
    assert second["hash"] == entry_hash(second, load_audit_key()) and second["details"] == {"alias": "champion"}
    assert log.head() == (2, second["hash"])
    assert [e["subject"] for e in log.entries()] == ["/data/in", "models:/m-1"]
    result = verify(log.path)
    assert result.ok and result.entries == 2 and result.first_bad_line is None and result.head_hash == second["hash"]


def test_empty_or_absent_log(tmp_path):
    assert AuditLog(tmp_path / "none.jsonl").head() == (0, GENESIS_HASH)
    (tmp_path / "empty.jsonl").write_text("")
    result = verify(tmp_path / "empty.jsonl", use_recorded_anchor=False)
    assert not result.ok and "empty" in result.reason
    with pytest.raises(AuditLogError, match="cannot read"):
        verify(tmp_path / "none.jsonl")


def test_log_and_anchor_are_private_files(tmp_path):
    log = _log(tmp_path, 1)
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.anchor_file.stat().st_mode) == 0o600
    assert log.anchor_file == default_anchor_file(log.path) and log.anchor_file.parent != log.path.parent


def test_edited_line_is_named(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    lines[2] = lines[2].replace("subject-2", "subject-X")
    _write(log, lines)
    result = verify(log.path)
    assert not result.ok and result.first_bad_line == 3 and "edited" in result.reason and result.entries == 2


def test_edited_and_rehashed_line_breaks_the_next_link(tmp_path):
    log = _log(tmp_path)
    lines = _lines(log)
    entry = json.loads(lines[1])
    entry["actor"] = "mallory"
    entry["hash"] = entry_hash(entry, load_audit_key())
    lines[1] = json.dumps(entry) + "\n"
    _write(log, lines)
    result = verify(log.path)
    assert not result.ok and result.first_bad_line == 3 and "prev_hash" in result.reason


def _sha256_rechain(lines: list[str]) -> list[str]:
    """What an attacker without the key can do: recompute every seq, prev_hash and hash with plain SHA-256."""
    out, prev = [], GENESIS_HASH
    for seq, line in enumerate(lines, start=1):
        entry = json.loads(line)
        entry.update(seq=seq, prev_hash=prev)
        entry["hash"] = hashlib.sha256(canonical_json({k: v for k, v in entry.items() if k != "hash"})).hexdigest()
        out.append(json.dumps(entry) + "\n")
        prev = entry["hash"]
    return out


def test_deleted_and_rechained_entry_fails_verify(tmp_path, capsys):
    log = _log(tmp_path, 5)
    lines = _lines(log)
    _write(log, _sha256_rechain(lines[:2] + lines[3:]))
    result = verify(log.path)
    assert not result.ok and result.first_bad_line == 1 and "edited" in result.reason
    assert main(["audit", "verify", str(log.path)]) == 1
    assert "TAMPERED at line 1" in capsys.readouterr().out


def test_truncated_tail_fails_verify_through_the_recorded_anchor(tmp_path, capsys):
    log = _log(tmp_path, 5)
    _write(log, _lines(log)[:3])
    result = verify(log.path)
    assert not result.ok and result.first_bad_line == 4 and "cut off the end" in result.reason
    assert main(["audit", "verify", str(log.path)]) == 1
    assert "entry 5 of the anchor is missing" in capsys.readouterr().out
    assert verify(log.path, use_recorded_anchor=False).ok  # the chain alone cannot tell


def test_emptied_log_fails_verify(tmp_path, capsys):
    log = _log(tmp_path, 3)
    log.path.write_bytes(b"")
    result = verify(log.path)
    assert not result.ok and result.entries == 0
    assert main(["audit", "verify", str(log.path)]) == 1
    assert main(["audit", "verify", str(log.path), "--no-anchor"]) == 1
    assert "empty" in capsys.readouterr().out


def test_deleted_or_forged_anchor_fails_verify(tmp_path, capsys):
    log = _log(tmp_path, 3)
    body = json.loads(log.anchor_file.read_text())
    body.update(seq=1, hash=json.loads(_lines(log)[0])["hash"])
    log.anchor_file.write_text(json.dumps(body))
    result = verify(log.path)
    assert not result.ok and "forged" in result.reason
    log.anchor_file.unlink()
    assert main(["audit", "verify", str(log.path)]) == 1
    assert "no anchor is recorded" in capsys.readouterr().out
    assert main(["audit", "verify", str(log.path), "--no-anchor"]) == 0


def test_another_key_cannot_verify_or_append(tmp_path, monkeypatch):
    log = _log(tmp_path, 2)
    other = tmp_path / "other.key"
    other.write_text("f" * 64)
    monkeypatch.setenv(KEY_FILE_ENV, str(other))
    result = verify(log.path, use_recorded_anchor=False)
    assert not result.ok and result.first_bad_line == 1 and "another key" in result.reason
    with pytest.raises(AuditLogError, match="tampered"):
        log.append("alice", "more", "x")


def test_key_sources_and_the_default_key(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_FILE_ENV)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(ANCHOR_DIR_ENV)
    with pytest.raises(AuditLogError, match="no audit key"):
        load_audit_key()
    log = _log(tmp_path, 2)
    key_file = tmp_path / "config" / "medvl" / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) == 64
    assert log.anchor_file.parent == tmp_path / "config" / "medvl" / "audit-anchors"
    assert verify(log.path).ok
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(AuditLogError, match="at least 16"):
        load_audit_key()


@pytest.mark.parametrize(
    ("change", "bad_line"),
    [
        (lambda lines: lines[:2] + lines[3:], 3),  # deleted
        (lambda lines: lines[:2] + [lines[1]] + lines[2:], 3),  # duplicated line inserted
        (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], 2),  # reordered
        (lambda lines: lines[:4] + ["\n", lines[4]], 5),  # blank line inserted
    ],
    ids=["deleted", "inserted", "reordered", "blank"],
)
def test_structural_tampering_is_named(tmp_path, change, bad_line):
    log = _log(tmp_path)
    _write(log, change(_lines(log)))
    result = verify(log.path)
    assert not result.ok and result.first_bad_line == bad_line


def test_forged_entry_with_its_own_valid_hash_is_detected(tmp_path):
    log = _log(tmp_path, 3)
    lines = _lines(log)
    forged = {"seq": 2, "time": "2020-01-01T00:00:00+00:00", "actor": "mallory", "action": "x", "subject": "y",
              "details": {}, "prev_hash": json.loads(lines[0])["hash"]}
    forged["hash"] = entry_hash(forged, load_audit_key())
    _write(log, [lines[0], json.dumps(forged) + "\n", *lines[1:]])
    result = verify(log.path)
    assert not result.ok and result.first_bad_line == 3


def test_an_anchor_recorded_elsewhere_is_checked_too(tmp_path):
    log = _log(tmp_path, 5)
    anchor = log.head()
    _write(log, _lines(log)[:3])
    result = verify(log.path, anchor=anchor, use_recorded_anchor=False)
    assert not result.ok and result.first_bad_line == 4 and "cut off" in result.reason
    assert not verify(log.path, anchor=(2, "f" * 64), use_recorded_anchor=False).ok


def test_cut_short_last_line(tmp_path):
    log = _log(tmp_path, 3)
    log.path.write_bytes(log.path.read_bytes()[:-10])
    result = verify(log.path)
    assert not result.ok and result.first_bad_line == 3
    with pytest.raises(AuditLogError, match="no newline"):
        log.append("alice", "after.crash", "x")


def test_append_refuses_a_tampered_tail(tmp_path):
    log = _log(tmp_path, 3)
    lines = _lines(log)
    lines[-1] = lines[-1].replace("subject-2", "subject-X")
    _write(log, lines)
    before = log.path.read_bytes()
    with pytest.raises(AuditLogError, match="tampered"):
        log.append("alice", "more", "x")
    assert log.path.read_bytes() == before


def test_append_validates_its_arguments(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(ValueError, match="actor"):
        log.append("", "a", "s")
    with pytest.raises(TypeError, match="JSON-serialisable"):
        log.append("alice", "a", "s", path=Path("/x"))
    with pytest.raises(TypeError, match="JSON-serialisable"):
        log.append("alice", "a", "s", value=float("nan"))
    assert not log.path.exists()


def _append_many(path: str, worker: int, count: int) -> None:
    log = AuditLog(path)
    for i in range(count):
        log.append(f"worker-{worker}", "concurrent.append", f"{worker}/{i}")


def test_concurrent_appenders_keep_one_chain(tmp_path):
    path = str(tmp_path / "audit.jsonl")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(path, w, 40)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    result = verify(path)
    assert result.ok and result.entries == 160
    subjects = sorted(e["subject"] for e in AuditLog(path).entries())
    assert subjects == sorted(f"{w}/{i}" for w in range(4) for i in range(40))


def test_cli_verify_exit_codes(tmp_path, capsys):
    log = _log(tmp_path, 3)
    seq, digest = log.head()
    assert main(["audit", "verify", str(log.path), "--anchor", f"{seq}:{digest}"]) == 0
    assert f"ok, 3 entries, head 3:{digest}" in capsys.readouterr().out
    lines = _lines(log)
    _write(log, [lines[0], lines[2]])
    assert main(["audit", "verify", str(log.path)]) == 1
    assert "TAMPERED at line 2" in capsys.readouterr().out
    assert main(["audit", "verify", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "missing.jsonl" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "verify", str(log.path), "--anchor", "3:nothex"])
    assert exit_info.value.code == 2


def test_cli_show_tail(tmp_path, capsys):
    log = _log(tmp_path, 4)
    assert main(["audit", "show", str(log.path), "--tail", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[4] for line in out] == ["subject-2", "subject-3"]
    assert json.loads(out[0].split("\t")[5]) == {"index": 2, "note": "ü"}
    assert main(["audit", "show", str(log.path), "--tail", "10"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert main(["audit", "show", str(log.path), "--tail", "-1"]) == 2
