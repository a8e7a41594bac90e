"""Memory and time of volume encoding: chunked slices with activation checkpointing against encoding all at once.

For each depth S (slices per volume), one training step (``encode_volume`` forward + backward) of the
``tiny-radclip-resnet18`` model (stage ``volume``, image encoder trained) is measured two ways, side by side:

- baseline: all real slices through the 2D encoder in one batch, no checkpointing (``chunk_size`` = S);
- chunked: ``--chunk`` slices at a time with activation checkpointing (the configured behaviour).

Memory, in a fresh process per (S, mode) so earlier runs leave no heap behind:
  - ``saved``: bytes of the distinct storages autograd keeps for backward after the forward pass (exact);
  - ``peak``: peak resident memory during the step above the resident memory just before it (a sampling
    thread reads /proc/self/statm every 0.5 ms).
Time: median of ``--repeats`` steps (after one warm-up) in the same process.

Run: .venv/bin/python benchmarks/bench_slice_pooling.py [--depths 8 16 32 64] [--chunk 8] [--size 128]
     [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

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


def measure(depth: int, chunk: int, checkpoint: bool, size: int, repeats: int) -> dict:
    """Run in a child process: memory of the first step, then the median step time."""
    import torch

    from medvl.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny-radclip-resnet18", schedule={"stage": "volume", "freeze_image_encoder": False}).train()
    model.config["slice_pooling"].update(chunk_size=chunk, checkpoint=checkpoint)
    slices = torch.randn(1, depth, 1, size, size)
    z = torch.arange(depth, dtype=torch.float32)[None] * 2.5

    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with PeakRSS() as rss:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model.encode_volume(slices, z)
        out.embedding.sum().backward()
    model.zero_grad()
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model.encode_volume(slices, z).embedding.sum().backward()
        times.append(time.perf_counter() - start)
        model.zero_grad()
    return {"saved_mb": sum(storages.values()) / 2**20, "peak_mb": (rss.peak - rss.start) / 2**20, "step_s": statistics.median(times[1:])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depths", type=int, nargs="+", default=[8, 16, 32, 64], help="slices per volume")
    parser.add_argument("--chunk", type=int, default=8, help="slices per checkpointed chunk")
    parser.add_argument("--size", type=int, default=128, help="slice height and width in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads in each child")
    parser.add_argument("--child", nargs=3, type=int, metavar=("DEPTH", "CHUNK", "CHECKPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        depth, chunk, checkpoint = args.child
        print(json.dumps(measure(depth, chunk, bool(checkpoint), args.size, args.repeats)))
        return 0

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"model tiny-radclip-resnet18, slices {args.size}x{args.size}, chunk {args.chunk}, {args.threads} thread(s), "
          f"median of {args.repeats} steps\n")
    print("| slices | baseline saved MB | chunked saved MB | baseline peak MB | chunked peak MB | baseline step s | chunked step s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for depth in args.depths:
        row = {}
        for mode, chunk, checkpoint in (("baseline", depth, 0), ("chunked", args.chunk, 1)):
            cmd = [sys.executable, __file__, "--child", str(depth), str(chunk), str(checkpoint), "--size", str(args.size),
                   "--repeats", str(args.repeats), "--threads", str(args.threads)]  # fmt: skip
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            row[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        b, c = row["baseline"], row["chunked"]
        print(f"| {depth} | {b['saved_mb']:.1f} | {c['saved_mb']:.1f} | {b['peak_mb']:.1f} | {c['peak_mb']:.1f} | "
              f"{b['step_s']:.3f} | {c['step_s']:.3f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
