"""The hash-chained audit log: appends, tamper detection, concurrent appenders, and the ``medvl audit`` CLI."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from governance.audit import GENESIS_HASH, AuditLog, AuditLogError, entry_hash, verify
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
    assert second["hash"] == entry_hash(second) and second["details"] == {"alias": "champion"}
    assert log.head() == (2, second["hash"])
    assert [e["subject"] for e in log.entries()] == ["/data/in", "models:/m-1"]
    result = verify(log.path)
    assert result.ok and result.entries == 2 and result.first_bad_line is None and result.head_hash == second["hash"]


def test_empty_or_absent_log(tmp_path):
    assert AuditLog(tmp_path / "none.jsonl").head() == (0, GENESIS_HASH)
    (tmp_path / "empty.jsonl").write_text("")
    assert verify(tmp_path / "empty.jsonl").ok
    with pytest.raises(AuditLogError, match="cannot read"):
        verify(tmp_path / "none.jsonl")


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
    entry["hash"] = entry_hash(entry)
    lines[1] = json.dumps(entry) + "\n"
    _write(log, lines)
    result = verify(log.path)
    assert not result.ok and result.first_bad_line == 3 and "prev_hash" in result.reason


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
    forged["hash"] = entry_hash(forged)
    _write(log, [lines[0], json.dumps(forged) + "\n", *lines[1:]])
    result = verify(log.path)
    assert not result.ok and result.first_bad_line == 3


def test_truncation_needs_an_anchor(tmp_path):
    log = _log(tmp_path, 5)
    anchor = log.head()
    _write(log, _lines(log)[:3])
    assert verify(log.path).ok
    result = verify(log.path, anchor=anchor)
    assert not result.ok and result.first_bad_line == 4 and "cut off" in result.reason
    assert not verify(log.path, anchor=(2, "f" * 64)).ok


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
