"""Time loading a DICOM CT series: medvl.io.load against baselines, measured side by side.

A synthetic series (real DICOM files written by pydicom through medvl.io.dicom_writer, shuffled names and
instance numbers) is loaded by:

- ``medvl``: ``medvl.io.load(folder)`` (one deferred header read per file, checks, decode);
- ``monai_pydicom``: MONAI's ``LoadImage(reader="PydicomReader")`` on the folder;
- ``naive_one_pass``: ``pydicom.dcmread`` each file fully, sort by position, stack (no checks);
- ``naive_two_pass``: headers with ``stop_before_pixels``, sort, then decode each file again from disk.

Rounds interleave the methods so machine noise hits them alike; the median of the rounds is reported.

Usage::

    python benchmarks/bench_io_series.py --slices 200 --size 512 --rounds 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import pixel_array

from medvl.io import load
from medvl.io.dicom_writer import write_series


def make_series(folder: Path, slices: int, size: int) -> None:
    """Write a shuffled CT series of ``slices`` x ``size`` x ``size`` into ``folder``."""
    rng = np.random.default_rng(0)
    volume = rng.integers(-1000, 2000, (size, size, slices)).astype(np.float32)
    affine = np.diag([0.7, 0.7, 1.25, 1.0])
    for path, number in zip(write_series(volume, affine, folder), rng.permutation(slices) + 1, strict=True):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = int(number)
        ds.save_as(folder / f"{rng.integers(1 << 40):x}.dcm")
        path.unlink()


def medvl_load(folder: Path) -> np.ndarray:
    return load(folder).array


def monai_pydicom(folder: Path) -> np.ndarray:
    from monai.transforms import LoadImage

    return LoadImage(reader="PydicomReader", image_only=True)(str(folder)).numpy()


def _stack(headers: list[pydicom.Dataset], pixels: Callable[[int], np.ndarray]) -> np.ndarray:
    cosines = np.array(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(cosines[:3], cosines[3:])
    order = np.argsort([np.dot(normal, np.array(h.ImagePositionPatient, dtype=float)) for h in headers])
    first = headers[0]
    out = np.empty((len(headers), first.Rows, first.Columns), np.float32)
    for z, i in enumerate(order):
        out[z] = pixels(int(i)) * float(headers[i].RescaleSlope) + float(headers[i].RescaleIntercept)
    return out.transpose(2, 1, 0)


def naive_one_pass(folder: Path) -> np.ndarray:
    datasets = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    return _stack(datasets, lambda i: datasets[i].pixel_array)


def naive_two_pass(folder: Path) -> np.ndarray:
    paths = sorted(folder.iterdir())
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    return _stack(headers, lambda i: pixel_array(paths[i]))


METHODS: dict[str, Callable[[Path], np.ndarray]] = {
    "medvl": medvl_load,
    "monai_pydicom": monai_pydicom,
    "naive_one_pass": naive_one_pass,
    "naive_two_pass": naive_two_pass,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "series"
        folder.mkdir()
        make_series(folder, args.slices, args.size)
        reference = medvl_load(folder)
        times: dict[str, list[float]] = {name: [] for name in METHODS}
        for _ in range(args.rounds):
            for name, method in METHODS.items():
                start = time.perf_counter()
                array = method(folder)
                times[name].append(time.perf_counter() - start)
                same = np.array_equal(array, reference)
                if name != "monai_pydicom" and not same:
                    raise SystemExit(f"{name} disagrees with medvl")
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"series: {args.slices} slices of {args.size}x{args.size} int16, {args.rounds} interleaved rounds")
    base = statistics.median(times["medvl"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:16s} median {median:6.3f} s  ({median / base:4.2f}x medvl)  runs {[round(v, 3) for v in values]}"
        )


if __name__ == "__main__":
    main()
