"""Pretraining throughput: the medvl trainer against a naive fp32 loop, side by side on the same cohort and model.

- ``naive``: every step decodes its images from the files (``medvl.io.load``), resizes them, augments them one
  by one (``ConvirtAugment`` per sample), tokenizes and runs forward + backward in fp32;
- ``medvl``: the trainer's own step: the memory-mapped cache, batched augmentation, the configured precision
  (bf16 on CUDA, fp32 on CPU).

Each mode runs in a fresh process (so peak RSS is its own); modes alternate for ``--repeats`` rounds and the
median images/s is reported with the ratio. Peak memory: the process's max RSS (CPU) and
``torch.cuda.max_memory_allocated`` (GPU).

Run: .venv/bin/python benchmarks/bench_pretrain.py [--n 256] [--size 128] [--steps 20] [--batch 32]
     [--repeats 3] [--model tiny-resnet18] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from medvl.cli import main as medvl_main


def make_cohort(root: Path, n: int, size: int) -> Path:
    """Synthesize, ingest and cache ``n`` radiograph phantoms; returns the cache folder."""
    cohort, manifest, cache = root / "cohort", root / "m.parquet", root / "cache"
    assert medvl_main(["synth", "-o", str(cohort), "--n-2d", str(n), "--size", str(size), "-q"]) == 0
    assert medvl_main(["ingest", "phantom", str(cohort), "-o", str(manifest), "-q"]) == 0
    assert medvl_main(["cache", str(manifest), "-o", str(cache), "--size", str(size), "-q"]) == 0
    return cache


def _config(args: argparse.Namespace, cache: Path, out: Path):
    from medvl.config import load_config
    from medvl.train.settings import PretrainConfig

    overrides = [f"output_dir={out}", f"data.cache={cache}", f"data.image_size={args.size}", "data.augment=convirt",
                 f"model.name={args.model}", f"model.overrides.image.image_size={args.size}",
                 f"train.batch_size={args.batch}", "train.eval_every=0", "tracking.log_model=false"]  # fmt: skip
    return load_config(PretrainConfig, None, overrides)


def run_medvl(args: argparse.Namespace, cache: Path, out: Path) -> float:
    """Images/s of the trainer's optimizer steps (after ``--warmup`` steps)."""
    from medvl.train import distributed
    from medvl.train.trainer import Trainer

    trainer = Trainer(_config(args, cache, out), distributed.setup())
    batches = trainer._batches()
    for _ in range(args.warmup):
        trainer._optimizer_step(batches)
    _sync(args.device)
    start, images = time.perf_counter(), 0
    for _ in range(args.steps):
        images += trainer._optimizer_step(batches)["images"]
    _sync(args.device)
    return images / (time.perf_counter() - start)


def run_naive(args: argparse.Namespace, cache: Path, out: Path) -> float:
    """Images/s of a plain loop that decodes, resizes and augments per sample, in fp32."""
    import torch.nn.functional as F

    from medvl.augment import ConvirtAugment
    from medvl.data.cache import CachedCohort
    from medvl.io import load
    from medvl.losses import ContrastiveLoss
    from medvl.models.registry import build_model

    device = torch.device(args.device)
    cohort = CachedCohort(cache, "train")
    items = [cohort[i] for i in range(len(cohort))]
    model = build_model(args.model, image={"image_size": args.size}).to(device).train()
    loss_fn = ContrastiveLoss(model.config["loss"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    augment = ConvirtAugment(args.size)
    augment.set_random_state(0)

    def step(batch: list[dict]) -> None:
        images = []
        for item in batch:
            pixels = torch.from_numpy(load(item["path"]).display_array().astype("float32"))
            pixels = (pixels - pixels.min()) / (pixels.max() - pixels.min() + 1e-6)
            pixels = F.interpolate(pixels[None, None], size=(args.size, args.size), mode="bilinear")[0]
            images.append(augment(pixels))
        tokens = model.tokenize([item["report"] for item in batch])
        out = model(images=torch.stack(images).to(device), input_ids=tokens["input_ids"].to(device),
                    attention_mask=tokens["attention_mask"].to(device))  # fmt: skip
        optimizer.zero_grad()
        loss_fn(out).total.backward()
        optimizer.step()

    batches = [items[(i * args.batch) % len(items):][: args.batch] for i in range(args.warmup + args.steps)]
    for batch in batches[: args.warmup]:
        step(batch)
    _sync(args.device)
    start = time.perf_counter()
    for batch in batches[args.warmup:]:
        step(batch)
    _sync(args.device)
    return args.steps * args.batch / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints a JSON line."""
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        fn = run_medvl if args.child == "medvl" else run_naive
        rate = fn(args, Path(args.cache), Path(tmp))
    print(json.dumps({"mode": args.child, "images_per_s": rate, "peak_mb": _peak_memory_mb(args.device)}))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="phantom radiographs in the cohort")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--batch", type=int, default=32, help="batch size")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (median reported)")
    parser.add_argument("--model", default="tiny-resnet18", help="model registry name")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--child", choices=["medvl", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        return child(args)
    results: dict[str, list[dict]] = {"naive": [], "medvl": []}
    with tempfile.TemporaryDirectory() as tmp:
        cache = make_cohort(Path(tmp), args.n, args.size)
        forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
        for round_ in range(args.repeats):
            for mode in ("naive", "medvl"):
                cmd = [sys.executable, __file__, *forwarded, "--child", mode, "--cache", str(cache)]
                line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
                results[mode].append(json.loads(line))
                print(f"round {round_ + 1}: {mode:5s} {results[mode][-1]['images_per_s']:8.1f} images/s", flush=True)
    naive = statistics.median(r["images_per_s"] for r in results["naive"])
    fast = statistics.median(r["images_per_s"] for r in results["medvl"])
    print(f"\nmachine: {platform.processor() or platform.machine()}, torch {torch.__version__}, device {args.device}, "
          f"threads {args.threads}; model {args.model}, {args.size} px, batch {args.batch}, {args.steps} steps x {args.repeats}")  # fmt: skip
    print("| loop | images/s (median) | peak memory (MB) |\n|---|---|---|")
    for mode, rate in (("naive fp32 (decode + per-sample augment)", naive), ("medvl trainer", fast)):
        key = "naive" if mode.startswith("naive") else "medvl"
        print(f"| {mode} | {rate:.1f} | {statistics.median(r['peak_mb'] for r in results[key]):.0f} |")
    print(f"\nspeed-up: {fast / naive:.2f}x")


if __name__ == "__main__":
    main()
