"""Memory and time of volume encoding: chunked slices with activation checkpointing against encoding all at once.

For each depth S (slices per volume), one training step (``encode_volume`` forward + backward) of a slice-pooling
model (``--model``, default ``tiny-radclip-resnet18``; stage ``volume``, image encoder trained) is measured two
ways, side by side:

- baseline: all real slices through the 2D encoder in one batch, no checkpointing (``chunk_size`` = S);
- chunked: ``--chunk`` slices at a time with activation checkpointing (the configured behaviour).

Memory, in a fresh process per (S, mode) so earlier runs leave no heap behind:
  - ``saved``: bytes of the distinct storages autograd keeps for backward after the forward pass (exact);
  - ``peak``: on the CPU, peak resident memory during the step above the resident memory just before it (a
    sampling thread reads /proc/self/statm every 0.5 ms); on a GPU, ``torch.cuda.max_memory_allocated`` during
    the step above the memory allocated before it.
Time: median of ``--repeats`` steps (after one warm-up) in the same process; volumes/s is its inverse.
``--precision auto`` autocasts to bf16 on GPUs that support it (fp16 on older ones) and runs fp32 on the CPU.

Run: .venv/bin/python benchmarks/bench_slice_pooling.py [--depths 8 16 32 64] [--chunk 8] [--size 128]
     [--repeats 5] [--threads 1]
GPU: python benchmarks/bench_slice_pooling.py --device cuda --model radclip-resnet18 --size 224 --depths 64 128
     --chunk 16 --json slice_pooling.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakRSS:
    """Samples the resident set size in a thread; ``peak`` is the largest value seen while running."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.0005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


class PeakCuda:
    """``peak``: the most GPU memory allocated while running, counted from the allocation at entry."""

    def __enter__(self) -> PeakCuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self.start = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.cuda.synchronize()
        self.peak = torch.cuda.max_memory_allocated()


def measure(args: argparse.Namespace, depth: int, chunk: int, checkpoint: bool) -> dict:
    """Run in a child process: memory of the first step, then the median step time."""
    import torch

    from medvl.models import build_model
    from medvl.train.hardware import autocast, autocast_dtype

    torch.manual_seed(0)
    device = torch.device(args.device)
    dtype = autocast_dtype(args.precision, device)
    model = build_model(args.model, schedule={"stage": "volume", "freeze_image_encoder": False}).to(device).train()
    model.config["slice_pooling"].update(chunk_size=chunk, checkpoint=checkpoint)
    slices = torch.randn(1, depth, 1, args.size, args.size, device=device)
    z = torch.arange(depth, dtype=torch.float32, device=device)[None] * 2.5

    def step(hooks: contextlib.AbstractContextManager | None = None) -> None:
        with hooks or contextlib.nullcontext(), autocast(dtype, device):
            embedding = model.encode_volume(slices, z).embedding
        embedding.float().sum().backward()
        model.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize()

    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with PeakCuda() if device.type == "cuda" else PeakRSS() as memory:
        step(torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t))
    times = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times[1:])
    return {"saved_mb": sum(storages.values()) / 2**20, "peak_mb": (memory.peak - memory.start) / 2**20,
            "step_s": step_s, "volumes_per_s": 1 / step_s}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[8, 16, 32, 64], help="slices per volume")
    parser.add_argument("--chunk", type=int, default=8, help="slices per checkpointed chunk")
    parser.add_argument("--size", type=int, default=128, help="slice height and width in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads in each child")
    parser.add_argument("--model", default="tiny-radclip-resnet18", help="registered model with slice pooling")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the step runs")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto",
                        help="autocast (auto: bf16 on recent GPUs, fp32 on the CPU)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--child", nargs=3, type=int, metavar=("DEPTH", "CHUNK", "CHECKPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        depth, chunk, checkpoint = args.child
        print(json.dumps(measure(args, depth, chunk, bool(checkpoint))))
        return 0

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"model {args.model} on {args.device} ({args.precision}), slices {args.size}x{args.size}, chunk {args.chunk}, "
          f"{args.threads} thread(s), median of {args.repeats} steps\n")  # fmt: skip
    print("| slices | baseline saved MB | chunked saved MB | baseline peak MB | chunked peak MB | baseline step s | chunked step s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    options = ["--size", str(args.size), "--repeats", str(args.repeats), "--threads", str(args.threads),
               "--model", args.model, "--device", args.device, "--precision", args.precision]  # fmt: skip
    rows = []
    for depth in args.depths:
        row: dict = {"slices": depth}
        for mode, chunk, checkpoint in (("baseline", depth, 0), ("chunked", args.chunk, 1)):
            cmd = [sys.executable, __file__, "--child", str(depth), str(chunk), str(checkpoint), *options]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"error: {mode} at {depth} slices failed:\n{done.stderr[-4000:]}", file=sys.stderr)
                return 1
            row[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        b, c = row["baseline"], row["chunked"]
        print(f"| {depth} | {b['saved_mb']:.1f} | {c['saved_mb']:.1f} | {b['peak_mb']:.1f} | {c['peak_mb']:.1f} | "
              f"{b['step_s']:.3f} | {c['step_s']:.3f} |", flush=True)  # fmt: skip
        rows.append(row)
        if args.json:  # after every depth: a run stopped by a time limit keeps the rows it finished
            keys = ("model", "device", "precision", "size", "chunk", "repeats", "threads")
            settings = {k: getattr(args, k) for k in keys}
            command = [Path(sys.argv[0]).name, *(argv or sys.argv[1:])]
            args.json.write_text(json.dumps({"command": command, **settings, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
