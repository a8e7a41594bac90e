"""Fit a saved model's finding calibration and training domain on its cache (what 'medvl pretrain' does at the end).

  medvl calibrate runs/phantom-tiny/model phantom-cache

For a model saved before calibration existed, or after changing its validation split: writes calibration.json,
domain.json and domain-embeddings.npz into the model folder (docs/predict.md says what they hold) and prints
what the model was trained on and which findings it now offers per kind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "fit a saved model's calibration and out-of-distribution reference on its cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a local model folder (written into)")
    parser.add_argument("cache", help="the cache the model was trained on ('medvl cache')")
    parser.add_argument("--train-split", default="train", help="split of the training studies (default train)")
    parser.add_argument("--val-split", default="val", help="split the calibration is fitted on (default val)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:

    from medvl.data.cache import CacheError, read_meta
    from medvl.infer.calibration import kind_name
    from medvl.infer.profile_fit import fit_profile

    if not (Path(args.model) / "config.json").is_file():
        print(f"medvl calibrate: {args.model}: not a saved model folder (no config.json)", file=sys.stderr)
        return 2
    trained_on = _trained_cache_key(Path(args.model))
    try:
        key = read_meta(args.cache).get("key")
    except (CacheError, OSError) as exc:
        print(f"medvl calibrate: {exc}", file=sys.stderr)
        return 2
    if trained_on and key != trained_on:
        print(f"medvl calibrate: {args.cache}: not the cache this model was trained on (cache key {key}, the "
              f"model's lineage.json says {trained_on}); pass that cache", file=sys.stderr)  # fmt: skip
        return 2
    try:
        calibration, domain = fit_profile(args.model, args.cache, args.train_split, args.val_split,
                                          progress=not args.quiet)  # fmt: skip
    except (CacheError, ValueError, FileNotFoundError) as exc:
        print(f"medvl calibrate: {exc}", file=sys.stderr)
        return 2
    print(f"{args.model}: trained on {domain.describe()}")
    for kind in domain.kinds:
        offered = calibration.findings(kind)
        print(f"  {kind_name(kind)}s: {len(offered)} findings calibrated ({', '.join(offered) or 'none'})")
    return 0


def _trained_cache_key(model_dir: Path) -> str:
    """The cache key the model's ``lineage.json`` records ("" when it has none)."""
    import json

    path = model_dir / "lineage.json"
    try:
        return str(json.loads(path.read_text()).get("cache_key") or "") if path.is_file() else ""
    except ValueError:
        return ""
