"""De-identify a folder tree of DICOM files after the DICOM PS3.15 Basic Application Level Confidentiality
Profile (with the Retain Longitudinal Temporal Information with Modified Dates option), and mask PHI in report
texts (.txt, .csv, .tsv). Other files are not copied.

OUT mirrors IN. UIDs are remapped with a keyed hash (studies and series stay linked), PatientID and PatientName
become a keyed pseudonym, every date of a patient moves by the same keyed number of days, private tags are dropped,
pixel data is copied byte for byte. Images that may carry burned-in text (BurnedInAnnotation YES, or missing on
US/XC/ES/secondary capture) go to OUT/quarantine unless --allow-burned-in.

The run is resumable: rerun the same command after an interruption and it finishes the remaining files.
OUT/deid_report.csv and OUT/deid_report.json list what happened to every file.

The key (at least 16 bytes) comes from --key-file, $MEDVL_DEID_KEY_FILE or $MEDVL_DEID_KEY. Keep it secret and
keep it: the same key gives the same pseudonyms, so later exports link to earlier ones.
Create one with: python -c 'import secrets; print(secrets.token_hex(32))' > deid.key

Exit status: 0 all files handled, 1 some files failed (see the report), 2 bad invocation.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from governance.audit import AuditLog, AuditLogError

HELP = "de-identify a DICOM folder tree (PS3.15 basic profile), resumable, with a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``medvl deid`` arguments to ``parser``."""
    parser.add_argument("input", metavar="IN", type=Path, help="folder tree to de-identify")
    parser.add_argument("output", metavar="OUT", type=Path, help="output folder (outside IN); reuse it to resume")
    parser.add_argument("--key-file", type=Path, help="file holding the secret key (default: $MEDVL_DEID_KEY_FILE)")
    parser.add_argument("--allow-burned-in", action="store_true",
                        help="write images that may carry burned-in text to OUT instead of OUT/quarantine")
    parser.add_argument("--workers", type=int, default=1, metavar="K", help="parallel processes (default 1)")
    parser.add_argument("--audit-log", type=Path, metavar="LOG", help="append a 'deid.run' entry to this audit log")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``medvl deid``; returns the exit status."""
    from governance.deid import DeidConfigError, KeyedHasher, deidentify_tree, load_key

    try:
        key = load_key(args.key_file)
        summary = deidentify_tree(args.input, args.output, key, allow_burned_in=args.allow_burned_in,
                                  workers=args.workers, progress=not args.no_progress)
    except DeidConfigError as exc:
        print(f"medvl deid: {exc}", file=sys.stderr)
        return 2
    print(summary.line())
    if args.audit_log:
        try:
            AuditLog(args.audit_log).append(
                getpass.getuser(), "deid.run", str(args.input.resolve()), output=str(args.output.resolve()),
                key_fingerprint=KeyedHasher(key).fingerprint, allow_burned_in=args.allow_burned_in,
                statuses=summary.statuses, totals=summary.totals)
        except AuditLogError as exc:
            print(f"medvl deid: {exc}", file=sys.stderr)
            return 2
    return 1 if summary.failed else 0
