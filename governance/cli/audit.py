"""Inspect a tamper-evident audit log (JSON Lines, each entry chained to the previous one by a keyed hash).

  medvl audit verify LOG [--audit-key-file K] [--anchor-file A | --no-anchor] [--anchor SEQ:HASH]
  medvl audit show LOG [--tail N]

verify exits 0 when the chain is intact and the log still holds the head recorded in its anchor file, 1 when it
was tampered with (an edited, deleted, inserted, reordered or re-chained line, entries cut off the end, an emptied
file, a missing or forged anchor), 2 when the log or the key cannot be read. --anchor checks a (seq, hash) pair
recorded somewhere else as well.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from governance.audit import (
    ANCHOR_DIR_ENV,
    KEY_ENV,
    KEY_FILE_ENV,
    AuditLog,
    AuditLogError,
    load_audit_key,
    verify,
)

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
    check.add_argument("--audit-key-file", type=Path, metavar="FILE",
                       help=f"the key the log was written with (default ${KEY_FILE_ENV}, ${KEY_ENV}, else "
                            "~/.config/medvl/audit.key)")
    anchors = check.add_mutually_exclusive_group()
    anchors.add_argument("--anchor-file", type=Path, metavar="FILE",
                         help=f"the head recorded at each append (default: in ${ANCHOR_DIR_ENV}, else "
                              "~/.config/medvl/audit-anchors)")
    anchors.add_argument("--no-anchor", action="store_true",
                         help="check the chain alone (a copied log whose anchor is elsewhere); cannot detect "
                              "entries cut off the end")
    show = sub.add_parser("show", help="print the entries")
    show.add_argument("log", metavar="LOG", type=Path, help="the audit log file")
    show.add_argument("--tail", type=int, metavar="N", help="only the last N entries")


def _verify(args: argparse.Namespace) -> int:
    key = load_audit_key(args.audit_key_file)
    result = verify(args.log, args.anchor, key=key, anchor_file=args.anchor_file, use_recorded_anchor=not args.no_anchor)
    if result.ok:
        print(f"{args.log}: ok, {result.entries} entries, head {result.entries}:{result.head_hash}")
        return 0
    where = f" at line {result.first_bad_line}" if result.first_bad_line is not None else ""
    print(f"{args.log}: TAMPERED{where}: {result.reason} ({result.entries} valid entries before it)")
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
