"""The steps of ``medvl demo``: synthesize the phantom cohort, then run the pipeline with a summary, a montage,
the benchx comparison with the baseline, and how to open the review app.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from medvl.config import ConfigError
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.runner import Context, StageError, failure_status
from pipelines.state import STATE_FILE, StateError

CONFIG = Path(__file__).with_name("configs") / "demo.yaml"
PHANTOM_DIR = "phantom"
PIPELINE_DIR = "pipeline"
MONTAGE = "montage.png"


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: cohort, image size, benchx seeds; pretraining steps and batch (``--quick`` only: the full
    demo takes them from its recipe)."""

    n_2d: int
    synth_size: int
    cache_size: int
    steps: int
    batch_size: int
    seeds: tuple[int, ...]


FULL = DemoSize(n_2d=1200, synth_size=128, cache_size=128, steps=600, batch_size=32, seeds=(0, 1, 2))
QUICK = DemoSize(n_2d=80, synth_size=64, cache_size=64, steps=20, batch_size=16, seeds=(0,))


def synthesize_cohort(root: Path, n_2d: int, n_3d: int, seed: int, size: int) -> bool:
    """Write the phantom cohort into ``root`` unless the same one is there; returns True when (re)written."""
    from medvl.data.phantom import synthesize

    params = {"n_2d": n_2d, "n_3d": n_3d, "seed": seed, "size": size}
    cohort = root / "cohort.json"
    if cohort.is_file() and (root / "studies.csv").is_file():
        written = json.loads(cohort.read_text())["parameters"]
        if all(written.get(k) == v for k, v in params.items()):
            return False
    synthesize(root, n_2d=n_2d, n_3d=n_3d, seed=seed, size=size, overwrite=True, progress=True)
    return True


def demo_config(args: argparse.Namespace, size: DemoSize, out: Path) -> PipelineConfig:
    """The demo pipeline config with this run's folders, sizes and tracking URI."""
    from medvl.data.realdata import realdata_root

    os.environ["MEDVL_DEMO_PHANTOM"] = str((out / PHANTOM_DIR).resolve())
    real = None if (args.no_realdata or args.quick) else realdata_root()
    if real is not None:
        os.environ["MEDVL_REALDATA"] = str(real)
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(out / 'mlflow.db').resolve()}"
    config = load_pipeline_config(CONFIG, [f"tracking_uri={tracking}", f"cache.size={size.cache_size}",
                                           f"evaluate.seeds={list(size.seeds)}"])
    if real is None:
        config.sources = [s for s in config.sources if s.adapter == "phantom"]
    if args.quick:  # the full demo keeps the recipe's steps and batch
        config.gate.policy = str(CONFIG.with_name("gate-demo-quick.yaml"))
        config.pretrain.overrides += [f"train.steps={size.steps}", f"train.batch_size={size.batch_size}",
                                      "train.eval_every=10", "train.checkpoint_every=10", "train.log_every=5"]
    return config


def is_stale(work: Path, config_hash: str, cohort_rewritten: bool) -> bool:
    """Whether an earlier demo's pipeline folder was made from another cohort or config."""
    state = work / STATE_FILE
    if not state.is_file():
        return False
    return cohort_rewritten or json.loads(state.read_text()).get("config_hash") != config_hash


def print_evaluation(ctx: Context) -> None:
    """The benchx comparison of the demo model with the baseline."""
    from pipelines.summary import comparison_table

    evaluated = ctx.state.outputs("benchx")
    if "baseline" in evaluated:
        print(f"\nbenchx ({ctx.config.evaluate.suite}): {ctx.state.outputs('register')['model_uri']} vs "
              f"{ctx.config.evaluate.baseline}")
        print(comparison_table(evaluated["model"]["results"], evaluated["baseline"]["results"]))


def print_next_steps(ctx: Context) -> None:
    """How to open the review app and the lineage of the demo model."""
    name, alias = ctx.config.model_name, ctx.config.gate.alias
    gate = ctx.state.outputs("gate")
    ref = f"models:/{name}@{alias}" if gate["passed"] else ctx.state.outputs("register")["model_uri"]
    env = f"MLFLOW_TRACKING_URI={ctx.tracking_uri}"
    print(f"\nmodel: {ref}\nreview it in the clinician app:\n  {env} medvl review --model {ref}\n"
          f"  (or: {env} streamlit run app/Home.py)\nlineage: {env} medvl lineage {ref}")


def run_demo(args: argparse.Namespace) -> int:
    """Run ``medvl demo`` (see :mod:`pipelines.demo`); returns the exit status."""
    from pipelines import pretrain_evaluate_register as pipeline
    from pipelines.montage import write_montage
    from pipelines.summary import cohort_summary

    size = QUICK if args.quick else FULL
    n_2d = args.n_2d if args.n_2d is not None else size.n_2d
    if n_2d < 2 * size.batch_size or args.n_3d < 0:
        print(f"medvl demo: --n-2d must be at least {2 * size.batch_size} and --n-3d at least 0", file=sys.stderr)
        return 2
    out: Path = args.out
    try:
        print(f"[demo] phantom cohort: {n_2d} radiographs, {args.n_3d} CTs in {out / PHANTOM_DIR}", flush=True)
        fresh = synthesize_cohort(out / PHANTOM_DIR, n_2d, args.n_3d, args.seed, size.synth_size)
        config = demo_config(args, size, out)
        work = out / PIPELINE_DIR
        if is_stale(work, pipeline.config_hash(config), fresh):
            print(f"[demo] {work} was made from another cohort or config: starting it over", flush=True)
            shutil.rmtree(work)
        ctx = pipeline.run(config, work, until="cache")
        print("\n" + cohort_summary(ctx.state.outputs("ingest")["manifest"]))
        montage = write_montage(ctx.state.outputs("cache")["cache"], out / MONTAGE)
        print(f"montage: {montage}\n", flush=True)
        ctx = pipeline.run(config, work)
    except (ConfigError, StateError, StageError) as exc:
        return failure_status("medvl demo", exc)
    print_evaluation(ctx)
    print_next_steps(ctx)
    return 0 if ctx.state.outputs("gate")["passed"] else 1
