"""Out-of-distribution flag rates of saved models (issue 14 targets), printed as a Markdown table.

  python benchmarks/ood_rates.py --model phantom=runs/phantom-tiny/model:phantom-cache \
      --model covid=runs/cxr-covid/model:covid-cache --xrays $MEDVL_REALDATA/cxr_covid/images \
      --volumes $MEDVL_REALDATA/volumes

For each model (``NAME=MODEL_DIR:CACHE_DIR``): the share of its own cache's test split flagged (read from the
cache as training saw it), of the real chest X-rays under --xrays (JPEG/PNG/DICOM) and of every volume file
under --volumes (NIfTI, NRRD; DICOM series folders) flagged as out of distribution. Rows of a model trained on
those X-rays count only the X-rays of its test split as unseen (the rest trained it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medvl.data.cache import CachedCohort
from medvl.infer.loading import prepare_input
from medvl.infer.predict import find_targets, predict_one
from medvl.infer.profile_fit import cohort_input
from medvl.infer.reading import Reader


def _rate(flags: list[bool]) -> str:
    return f"{np.mean(flags):.3f} ({int(np.sum(flags))}/{len(flags)})" if flags else "-"


def own_test_split(reader: Reader, cache: Path) -> tuple[list[bool], set[str]]:
    """Flags of the cache's test studies, and the source paths of every study in the cache's train/val splits."""
    cohort = CachedCohort(cache)
    flags = []
    for kind in ("2d", "3d"):
        for i in tqdm(cohort.select("test", kind), desc="own test split", leave=False):
            flags.append(reader.read(cohort_input(cohort, int(i)), cohort.modalities[i]).out_of_distribution)
    seen = {Path(cohort.text("path", i)).name for i in range(len(cohort)) if cohort.splits[i] != "test"}
    return flags, seen


def file_flags(reader: Reader, paths: list[Path], desc: str) -> list[bool]:
    """Flags of image files or folders (each DICOM series one input); unreadable inputs are left out."""
    flags = []
    for target in tqdm([t for p in paths for t in find_targets(p)], desc=desc, leave=False):
        result = predict_one(reader, target)
        if result["status"] == "ok":
            flags.append(bool(result["out_of_distribution"]))
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="NAME=MODEL_DIR:CACHE_DIR")
    parser.add_argument("--xrays", type=Path, help="a folder of real chest X-rays")
    parser.add_argument("--volumes", type=Path, help="a folder searched for CT / MR volumes")
    args = parser.parse_args()
    xrays = sorted(p for p in args.xrays.iterdir() if p.is_file()) if args.xrays else []
    volumes = sorted(args.volumes.rglob("*.nii*")) + sorted(args.volumes.rglob("*.nrrd")) if args.volumes else []
    print("| model | own test split flagged | unseen real chest X-rays flagged | volumes flagged |")
    print("|---|---:|---:|---:|")
    for spec in args.model:
        name, _, dirs = spec.partition("=")
        model_dir, _, cache = dirs.partition(":")
        reader = Reader(model_dir)
        own, seen = own_test_split(reader, Path(cache))
        unseen = [p for p in xrays if p.name not in seen]
        real = [reader.read(prepare_input(p, reader.prep)).out_of_distribution for p in tqdm(unseen, leave=False)]
        print(f"| {name} | {_rate(own)} | {_rate(real)} | {_rate(file_flags(reader, volumes, 'volumes'))} |")


if __name__ == "__main__":
    main()
