"""Training-time image loading: the ``medvl cache`` shards against decoding every epoch with MONAI.

For each cohort the same files are loaded for ``--epochs`` epochs, ``--repeats`` times, alternating the two
ways so both see the same machine load; the result is the median time per epoch:

- baseline: MONAI ``LoadImage`` (PILReader for PNG/JPEG, PydicomReader for DICOM files and series folders,
  NibabelReader for NIfTI), ``Orientation(LPS)`` for volumes, then the very transforms the cache applies
  (:func:`medvl.data.preprocess.normalise`, :func:`~medvl.data.preprocess.fit_square`, uint8 levels), giving
  the float32 tensor a training loop would receive;
- cached: :class:`medvl.data.cache.CachedCohort` items (memory-mapped uint8 shards -> float32 tensor).

Cohorts: a phantom cohort written by ``medvl.data.phantom.synthesize`` (PNG radiographs, DX DICOM
radiographs, CT DICOM series, ingested with the ``phantom`` adapter) and, when the shared bundle is present,
the 241 real ``cxr_covid`` JPEGs. The one-time cache build is timed too, and the mean absolute difference
between baseline and cached 2D images is reported as a check that both do the same work.

Run: .venv/bin/python benchmarks/bench_cache.py [--n-2d 64] [--n-3d 4] [--epochs 3] [--repeats 5]
     [--size 224] [--markdown cache-benchmark.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import monai
import numpy as np
import torch
from monai.transforms import LoadImage, Orientation

from medvl.data.cache import CachedCohort
from medvl.data.cache_build import build_cache
from medvl.data.ingest import ingest
from medvl.data.manifest import read_manifest, resolve_path
from medvl.data.phantom import synthesize
from medvl.data.preprocess import PrepSettings, fit_square, normalise, quantise
from medvl.realdata import realdata_root


class MonaiBaseline:
    """Decode one manifest image reference with MONAI and apply the cache's transforms."""

    def __init__(self, settings: PrepSettings) -> None:
        self.settings = settings
        self.raster = LoadImage(image_only=True, ensure_channel_first=True, reader="PILReader")
        self.dicom = LoadImage(image_only=True, ensure_channel_first=True, reader="PydicomReader")
        self.nifti = LoadImage(image_only=True, ensure_channel_first=True, reader="NibabelReader")
        self.orient = Orientation(axcodes="LPS")

    def __call__(self, ref: dict) -> torch.Tensor:
        path = Path(ref["path"])
        if path.is_dir() or path.suffix == ".dcm":
            image = self.dicom(str(path))
        elif path.name.endswith((".nii", ".nii.gz")):
            image = self.nifti(str(path))
        else:
            image = self.raster(str(path))
        affine = np.asarray(image.affine)
        if image.ndim == 4:  # (C, X, Y, Z) -> (S, rows, cols)
            image = self.orient(image)
            slices = image[0].numpy().transpose(2, 1, 0)
        else:  # (C, X, Y) -> (1, rows, cols)
            slices = image[0].numpy().T[None]
        col_mm, row_mm = np.linalg.norm(affine[:3, :2], axis=0)
        pixels = normalise(np.ascontiguousarray(slices, dtype=np.float32), ref["modality"], self.settings)
        fitted, _, _ = fit_square(pixels, float(row_mm), float(col_mm), self.settings.size)
        return torch.from_numpy(quantise(fitted)).float().div_(255.0)


def phantom_manifest(work: Path, n_2d: int, n_3d: int) -> Path:
    synthesize(work / "phantom", n_2d=n_2d, n_3d=n_3d, seed=0)
    return ingest("phantom", work / "phantom", work / "phantom.parquet", progress=False).manifest


def covid_manifest(work: Path) -> Path | None:
    root = realdata_root()
    if root is None or not (root / "cxr_covid").is_dir():
        return None
    return ingest("covid-cxr", root / "cxr_covid", work / "covid.parquet", progress=False).manifest


def epoch_seconds(run_epoch: Callable[[], float], epochs: int) -> float:
    start = time.perf_counter()
    for _ in range(epochs):
        run_epoch()
    return (time.perf_counter() - start) / epochs


def bench_cohort(name: str, manifest: Path, work: Path, args: argparse.Namespace) -> dict:
    settings = PrepSettings(size=args.size)
    df = read_manifest(manifest)
    refs = [{**ref, "path": str(resolve_path(df, ref["path"]))} for refs in df["images"] for ref in refs]
    build = build_cache(manifest, work / f"cache-{name}", settings, progress=False)
    dataset = CachedCohort(work / f"cache-{name}")
    baseline = MonaiBaseline(settings)

    def baseline_epoch() -> float:
        return sum(float(baseline(ref)[..., 0, 0].sum()) for ref in refs)

    def cached_epoch() -> float:
        return sum(float(dataset[i]["image"][..., 0, 0].sum()) for i in range(len(dataset)))

    cached_epoch()  # map the shards once, as a training run's first epoch does
    base_times, cache_times = [], []
    for _ in range(args.repeats):
        base_times.append(epoch_seconds(baseline_epoch, args.epochs))
        cache_times.append(epoch_seconds(cached_epoch, args.epochs))
    by_path = {ref["path"]: ref for ref in refs}
    items = (dataset[i] for i in range(len(dataset)))
    differences = [float((baseline(by_path[item["path"]]) - item["image"]).abs().mean())
                   for item in items if not item["is_volume"]]
    base, cached = statistics.median(base_times), statistics.median(cache_times)
    return {
        "cohort": name,
        "images": len(refs),
        "slices": build.slices,
        "build_s": build.seconds,
        "baseline_s": base,
        "cached_s": cached,
        "speedup": base / cached,
        "baseline_img_s": len(refs) / base,
        "cached_img_s": len(dataset) / cached,
        "diff_2d": statistics.fmean(differences) if differences else float("nan"),
    }


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def report(results: list[dict], args: argparse.Namespace, command: str, load: float) -> str:
    lines = [
        "## Training cache: cached loading vs MONAI decoding every epoch (`benchmarks/bench_cache.py`)",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores visible, load average {load:.1f} at the start (shared "
        f"machine); Python {platform.python_version()}, torch {torch.__version__}, MONAI {monai.__version__}; "
        "one process, one torch thread (as in a DataLoader worker), warm page cache.",
        f"Command: `{command}`",
        f"Median of {args.repeats} runs of {args.epochs} epochs each; per-epoch seconds, baseline and cache "
        "timed alternately in the same run.",
        "",
        "| cohort | images | slices | one-time build (s) | MONAI baseline (s/epoch) | cached (s/epoch) | "
        "speed-up | baseline img/s | cached img/s | mean abs diff 2D |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['cohort']} | {r['images']} | {r['slices']} | {r['build_s']:.1f} | {r['baseline_s']:.3f} | "
                     f"{r['cached_s']:.4f} | {r['speedup']:.0f}x | {r['baseline_img_s']:.0f} | "
                     f"{r['cached_img_s']:.0f} | {r['diff_2d']:.4f} |")
    lines += [
        "",
        "Mean abs diff 2D: mean absolute difference between the baseline's and the cache's 2D images on the [0, 1] "
        "scale. PNG and JPEG images are identical (0); a non-zero value comes from MONOCHROME1 DICOM radiographs, "
        "which MONAI's PydicomReader returns un-inverted (`medvl.io` inverts them, so the cache shows bone white).",
        "Not measured here: DataLoader worker parallelism (one process each), and a cold page cache, which adds "
        "one disk read of the uint8 shards (50 KB per 224 x 224 slice) to the cached path.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-2d", type=int, default=64, help="phantom radiographs (default 64)")
    parser.add_argument("--n-3d", type=int, default=4, help="phantom CT series (default 4)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (default 5)")
    parser.add_argument("--size", type=int, default=224, help="cached image side (default 224)")
    parser.add_argument("--markdown", type=Path, help="also write the result section to this file")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    command = " ".join(["python", "benchmarks/bench_cache.py", *(argv if argv is not None else sys.argv[1:])])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cohorts = [("phantom (PNG + DX DICOM + CT series)", phantom_manifest(work, args.n_2d, args.n_3d))]
        covid = covid_manifest(work)
        if covid is not None:
            cohorts.append(("cxr_covid (real JPEG)", covid))
        results = [bench_cohort(name.split()[0], manifest, work, args) | {"cohort": name} for name, manifest in cohorts]
    text = report(results, args, command, load)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
