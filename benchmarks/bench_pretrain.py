"""Pretraining throughput and MFU of the medvl trainer, with a naive fp32 loop as the baseline.

- ``medvl``: the trainer's own optimizer step (``Trainer._optimizer_step``): uint8 batches read from the
  memory-mapped cache by loader workers, token ids computed once, conversion and augmentation on the device,
  the configured precision (``--precision auto``: bf16 on Ampere and newer GPUs, fp16 on older ones, fp32 on
  the CPU);
- ``naive``: every step decodes its images from the files (``medvl.io.load``), resizes them, augments them one
  by one (``ConvirtAugment`` per sample), tokenizes and runs forward + backward in fp32.

MFU (model FLOPs utilisation) of the ``medvl`` loop: the FLOPs of one optimizer step, counted once with
``torch.utils.flop_counter.FlopCounterMode`` (forward and backward of the real step), divided by the measured
step time and by the card's dense 16-bit peak (``medvl.train.flops``, or ``--peak-tflops``). On the CPU it is
n/a unless ``--peak-tflops`` is given.

A cohort of ``--n`` phantom radiographs (default 2 x batch, so the train split holds at least one batch) is
synthesized and cached once; each (model, loop) then runs in a fresh process (its peak memory is its own),
alternating for ``--repeats`` rounds. Medians are reported. Texts are one report sentence per image in
``medvl`` and the whole report in ``naive``, both cut at ``--text-tokens`` tokens (character tokenizer).

Run (CPU):  .venv/bin/python benchmarks/bench_pretrain.py --n 256 --steps 10 --warmup 2 --repeats 3 --batch 32
Run (GPU):  python benchmarks/bench_pretrain.py --device cuda --model vit-b16-bert resnet50-bert --size 224 \\
              --batch 256 --loops medvl --json pretrain.json
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from medvl.cli import main as medvl_main

LOOPS = ("naive", "medvl")


def make_cohort(root: Path, n: int, size: int) -> Path:
    """Synthesize, ingest and cache ``n`` radiograph phantoms; returns the cache folder."""
    cohort, manifest, cache = root / "cohort", root / "m.parquet", root / "cache"
    assert medvl_main(["synth", "-o", str(cohort), "--n-2d", str(n), "--size", str(size), "-q"]) == 0
    assert medvl_main(["ingest", "phantom", str(cohort), "-o", str(manifest), "-q"]) == 0
    assert medvl_main(["cache", str(manifest), "-o", str(cache), "--size", str(size), "-q"]) == 0
    return cache


def _config(args: argparse.Namespace, model: str, cache: Path, out: Path) -> Any:
    from medvl.config import load_config
    from medvl.train.settings import PretrainConfig

    overrides = [f"output_dir={out}", f"data.cache={cache}", f"data.image_size={args.size}", "data.augment=convirt",
                 f"model.name={model}", f"model.overrides.image.image_size={args.size}",
                 f"model.overrides.text.max_length={args.text_tokens}", f"train.device={args.device}",
                 f"train.precision={args.precision}", f"train.batch_size={args.batch}", "train.eval_every=0",
                 "tracking.log_model=false"]  # fmt: skip
    return load_config(PretrainConfig, None, overrides)


def _text_widths(batches: Iterator[dict[str, Any]], widths: list[int]) -> Iterator[dict[str, Any]]:
    """The batches unchanged, noting each one's padded text length."""
    for batch in batches:
        widths.append(batch["input_ids"].shape[1])
        yield batch


def run_medvl(args: argparse.Namespace, model: str, cache: Path, out: Path) -> dict[str, Any]:
    """Images/s of the trainer's optimizer steps (after one FLOP-counted step and ``--warmup`` more)."""
    from medvl.train import distributed
    from medvl.train.flops import count_flops
    from medvl.train.trainer import Trainer

    trainer = Trainer.for_config(_config(args, model, cache, out), distributed.setup())
    widths: list[int] = []
    batches = _text_widths(trainer._batches(), widths)
    _, flops = count_flops(lambda: trainer._optimizer_step(batches))
    for _ in range(args.warmup):
        trainer._optimizer_step(batches)
    _sync(trainer.device)
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer._optimizer_step(batches)
    _sync(trainer.device)
    rate = args.steps * args.batch / (time.perf_counter() - start)
    dtype = str(trainer.amp_dtype or torch.float32).removeprefix("torch.")
    return {"images_per_s": rate, "flops_per_step": flops, "text_tokens": statistics.mean(widths), "precision": dtype}


def run_naive(args: argparse.Namespace, model_name: str, cache: Path, out: Path) -> dict[str, Any]:
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
    model = build_model(model_name, image={"image_size": args.size}, text={"max_length": args.text_tokens})
    model = model.to(device).train()
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
    _sync(device)
    start = time.perf_counter()
    for batch in batches[args.warmup:]:
        step(batch)
    _sync(device)
    return {"images_per_s": args.steps * args.batch / (time.perf_counter() - start), "precision": "float32"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints a JSON line."""
    loop, model = args.child
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        fn = run_medvl if loop == "medvl" else run_naive
        result = fn(args, model, Path(args.cache), Path(tmp))
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(json.dumps({**result, "peak_memory_mb": _peak_memory_mb(args.device), "device_name": name}))


def summarise(args: argparse.Namespace, runs: dict[str, dict[str, list[dict]]]) -> dict[str, Any]:
    """Medians per model and loop, FLOPs per image, achieved TFLOP/s and MFU against the assumed peak."""
    from medvl.train.flops import dense_peak_tflops

    device_name = next(r for loops in runs.values() for rs in loops.values() for r in rs)["device_name"]
    card = ("--peak-tflops", args.peak_tflops) if args.peak_tflops else None
    if card is None and args.device == "cuda":
        card = dense_peak_tflops(device_name)
    models = {}
    for model, loops in runs.items():
        summary: dict[str, Any] = {}
        for loop, rs in loops.items():
            s = {"images_per_s": statistics.median(r["images_per_s"] for r in rs),
                 "runs_images_per_s": [r["images_per_s"] for r in rs],
                 "peak_memory_mb": statistics.median(r["peak_memory_mb"] for r in rs),
                 "precision": rs[0]["precision"]}  # fmt: skip
            if loop == "medvl":
                flops_per_image = statistics.median(r["flops_per_step"] for r in rs) / args.batch
                s["gflop_per_image"] = flops_per_image / 1e9
                s["tflops_per_s"] = flops_per_image * s["images_per_s"] / 1e12
                s["mfu"] = s["tflops_per_s"] / card[1] if card else None
                s["text_tokens_mean"] = statistics.median(r["text_tokens"] for r in rs)
            summary[loop] = s
        if len(loops) == 2:
            summary["speedup"] = summary["medvl"]["images_per_s"] / summary["naive"]["images_per_s"]
        models[model] = summary
    return {
        "device": args.device, "device_name": device_name, "torch": torch.__version__,
        "peak_tflops": card[1] if card else None, "peak_source": card[0] if card else None,
        "size": args.size, "batch": args.batch, "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
        "text_tokens": args.text_tokens, "models": models,
    }  # fmt: skip


def report(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    """Print the machine, the peak assumed and a markdown table."""
    print(f"\nmachine: {summary['device_name']} ({args.device}), torch {torch.__version__}, threads {args.threads}; "
          f"{args.size} px, batch {args.batch}, {args.steps} steps x {args.repeats} rounds (median)")  # fmt: skip
    if summary["peak_tflops"]:
        print(f"peak assumed: {summary['peak_tflops']:g} TFLOP/s dense 16-bit ({summary['peak_source']})")
    else:
        print("peak: unknown for this device, MFU n/a (give --peak-tflops)")
    print("| model | loop | precision | images/s | peak memory (MB) | GFLOP/image | TFLOP/s | MFU |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for model, loops in summary["models"].items():
        for loop in args.loops:
            s = loops[loop]
            flops = f"{s['gflop_per_image']:.1f} | {s['tflops_per_s']:.2f}" if loop == "medvl" else "- | -"
            mfu = f"{s['mfu']:.1%}" if s.get("mfu") is not None else "n/a"
            rate = f"{s['images_per_s']:.1f} | {s['peak_memory_mb']:.0f}"
            print(f"| {model} | {loop} | {s['precision']} | {rate} | {flops} | {mfu} |")
        if "speedup" in loops:
            print(f"| {model} | speed-up | | {loops['speedup']:.2f}x | | | | |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["tiny-resnet18"], help="model registry names")
    parser.add_argument("--loops", nargs="+", choices=LOOPS, default=list(LOOPS), help="loops to run")
    parser.add_argument("--n", type=int, help="phantom radiographs in the cohort (default 2 x batch)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=32, help="batch size")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (median reported)")
    parser.add_argument("--text-tokens", type=int, default=64, help="texts cut at this many tokens (characters)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="train.device")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                        help="train.precision of the medvl loop (auto: bf16 on recent GPUs, fp32 on the CPU)")
    parser.add_argument("--peak-tflops", type=float,
                        help="the device's dense 16-bit peak in TFLOP/s (default: known GPUs; none on the CPU)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--child", nargs=2, metavar=("LOOP", "MODEL"), help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    from medvl.data.cache import CachedCohort

    forwarded = list(argv if argv is not None else sys.argv[1:])
    runs: dict[str, dict[str, list[dict]]] = {model: {loop: [] for loop in args.loops} for model in args.model}
    with tempfile.TemporaryDirectory() as tmp:
        cache = make_cohort(Path(tmp), args.n or 2 * args.batch, args.size)
        train = len(CachedCohort(cache, "train"))
        if train < args.batch:
            print(f"error: the cohort's train split has {train} images, fewer than --batch {args.batch}; raise --n",
                  file=sys.stderr)  # fmt: skip
            return 2
        for round_ in range(args.repeats):
            for model in args.model:
                for loop in args.loops:
                    cmd = [sys.executable, __file__, *forwarded, "--child", loop, model, "--cache", str(cache)]
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    if done.returncode != 0:
                        print(f"error: the {loop} run of {model} failed:\n{done.stderr[-4000:]}", file=sys.stderr)
                        return 1
                    runs[model][loop].append(json.loads(done.stdout.strip().splitlines()[-1]))
                    rate = runs[model][loop][-1]["images_per_s"]
                    print(f"round {round_ + 1}: {model} {loop:5s} {rate:8.1f} images/s", flush=True)
            summary = summarise(args, runs)
            if args.json:  # after every round: a run stopped by a time limit keeps the rounds it finished
                document = {"command": [Path(sys.argv[0]).name, *forwarded], "rounds_done": round_ + 1, **summary}
                args.json.write_text(json.dumps(document, indent=1))
    report(args, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
