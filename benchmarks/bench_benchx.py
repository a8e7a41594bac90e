"""Benchmark: the benchx protocol against a naive protocol, side by side, on a small phantom suite.

benchx protocol: image features extracted once per model and dataset (disk cache), then a linear probe per
fraction and seed on the cached features. Naive protocol: for every fraction and seed, full fine-tuning of the
encoder with a linear head (features recomputed by every forward pass). Both run on the same prepared dataset
(card ``phantom-quick`` unless ``--card``), with the random-initialised ``tiny-resnet18``; each protocol runs
``--repeats`` times from a cold feature cache and the median wall time is reported.

    python benchmarks/bench_benchx.py --repeats 3 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_protocol(name: str, dataset, adapter, fractions: list[float], seeds: list[int]) -> float:
    """Seconds one protocol takes from a cold feature cache."""
    from benchx.features import FeatureStore
    from benchx.tasks import TASK_FUNCTIONS
    from benchx.tasks.base import TaskContext

    task = TASK_FUNCTIONS["linear_probe" if name == "benchx" else "finetune_full"]
    with tempfile.TemporaryDirectory() as tmp:
        ctx = TaskContext(dataset, adapter, FeatureStore(Path(tmp)))
        start = time.perf_counter()
        for fraction in fractions:
            for seed in seeds:
                task(ctx, fraction, seed)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--card", default="phantom-quick")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    import torch

    from benchx.cards import find_card
    from benchx.data import prepare_dataset
    from benchx.models import load_adapter
    from benchx.paths import default_data_dir

    dataset = prepare_dataset(find_card(args.card), Path(args.data_dir) if args.data_dir else default_data_dir())
    adapter = load_adapter("random:tiny-resnet18")
    times: dict[str, list[float]] = {"benchx": [], "naive": []}
    for _ in range(args.repeats):
        for name in times:  # interleaved, so both see the same machine load
            times[name].append(run_protocol(name, dataset, adapter, args.fractions, args.seeds))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
          f"{torch.get_num_threads()}; card {args.card}; fractions {args.fractions}; seeds {args.seeds}; "
          f"repeats {args.repeats}")
    for name, values in times.items():
        print(f"{name:7s} median {statistics.median(values):8.2f} s   runs: {', '.join(f'{v:.2f}' for v in values)}")
    ratio = statistics.median(times["naive"]) / statistics.median(times["benchx"])
    print(f"speed-up of the benchx protocol: {ratio:.1f}x")


if __name__ == "__main__":
    main()
