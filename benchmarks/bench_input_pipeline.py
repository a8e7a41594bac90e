"""The trainer's host path alone (model a no-op): how many image-report pairs per second reach the device.

Two paths over the same cache, tokenizer and batches:

- ``medvl``: the trainer's path. Whole batches are read from the memory-mapped cache as uint8
  (:class:`medvl.train.batches.PairBatches`): token ids come from the run's token bank, augmentation draws are
  made per batch from the item seeds, and conversion and augmentation happen on the device
  (:func:`medvl.train.batches.device_inputs`, only with ``--device cuda``).
- ``baseline``: the previous path, reconstructed: items one at a time (float32 pixels on the host), a sentence
  split and drawn per item, the default collate into float32 batches, tokenisation on the main thread, and a
  NumPy ``RandomState`` per item for the augmentation draws.

On the CPU the figure is the host's work up to the batch handed to the device; with ``--device cuda`` the
copy, conversion and augmentation on the GPU are included (synchronised at the end of each timing). "One
core": ``--workers 0`` and one torch thread, the default. Paths alternate for ``--repeats`` rounds; medians.
The last line reads ``pairs/s X (baseline Y, Zx)``.

Run: .venv/bin/python benchmarks/bench_input_pipeline.py [--quick] [--n 1024] [--size 224] [--batch 256]
     [--volumes 8 --depth 128] [--workers 0] [--device cpu] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset

from medvl.augment import AugmentStrength
from medvl.cli import main as medvl_main
from medvl.data.cache import CachedCohort, collate_cohort, even_slices
from medvl.data.pairs import cached_report_text, report_text
from medvl.interrupts import interruptible_worker
from medvl.text.sentences import split_sentences
from medvl.text.tokenizer import train_wordpiece
from medvl.train.batches import PairBatches, device_inputs
from medvl.train.sampling import ResumableSampler
from medvl.train.text_ids import token_bank


def make_cache(root: Path, n_2d: int, n_3d: int, size: int, depth: int) -> Path:
    """Synthesize, ingest and cache phantoms (radiographs or CT volumes of ``depth`` slices)."""
    args = ["--n-2d", str(n_2d), "--n-3d", str(n_3d), "--size", str(size), "--ct-size", str(size), "--depth", f"{depth},{depth}"]
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        assert medvl_main(["synth", "-o", str(root / "cohort"), *args, "-q"]) == 0
        assert medvl_main(["ingest", "phantom", str(root / "cohort"), "-o", str(root / "m.parquet"), "-q"]) == 0
        assert medvl_main(["cache", str(root / "m.parquet"), "-o", str(root / "cache"), "--size", str(size), "-q"]) == 0
    return root / "cache"


class PerItemPairs(Dataset):
    """The previous training dataset: one item per call, float32 pixels, a sentence drawn per item."""

    def __init__(self, cohort: CachedCohort, indices: np.ndarray, max_slices: int) -> None:
        self.cohort, self.indices, self.max_slices = cohort, indices, max_slices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        item = dict(self.cohort[int(self.indices[index])])
        if item["is_volume"]:
            keep = torch.from_numpy(even_slices(item["image"].shape[0], self.max_slices))
            item["image"], item["z_mm"] = item["image"][keep], item["z_mm"][keep]
        item.pop("mask", None)
        sentences = split_sentences(report_text(item)) or [report_text(item)]
        item["text"] = sentences[int(np.random.default_rng(seed).integers(len(sentences)))]
        item["seed"] = seed
        return item


def collate_with_text(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """The previous collate: the cache's collate plus texts and seeds."""
    out = collate_cohort(batch)
    out["text"], out["seed"] = [b["text"] for b in batch], [b["seed"] for b in batch]
    return out


def per_item_draw(strength: AugmentStrength, seed: int, size: int) -> tuple[float, ...]:
    """The previous augmentation draw: a ``RandomState`` per item and scalar draws (crop tries, flip, affine,
    jitter, blur), as the trainer made them on its main thread before each step."""
    rng = np.random.RandomState(seed % 2**32)
    area = size * size
    box = (0, 0, size, size)
    for _ in range(10):
        target = area * rng.uniform(*strength.crop_scale)
        aspect = math.exp(rng.uniform(math.log(strength.crop_ratio[0]), math.log(strength.crop_ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= size and 0 < h <= size:
            box = (rng.randint(0, size - h + 1), rng.randint(0, size - w + 1), h, w)
            break
    draws = [rng.uniform() for _ in range(11)]
    return (*box, *draws)


def medvl_batches(cohort: CachedCohort, indices: np.ndarray, args: argparse.Namespace, tokenizer: Any, max_slices: int) -> Callable[[], Iterator]:
    """The trainer's loader: whole uint8 batches, token ids from the bank, draws per batch."""
    bank = token_bank(cohort, indices, "sentence", tokenizer, 128)
    data = PairBatches(cohort, indices, bank, max_slices, augment=AugmentStrength())
    sampler = ResumableSampler(len(indices), 0, batch_size=args.batch)
    loader = DataLoader(data, batch_size=None, sampler=BatchSampler(sampler, args.batch, drop_last=True),
                        num_workers=args.workers, pin_memory=args.device == "cuda", persistent_workers=args.workers > 0,
                        worker_init_fn=interruptible_worker, generator=torch.Generator())  # fmt: skip
    device, volumes = torch.device(args.device), max_slices > 1

    def batches() -> Iterator:
        for batch in loader:
            if device.type == "cuda":
                device_inputs(batch, device, volumes)
            yield batch

    return batches


def baseline_batches(cohort: CachedCohort, indices: np.ndarray, args: argparse.Namespace, tokenizer: Any, max_slices: int) -> Callable[[], Iterator]:
    """The previous loader: items one by one, float32 collate, tokenisation and per-item draws per step."""
    sampler = ResumableSampler(len(indices), 0, batch_size=args.batch)
    loader = DataLoader(PerItemPairs(cohort, indices, max_slices), batch_size=args.batch, sampler=sampler,
                        collate_fn=collate_with_text, num_workers=args.workers, drop_last=True)  # fmt: skip
    device, strength = torch.device(args.device), AugmentStrength()

    def batches() -> Iterator:
        for batch in loader:
            tokenizer(batch["text"], padding=True, truncation=True, max_length=128, return_tensors="pt")
            [per_item_draw(strength, seed, cohort.size) for seed in batch["seed"]]
            if device.type == "cuda":
                batch["image"].to(device)
            yield batch

    return batches


def rate(batches: Callable[[], Iterator], steps: int, per_batch: int, device: str) -> float:
    """Items per second over ``steps`` batches, after one warm-up batch (cycling through epochs)."""

    def endless() -> Iterator:
        while True:
            yield from batches()

    stream = endless()
    next(stream)
    start = time.perf_counter()
    for _ in range(steps):
        next(stream)
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * per_batch / (time.perf_counter() - start)


def compare(cache: Path, args: argparse.Namespace, max_slices: int, batch: int, steps: int) -> dict[str, Any]:
    """Median items/s of both paths over ``args.repeats`` alternating rounds."""
    cohort = CachedCohort(cache)
    indices = np.arange(len(cohort))
    run = argparse.Namespace(**{**vars(args), "batch": batch})
    tokenizer = train_wordpiece([cached_report_text(cohort, i) for i in indices], vocab_size=2000)
    start = time.perf_counter()
    paths = {"medvl": medvl_batches(cohort, indices, run, tokenizer, max_slices)}
    bank_s = time.perf_counter() - start
    paths["baseline"] = baseline_batches(cohort, indices, run, tokenizer, max_slices)
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, batches in paths.items():
            rates[name].append(rate(batches, steps, batch, args.device))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {"items": len(cohort), "batch": batch, "steps": steps, "token_bank_s": bank_s, "runs": rates,
            "medvl": medians["medvl"], "baseline": medians["baseline"], "ratio": medians["medvl"] / medians["baseline"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small cohorts and few steps (under 3 minutes on 2 cores)")
    parser.add_argument("--n", type=int, default=1024, help="radiograph phantoms (default 1024)")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels (default 224)")
    parser.add_argument("--batch", type=int, default=256, help="pairs per batch (default 256)")
    parser.add_argument("--steps", type=int, default=8, help="timed batches per round (default 8)")
    parser.add_argument("--volumes", type=int, default=8, help="CT volumes for the volume figure (0: skip; default 8)")
    parser.add_argument("--depth", type=int, default=128, help="slices per volume (default 128)")
    parser.add_argument("--volume-batch", type=int, default=4, help="volumes per batch (default 4)")
    parser.add_argument("--workers", type=int, default=0, help="loader processes (default 0: one core)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where batches go (default cpu)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds; medians are reported (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.steps, args.repeats, args.volumes = min(args.n, 512), min(args.steps, 4), min(args.repeats, 3), min(args.volumes, 4)
    if args.workers == 0:
        torch.set_num_threads(1)
    result: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "python": sys.version.split()[0],
                              "torch": torch.__version__, "device": args.device, "workers": args.workers}  # fmt: skip
    if args.device == "cuda":
        result["card"] = torch.cuda.get_device_name()
    with tempfile.TemporaryDirectory() as tmp:
        images = make_cache(Path(tmp) / "2d", args.n, 0, args.size, args.depth)
        result["pairs"] = compare(images, args, 1, args.batch, args.steps)
        if args.volumes:
            volumes = make_cache(Path(tmp) / "3d", 0, args.volumes, args.size, args.depth)
            result["volumes"] = compare(volumes, args, args.depth, min(args.volume_batch, args.volumes), args.steps)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if "volumes" in result:
        v = result["volumes"]
        print(f"volumes/s {v['medvl']:.1f} (baseline {v['baseline']:.1f}, {v['ratio']:.1f}x) at {args.depth} x {args.size} x {args.size}")
    p = result["pairs"]
    print(f"pairs/s {p['medvl']:.0f} (baseline {p['baseline']:.0f}, {p['ratio']:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
