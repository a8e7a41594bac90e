"""Turn a source tree into a cohort manifest (one row per study, Parquet), with a quarantine report.

  medvl ingest covid-cxr ../shared/data/cxr_covid -o cohort.parquet
  medvl ingest dicom-folder /pacs/export -o pacs.parquet --option reports=/pacs/reports.csv
  medvl ingest mimic-cxr /data/mimic-cxr-jpg -o part3.parquet --shard 3/16 --workers 8   (one cluster task)
  medvl ingest --merge part*.parquet -o mimic.parquet                                  (after all 16 tasks)
  medvl ingest --list

Beside the manifest it writes NAME.quarantine.csv (path, reason, error_type, unit of every file left out:
missing, empty or corrupt files, units that could not be read, studies sharing an image with another
study) and NAME.ingest.json (source, root, options, shard, counts, content hash). Unreadable input never stops
the run. Patients get train/val/test by a hash of the patient id (stable across runs and shard layouts);
a split given by the source is kept unless --no-source-splits. Shard manifests keep only source splits;
--merge checks that all n shards of one run are there and writes what an unsharded run would.

Adapters read headers only. --check-images also decodes every image once, as 'medvl cache' will, and
quarantines those medvl refuses (truncated or corrupt pixels, inconsistent series geometry, NIfTI/NRRD without
orientation, images over the decoded-size limit of --max-decoded-bytes / $MEDVL_MAX_DECODED_BYTES) with the
reason; DICOM headers are always read under that limit (a deflated file is inflated in bounded chunks).

PHI: before anything is written, DICOM headers (names, IDs, birth date, accession number...) and report texts
(names, dates, record numbers, phone numbers, addresses...) are checked. --phi-policy warn (default) lists the
files and fields that still carry PHI on stderr and in NAME.ingest.json; refuse exits with status 2 listing
them and writes nothing; off skips the check. De-identify sources first with 'medvl deid'.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from medvl.cli.options import add_max_decoded_bytes, apply_max_decoded_bytes

if TYPE_CHECKING:
    from medvl.data.ingest import IngestResult

HELP = "build a cohort manifest from a source tree (quarantining unreadable files), or merge shards"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from medvl.data.splits import DEFAULT_FRACTIONS, DEFAULT_SALT  # pandas: only for this command

    parser.add_argument("source", nargs="?", help="source adapter (see --list)")
    parser.add_argument("path", nargs="?", help="the source's root folder (or report archive)")
    parser.add_argument("-o", "--out", help="manifest to write (.parquet)")
    parser.add_argument("--shard", default="0/1", help="take every n-th unit from the i-th: i/n (default 0/1)")
    parser.add_argument("--merge", nargs="+", metavar="SHARD", help="merge these shard manifests into --out")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default 0: in process)")
    parser.add_argument("--split", default=",".join(str(f) for f in DEFAULT_FRACTIONS),
                        help="train,val,test shares of patients (default 0.8,0.1,0.1)")
    parser.add_argument("--salt", default=DEFAULT_SALT, help="salt of the patient hash that draws splits")
    parser.add_argument("--no-source-splits", action="store_true",
                        help="ignore splits given by the source and draw every patient by hash")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="adapter option, repeatable (dicom-folder: reports=CSV; iu-xray: images=DIR, "
                             "text_only=true; mimic-cxr: reports=DIR; sources with drawn masks: work_dir=DIR)")
    parser.add_argument("--phi-policy", choices=("warn", "refuse", "off"), default="warn",
                        help="sources that still carry PHI: warn and list them (default), refuse (exit 2, write "
                             "nothing) or off (no check)")
    parser.add_argument("--check-images", action="store_true",
                        help="decode every image once, as 'medvl cache' will, and quarantine those medvl refuses "
                             "(corrupt or truncated pixels, bad geometry, unknown NIfTI orientation, too large)")
    add_max_decoded_bytes(parser)
    parser.add_argument("--list", action="store_true", help="list the sources and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from medvl.data.adapters import ADAPTERS  # adapters import their readers: only when run
    from medvl.data.ingest import IngestError
    from medvl.data.manifest import ManifestError
    from medvl.io.errors import MedvlIOError

    if args.list:
        for name, adapter in sorted(ADAPTERS.items()):
            print(f"{name:14s} {adapter.description}")
        return 0
    try:
        apply_max_decoded_bytes(args)
        result = _run(args)
    except (IngestError, ManifestError, MedvlIOError, ValueError, OSError) as exc:
        print(f"medvl ingest: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"medvl ingest: {exc.args[0]}", file=sys.stderr)
        return 2
    _warn_phi(result)
    print(f"wrote {result.manifest}: {result.studies} studies from {result.units} units, "
          f"{result.quarantined} quarantined ({result.quarantine}); hash {result.hash[:16]}")
    return 0


def _warn_phi(result: IngestResult, shown: int = 20) -> None:
    """List the sources that still carry PHI on stderr (the first ``shown``; all are in the ingest record)."""
    findings = result.phi_findings
    if not findings:
        return
    print(f"medvl ingest: warning: {len(findings)} source(s) still carry PHI (de-identify them with medvl deid):",
          file=sys.stderr)
    for finding in findings[:shown]:
        print(f"  {finding.line()}", file=sys.stderr)
    if len(findings) > shown:
        print(f"  ... and {len(findings) - shown} more, all listed in {result.record}", file=sys.stderr)


def _run(args: argparse.Namespace) -> IngestResult:
    from medvl.data.ingest import ingest, merge_shards, parse_shard

    if not args.out:
        raise ValueError("missing -o/--out MANIFEST")
    if args.merge:
        if args.source or args.path:
            raise ValueError("--merge takes shard manifests only, not SOURCE PATH")
        return merge_shards(args.merge, args.out)
    if not (args.source and args.path):
        raise ValueError("need SOURCE PATH (or --merge SHARD...); see medvl ingest --help")
    return ingest(
        args.source,
        args.path,
        args.out,
        shard=parse_shard(args.shard),
        split_fractions=_fractions(args.split),
        salt=args.salt,
        source_splits=not args.no_source_splits,
        workers=args.workers,
        options=_options(args.option),
        progress=not args.quiet,
        phi_policy=args.phi_policy,
        check_images=args.check_images,
    )


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError as exc:
        raise ValueError(f"--split '{text}': expected three numbers like 0.8,0.1,0.1") from exc


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option '{pair}': expected KEY=VALUE")
        options[key] = value
    return options
