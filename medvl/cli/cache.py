"""Decode, orient, normalise and resize every image of a manifest once, into memory-mapped uint8 shards
that a training loader (medvl.data.cache.CachedCohort) reads at memory speed.

  medvl cache cohort.parquet -o cache/cohort-224
  medvl cache ct.parquet -o cache/ct --size 256 --ct-window mediastinum --slice-mm 3 --workers 8

Volumes are stored as axial slices (LPS: inferior to superior, anterior up, patient's left on the right) with
each slice's z in mm; 2D images as one slice. Intensities: CT through the named window, other modalities
between the 0.5 and 99.5 percentiles; then uint8. Re-running with the same manifest and settings does
nothing; an interrupted run resumes after its last finished shard; other settings need --overwrite or another
folder. Images that cannot be decoded go to CACHE_DIR/quarantine.csv and the run goes on.
"""

from __future__ import annotations

import argparse
import sys

from medvl.io import WINDOW_PRESETS

HELP = "prepare a manifest's images once into a memory-mapped training cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="manifest written by 'medvl ingest' (.parquet)")
    parser.add_argument("-o", "--out", required=True, help="cache folder (created)")
    parser.add_argument("--size", type=int, default=224, help="side of the square images in pixels (default 224)")
    parser.add_argument("--ct-window", default="lung", choices=sorted(WINDOW_PRESETS), help="window for CT (default lung)")
    parser.add_argument("--slice-mm", type=float, default=None, help="resample volumes to this slice spacing (mm)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default 0: in process)")
    parser.add_argument("--shard-mb", type=float, default=1024.0, help="MB of image slices per shard (default 1024)")
    parser.add_argument("--overwrite", action="store_true", help="replace a cache built with other settings")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from medvl.data.cache import CacheError
    from medvl.data.cache_build import build_cache  # imports torch: only when the command runs
    from medvl.data.manifest import ManifestError
    from medvl.data.preprocess import PrepSettings

    try:
        settings = PrepSettings(size=args.size, ct_window=args.ct_window, slice_mm=args.slice_mm)
        result = build_cache(args.manifest, args.out, settings, workers=args.workers, shard_mb=args.shard_mb,
                             overwrite=args.overwrite, progress=not args.quiet)
    except (CacheError, ManifestError, ValueError, OSError) as exc:
        print(f"medvl cache: {exc}", file=sys.stderr)
        return 2
    state = "up to date" if result.up_to_date else f"built in {result.seconds:.1f} s"
    print(f"cache {result.cache_dir}: {result.items} images ({result.slices} slices), {result.quarantined} "
          f"quarantined; {state}")
    return 0
