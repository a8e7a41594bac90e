"""Inspect a tamper-evident audit log (JSON Lines, each entry hash-chained to the previous one).

  medvl audit verify LOG [--anchor SEQ:HASH]   check the whole chain; names the first bad line
  medvl audit show LOG [--tail N]              print the entries

verify exits 0 when the chain is intact, 1 when it was tampered with (an edited, deleted, inserted or reordered
line), 2 when LOG cannot be read. Entries cut off the end leave a valid shorter chain: pass a (seq, hash) pair
recorded earlier with --anchor to detect that.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from governance.audit import AuditLog, AuditLogError, verify

HELP = "verify or show a tamper-evident audit log"


def _anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError(f"expected SEQ:HASH (a number and 64 hex digits), not {text!r}")
    return int(seq), digest.lower()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``verify`` and ``show`` subcommands to ``parser``."""
    sub = parser.add_subparsers(dest="audit_command", metavar="{verify,show}", required=True)
    check = sub.add_parser("verify", help="check the hash chain; exit 0 intact, 1 tampered, 2 unreadable")
    check.add_argument("log", metavar="LOG", type=Path, help="the audit log file")
    check.add_argument("--anchor", type=_anchor, metavar="SEQ:HASH",
                       help="an entry recorded elsewhere that the log must still hold (detects truncation)")
    show = sub.add_parser("show", help="print the entries")
    show.add_argument("log", metavar="LOG", type=Path, help="the audit log file")
    show.add_argument("--tail", type=int, metavar="N", help="only the last N entries")


def _verify(args: argparse.Namespace) -> int:
    result = verify(args.log, args.anchor)
    if result.ok:
        print(f"{args.log}: ok, {result.entries} entries, head {result.entries}:{result.head_hash}")
        return 0
    print(f"{args.log}: TAMPERED at line {result.first_bad_line}: {result.reason} "
          f"({result.entries} valid entries before it)")
    return 1


def _show(args: argparse.Namespace) -> int:
    if args.tail is not None and args.tail < 0:
        print(f"medvl audit: --tail must be >= 0, not {args.tail}", file=sys.stderr)
        return 2
    entries = list(AuditLog(args.log).entries())
    for entry in entries[max(0, len(entries) - args.tail):] if args.tail is not None else entries:
        details = json.dumps(entry.get("details", {}), ensure_ascii=False, sort_keys=True)
        print(f"{entry.get('seq')}\t{entry.get('time')}\t{entry.get('actor')}\t{entry.get('action')}\t"
              f"{entry.get('subject')}\t{details}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``medvl audit verify|show``; returns the exit status."""
    try:
        return _verify(args) if args.audit_command == "verify" else _show(args)
    except AuditLogError as exc:
        print(f"medvl audit: {exc}", file=sys.stderr)
        return 2
