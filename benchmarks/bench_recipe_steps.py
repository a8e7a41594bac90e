"""Training speed of each stage of a pretraining recipe: optimizer steps per second of the medvl trainer.

    .venv/bin/python benchmarks/bench_recipe_steps.py configs/pretrain/phantom-volume.yaml \
        --set data.manifest=ct.parquet --set data.cache=ct-cache --steps 30 --repeats 3

Each stage of the recipe is built as ``medvl pretrain`` builds it (its own settings, the overrides on top), from
random weights (a later stage does not load the model of the one before: the speed is the same), and timed over
``--steps`` optimizer steps (``Trainer._optimizer_step``: loading, forward, backward, update) after ``--warmup``
more; the median of ``--repeats`` timings is printed per stage. To compare two versions of medvl side by side,
run the same command with ``PYTHONPATH`` pointing at each checkout (and each checkout's recipe file).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from medvl.train import distributed
from medvl.train.settings import PretrainConfig
from medvl.train.stages import plan_stages
from medvl.train.trainer import Trainer


def stage_steps_per_second(config: PretrainConfig, steps: int, warmup: int, repeats: int) -> list[float]:
    """Optimizer steps per second of one stage, ``repeats`` times."""
    trainer = Trainer.for_config(config, distributed.setup())
    batches = trainer._batches()
    for _ in range(warmup):
        trainer._optimizer_step(batches)
    rates = []
    for _ in range(repeats):
        _sync(trainer.device)
        start = time.perf_counter()
        for _ in range(steps):
            trainer._optimizer_step(batches)
        _sync(trainer.device)
        rates.append(steps / (time.perf_counter() - start))
    return rates


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", type=Path, help="a recipe of configs/pretrain/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override applied to every stage (data.manifest=..., data.cache=...), repeatable")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per timing")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as out:
        stages = plan_stages(args.recipe, [*args.overrides, f"output_dir={out}", "train.eval_every=0",
                                           "tracking.log_model=false"])  # fmt: skip
        for stage in stages:
            stage.config.model.init_from = ""
            rates = stage_steps_per_second(stage.config, args.steps, args.warmup, args.repeats)
            print(json.dumps({"stage": stage.name, "batch": stage.config.train.batch_size,
                              "steps_per_s": round(statistics.median(rates), 2),
                              "runs": [round(r, 2) for r in rates]}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
