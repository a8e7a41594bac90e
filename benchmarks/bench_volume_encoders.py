"""Slice pooling against a native 3D encoder: memory and time of one training step per volume (volumes issue, s. 4).

For each number of slices S, one training step (``encode_volume`` forward, then backward from the embedding) of
a batch of one volume of S slices of ``--size`` px is measured for each configuration:

- ``pool-volume``: ``--model`` (a slice-pooling model, default ``tiny-radclip-resnet18``) in stage ``volume``
  with its 2D encoder trained, slices encoded ``--chunk`` at a time with activation checkpointing;
- ``pool-2d``: the same model in stage ``2d`` (a volume is the mean of its slices), same chunking;
- ``3d``: the same model with ``slice_pooling`` replaced by a ``volume_encoder`` of the 2D encoder's arch, width,
  norm and global pool, the real slices resampled to ``--depth`` (for tiny-radclip-resnet18 that is exactly
  tiny-resnet18-3d); its cost hardly depends on S;
- ``3d-native``: the same with depth S (no resampling), where S differs from ``--depth``.

The text tower is left out (it is the same in all). Each configuration runs in fresh child processes, forked
from this one after the heavy imports (torch, MONAI, transformers) so that they start in seconds with a clean
heap; each runs one warm-up step (one-off allocations: kernel caches, gradient buffers) before it measures:
  - ``step s``: the median of ``--repeats`` steps, the time per volume;
  - ``peak MB``, one step: on the CPU, in a child of its own, the kernel's resident-set high-water mark
    (``VmHWM``, reset just before the step through /proc/self/clear_refs) above the resident size before it,
    with glibc mapping large blocks on their own so that the resident size follows the live allocations
    (``map_large_blocks``, which slows allocation: hence the separate child); on a GPU, in the same child,
    ``torch.cuda.max_memory_allocated`` during the step above the allocation before it.
``--precision auto`` autocasts to bf16 on GPUs that support it (fp16 on older ones) and runs fp32 on the CPU.

Run: .venv/bin/python benchmarks/bench_volume_encoders.py [--slices 32 64 128] [--size 64] [--repeats 3]
     [--quick] [--json OUT]
GPU: python benchmarks/bench_volume_encoders.py --device cuda --precision bf16 --model radclip-resnet18 --size 224
     --slices 64 128 --json volume_encoders.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench_slice_pooling import PeakCuda

CONFIGURATIONS = ("pool-volume", "pool-2d", "3d", "3d-native")
M_MMAP_THRESHOLD = -3  # glibc mallopt: blocks from this size up are mmapped, and unmapped when freed


def _status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def map_large_blocks() -> None:
    """Make glibc map every block of 64 KiB or more on its own and unmap it when freed, for the rest of the
    process: the resident size then follows the live allocations instead of the heap's history (with glibc's
    adaptive threshold, repeated runs differed by +-30 MB). It slows allocation: time steps in another process."""
    ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 64 * 1024)


class PeakResident:
    """``peak``: the resident-set high-water mark reached in the block; ``start``: the resident size at entry
    (after ``malloc_trim`` gave the heap's free memory back, so memory freed earlier cannot hide the block's)."""

    def __enter__(self) -> PeakResident:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
        self.start = _status_bytes("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = _status_bytes("VmHWM")


def model_config(args: argparse.Namespace, configuration: str, slices: int) -> dict[str, Any]:
    """The resolved config of one configuration (see the module docstring)."""
    from medvl.models import get_config

    if configuration.startswith("pool"):
        stage = "volume" if configuration == "pool-volume" else "2d"
        chunking = {"chunk_size": args.chunk} if args.chunk else {}
        return get_config(args.model, schedule={"stage": stage, "freeze_image_encoder": False},
                          slice_pooling={**chunking, "checkpoint": True})  # fmt: skip
    image = get_config(args.model)["image"]
    volume = {key: image[key] for key in ("arch", "widen_factor", "norm", "global_pool")}
    volume["depth"] = args.depth if configuration == "3d" else slices
    return get_config(args.model, slice_pooling=None, volume_encoder=volume)


def measure(args: argparse.Namespace, configuration: str, slices: int, parts: tuple[str, ...]) -> dict[str, float]:
    """In a fresh child: a warm-up training step, then ``parts``: ``time`` (``step_s``, the median of
    ``--repeats`` steps) and/or ``memory`` (``peak_mb``, the peak of one more step)."""
    import torch

    from medvl.models import build_model
    from medvl.train.hardware import autocast, autocast_dtype

    device = torch.device(args.device)
    if "memory" in parts and device.type == "cpu":
        map_large_blocks()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = autocast_dtype(args.precision, device)
    model = build_model(model_config(args, configuration, slices)).to(device).train()
    volume = torch.randn(1, slices, 1, args.size, args.size, device=device)
    z = torch.arange(slices, dtype=torch.float32, device=device)[None] * 2.5

    def step() -> None:
        with autocast(dtype, device):
            embedding = model.encode_volume(volume, z).embedding
        embedding.float().sum().backward()
        model.zero_grad(set_to_none=False)  # gradient buffers stay allocated, as in training
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: one-off allocations (kernel caches, gradient buffers) are not the step's
    out = {}
    if "time" in parts:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        out["step_s"] = statistics.median(times)
    if "memory" in parts:
        with PeakCuda() if device.type == "cuda" else PeakResident() as memory:
            step()
        out["peak_mb"] = (memory.peak - memory.start) / 2**20
    return out


def warm_imports() -> None:
    """Import what every child needs once, before forking (a child then starts in seconds, not in ~15 s)."""
    import monai.networks.nets  # noqa: F401
    import transformers  # noqa: F401
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast  # noqa: F401

    import medvl.models.registry  # noqa: F401
    import medvl.train.hardware  # noqa: F401


def run_children(args: argparse.Namespace, configuration: str, slices: int) -> dict[str, float]:
    """:func:`measure` of one configuration in processes forked for it alone: one for time and one for memory
    on the CPU (see :func:`map_large_blocks`), one for both on a GPU."""
    context = multiprocessing.get_context("fork")
    out: dict[str, float] = {}
    for parts in [("time", "memory")] if args.device == "cuda" else [("time",), ("memory",)]:
        with ProcessPoolExecutor(1, mp_context=context) as pool:  # one task: a fresh worker
            out.update(pool.submit(measure, args, configuration, slices, parts).result())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, nargs="+", default=[32, 64, 128], help="slices per volume")
    parser.add_argument("--size", type=int, default=64, help="slice height and width in pixels")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per configuration (median)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 8 and 16 slices, 1 timed step")
    parser.add_argument("--model", default="tiny-radclip-resnet18", help="registered model with slice pooling")
    parser.add_argument("--chunk", type=int, help="slices per checkpointed chunk (default: the model's chunk_size)")
    parser.add_argument("--depth", type=int, default=32, help="slices the 3D encoder resamples every volume to")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads in each child")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the step runs")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                        help="autocast (auto: bf16 on recent GPUs, fp32 on the CPU)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.slices, args.repeats = [8, 16], 1
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    warm_imports()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"model {args.model} on {args.device} ({args.precision}), batch of 1 volume of {args.size}x{args.size} slices, "
          f"chunk {args.chunk or 'as configured'}, 3D depth {args.depth}, {args.threads} thread(s), "
          f"median of {args.repeats} steps\n")  # fmt: skip
    print("| slices | " + " | ".join(f"{c} peak MB | {c} step s" for c in CONFIGURATIONS) + " |")
    print("|---:|" + "---:|" * 2 * len(CONFIGURATIONS))
    rows = []
    for slices in args.slices:
        results = {}
        for configuration in CONFIGURATIONS:
            if configuration == "3d-native" and slices == args.depth:
                continue  # the same as 3d
            results[configuration] = run_children(args, configuration, slices)
        cells = [f"{results[c]['peak_mb']:.1f} | {results[c]['step_s']:.3f}" if c in results else "= 3d | = 3d" for c in CONFIGURATIONS]
        print(f"| {slices} | " + " | ".join(cells) + " |", flush=True)
        rows.append({"slices": slices, "results": results})
        if args.json:  # after every row: a run stopped by a time limit keeps the rows it finished
            keys = ("model", "device", "precision", "size", "chunk", "depth", "repeats", "threads")
            command = [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
            args.json.write_text(json.dumps({"command": command, **{k: getattr(args, k) for k in keys}, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
