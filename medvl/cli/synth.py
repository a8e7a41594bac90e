"""Write a synthetic phantom cohort: chest radiographs and CTs with planted findings, masks and reports.

  medvl synth -o phantoms                                  200 radiographs at 256 px, seed 0
  medvl synth -o phantoms --n-2d 20000 --workers 8         a throughput cohort
  medvl synth -o phantoms --n-2d 500 --n-3d 20 --size 128 --montage docs/images/phantoms.png

The folder gets cohort.json (generator version and parameters), studies.csv (one row per study: paths,
labels, report, phrasing pool...) and one folder per study (PNG + mask PNG, some DX/CR DICOM; CT as a
NIfTI volume and NIfTI mask, and a DICOM series for --ct-dicom-fraction of them). The same arguments give
byte-identical files. Read it into a manifest with 'medvl ingest phantom DIR -o cohort.parquet'.

  medvl synth -o ct --n-2d 0 --n-3d 2000 --depth 40,200 --ct-dicom-fraction 0.1 --workers 8
                                                           a CT training cohort, DICOM for 10 %
  medvl synth -o iu-phantoms --from-reports iu-xray ../shared/data/iu_reports/NLMCXR_reports.tgz --size 128
                                                           one radiograph per real IU X-ray report, drawn
                                                           from what the report says and paired with it
                                                           (--n-2d caps the reports; never ship the result:
                                                           the IU licence allows no modified copies)
"""

from __future__ import annotations

import argparse
import sys

HELP = "write a synthetic phantom cohort (radiographs, CTs, masks, reports) for demos and tests"


def _depth(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(",")
    try:
        return (int(low), int(high)) if sep else (int(low), int(low))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not MIN,MAX slice counts (e.g. 24,48)") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", required=True, help="cohort folder to write (empty or absent)")
    parser.add_argument("--n-2d", type=int, help="chest radiographs (default 200; with --from-reports: all reports)")
    parser.add_argument("--n-3d", type=int, default=0, help="CT scans (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--size", type=int, default=256, help="radiograph side in pixels (default 256)")
    parser.add_argument("--ct-size", type=int, default=128, help="CT matrix, rows = columns (default 128)")
    parser.add_argument(
        "--depth",
        type=_depth,
        default=(24, 48),
        metavar="MIN,MAX",
        help="CT slice count range, 16-512 (default 24,48); slices are 0.625-5 mm thick for a 120-420 mm scan",
    )
    parser.add_argument(
        "--eval-fraction",
        type=float,
        default=0.2,
        help="share of patients whose reports use held-out phrasings (default 0.2)",
    )
    parser.add_argument(
        "--dicom-fraction",
        type=float,
        default=0.2,
        help="share of radiographs also written as DICOM (default 0.2)",
    )
    parser.add_argument(
        "--ct-dicom-fraction",
        type=float,
        default=1.0,
        help="share of CTs also written as a DICOM series; the NIfTI is always written (default 1.0)",
    )
    parser.add_argument("--from-reports", nargs=2, metavar=("SOURCE", "PATH"),
                        help="render one radiograph per real report of SOURCE (iu-xray: the NLMCXR_reports.tgz "
                             "archive or its folder) from the findings it states, paired with its text")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1: in process)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous cohort in --out")
    parser.add_argument(
        "--montage", metavar="PNG", help="also draw example studies with their masks into PNG"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from medvl.data.phantom import PhantomError, synthesize  # scipy, pandas: only when the command runs

    if args.from_reports:
        return _from_reports(args)
    try:
        index = synthesize(
            args.out,
            n_2d=200 if args.n_2d is None else args.n_2d,
            n_3d=args.n_3d,
            seed=args.seed,
            size=args.size,
            ct_size=args.ct_size,
            depth_range=args.depth,
            eval_fraction=args.eval_fraction,
            dicom_fraction=args.dicom_fraction,
            ct_dicom_fraction=args.ct_dicom_fraction,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
        montage = None
        if args.montage:
            # Imported only when asked: matplotlib would slow every 'medvl' command down.
            from medvl.data.phantom.montage import write_montage

            montage = write_montage(index.parent, args.montage)
    except (PhantomError, OSError) as exc:
        print(f"medvl synth: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {index}: {200 if args.n_2d is None else args.n_2d} radiographs, {args.n_3d} CTs"
        + (f"; montage {montage}" if montage else "")
    )
    return 0


def _from_reports(args: argparse.Namespace) -> int:
    from medvl.data.phantom import PhantomError, read_index
    from medvl.data.phantom.from_reports import SOURCES, synthesize_from_reports
    from medvl.text.errors import ReportSourceError
    from medvl.text.iu_xray import read_iu_reports

    source, path = args.from_reports
    if source not in SOURCES:
        print(f"medvl synth: --from-reports {source}: choose one of {', '.join(SOURCES)}", file=sys.stderr)
        return 2
    try:
        reports = read_iu_reports(path)
        limit = args.n_2d  # caps the reports when given
        index = synthesize_from_reports(args.out, reports, seed=args.seed, size=args.size,
                                        eval_fraction=args.eval_fraction, limit=limit, workers=args.workers,
                                        overwrite=args.overwrite, progress=not args.quiet)  # fmt: skip
    except (PhantomError, ReportSourceError, OSError) as exc:
        print(f"medvl synth: {exc}", file=sys.stderr)
        return 2
    count = len(read_index(index.parent))
    print(f"wrote {index}: {count} radiographs rendered from {source} reports (do not share: see --help)")
    return 0
