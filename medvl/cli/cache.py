"""Decode, orient, normalise and resize every image of a manifest once, into memory-mapped uint8 shards
that a training loader (medvl.data.cache.CachedCohort) reads at memory speed.

  medvl cache cohort.parquet -o cache/cohort-224
  medvl cache ct.parquet -o cache/ct --size 256 --ct-window mediastinum --slice-mm 3 --workers 8
  medvl cache mimic.parquet -o parts/part-3-of-16 --shard 3/16 --workers 8   (one cluster task)
  medvl cache --merge parts/part-*-of-16 -o cache/mimic-224                  (after all 16 tasks)

Volumes are stored as axial slices (LPS: inferior to superior, anterior up, patient's left on the right) with
each slice's z in mm; 2D images as one slice. Intensities: CT through the named window, other modalities
between the 0.5 and 99.5 percentiles; then uint8. Re-running with the same manifest and settings does
nothing; an interrupted run resumes after its last finished shard; other settings need --overwrite or another
folder. Images that cannot be decoded go to CACHE_DIR/quarantine.csv and the run goes on.

--shard i/n builds only the i-th of n contiguous blocks of the studies (in study id order) into its own
folder, so n tasks can run at once on different nodes. --merge checks that the n parts of one build are all
there and complete, and hard-links their shards into one cache that reads exactly as an unsharded build
(same items, order and key); the parts stay intact and may be deleted afterwards.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from medvl.cli.options import add_max_decoded_bytes, apply_max_decoded_bytes

if TYPE_CHECKING:
    from medvl.data.cache_build import CacheResult

HELP = "prepare a manifest's images once into a memory-mapped training cache, or merge cache parts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from medvl.io.windowing import WINDOW_PRESETS

    parser.add_argument("manifest", nargs="?", help="manifest written by 'medvl ingest' (.parquet)")
    parser.add_argument("-o", "--out", required=True, help="cache folder (created); with --shard, the part's folder")
    parser.add_argument("--shard", default="0/1", help="build only part i of n of the studies: i/n (default 0/1)")
    parser.add_argument("--merge", nargs="+", metavar="PART", help="merge these part folders into --out")
    parser.add_argument("--size", type=int, default=224, help="side of the square images in pixels (default 224)")
    parser.add_argument("--ct-window", default="lung", choices=sorted(WINDOW_PRESETS), help="window for CT (default lung)")
    parser.add_argument("--crop-body", action="store_true",
                        help="crop CT in plane to the body (HU > -500, 5 mm margin) before fitting the square")
    parser.add_argument("--slice-mm", type=float, default=None, help="resample volumes to this slice spacing (mm)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default 0: in process)")
    parser.add_argument("--shard-mb", type=float, default=1024.0, help="MB of image slices per shard (default 1024)")
    parser.add_argument("--overwrite", action="store_true", help="replace a cache built with other settings")
    add_max_decoded_bytes(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from medvl.data.cache import CacheError
    from medvl.data.manifest import ManifestError

    try:
        apply_max_decoded_bytes(args)
        result = _run(args)
    except (CacheError, ManifestError, ValueError, OSError) as exc:
        print(f"medvl cache: {exc}", file=sys.stderr)
        return 2
    state = "up to date" if result.up_to_date else f"{'merged' if args.merge else 'built'} in {result.seconds:.1f} s"
    print(f"cache {result.cache_dir}: {result.items} images ({result.slices} slices), {result.quarantined} "
          f"quarantined; {state}")
    return 0


def _run(args: argparse.Namespace) -> CacheResult:
    from medvl.data.cache_build import build_cache, merge_parts  # imports torch: only when the command runs
    from medvl.data.ingest import parse_shard
    from medvl.data.preprocess import PrepSettings

    if args.merge:
        if args.manifest:
            raise ValueError("--merge takes part folders only, not a MANIFEST")
        return merge_parts(args.merge, args.out, overwrite=args.overwrite)
    if not args.manifest:
        raise ValueError("need MANIFEST (or --merge PART...); see medvl cache --help")
    settings = PrepSettings(size=args.size, ct_window=args.ct_window, slice_mm=args.slice_mm, crop_body=args.crop_body)
    return build_cache(args.manifest, args.out, settings, part=parse_shard(args.shard), workers=args.workers,
                       shard_mb=args.shard_mb, overwrite=args.overwrite, progress=not args.quiet)
