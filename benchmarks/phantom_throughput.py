"""Throughput of ``medvl synth``: phantom studies per second, with an I/O baseline measured in the same run.

    .venv/bin/python benchmarks/phantom_throughput.py --n 200 --repeats 3 --size 256

Measures (median of ``--repeats`` runs, each in a fresh temporary folder):

- ``baseline``: encode and write one PNG of noise per study (the floor of any generator writing PNGs);
- ``render``: 2D phantom rendering only (anatomy, findings, exposure), no files;
- ``synth 2d``: ``synthesize`` end to end (PNG + mask + 20 % DICOM + report + index), 1 worker;
- ``synth 2d xK``: the same with ``--workers`` processes (spawn start-up included);
- ``synth 3d``: CT studies (``--ct-size`` matrix, 24-48 slices, DICOM series + NIfTI + mask), 1 worker.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from medvl.data.phantom import synthesize
from medvl.data.phantom.cxr import render_cxr, sample_cxr_anatomy, sample_cxr_pose
from medvl.data.phantom.findings import sample_cxr_findings


def _baseline(n: int, size: int) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        rng = np.random.default_rng(0)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(
                folder / f"{i}.png", compress_level=1
            )

    return run


def _render(n: int, size: int) -> Callable[[Path], None]:
    def run(_: Path) -> None:
        for i in range(n):
            rng = np.random.default_rng(i)
            anatomy, pose = sample_cxr_anatomy(rng), sample_cxr_pose(rng, "PA")
            render_cxr(anatomy, pose, sample_cxr_findings(rng), size, np.random.SeedSequence(i))

    return run


def _synth(**kwargs) -> Callable[[Path], None]:
    def run(folder: Path) -> None:
        synthesize(folder / "cohort", **kwargs)

    return run


def _median_rate(job: Callable[[Path], None], n: int, repeats: int) -> tuple[float, list[float]]:
    rates = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            job(Path(tmp))
            rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="2D studies per run (default 200)")
    parser.add_argument("--n-3d", type=int, default=10, help="3D studies per run (default 10)")
    parser.add_argument("--size", type=int, default=256, help="radiograph side (default 256)")
    parser.add_argument("--ct-size", type=int, default=128, help="CT matrix (default 128)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the parallel run (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (default 3)")
    args = parser.parse_args(argv)
    jobs = {
        "baseline (noise PNG write)": (_baseline(args.n, args.size), args.n),
        "render only": (_render(args.n, args.size), args.n),
        "synth 2d, 1 worker": (_synth(n_2d=args.n, size=args.size), args.n),
        f"synth 2d, {args.workers} workers": (
            _synth(n_2d=args.n, size=args.size, workers=args.workers),
            args.n,
        ),
        "synth 3d, 1 worker": (_synth(n_2d=0, n_3d=args.n_3d, ct_size=args.ct_size), args.n_3d),
    }
    print(
        f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, size {args.size} px"
    )
    print("| measurement | studies/s (median) | runs |")
    print("|---|---|---|")
    for name, (job, n) in jobs.items():
        median, rates = _median_rate(job, n, args.repeats)
        print(f"| {name} | {median:.1f} | {', '.join(f'{r:.1f}' for r in rates)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
