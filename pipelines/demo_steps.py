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
from typing import Any

from medvl.config import ConfigError, config_hash
from medvl.interrupts import INTERRUPTED_EXIT, sigterm_as_interrupt
from pipelines.config import PipelineConfig, load_pipeline_config
from pipelines.runner import INTERRUPTED_MESSAGE, Context, StageError, failure_status
from pipelines.state import STATE_FILE, StateError

CONFIG = Path(__file__).with_name("configs") / "demo.yaml"
CT_CONFIG = CONFIG.with_name("demo-ct.yaml")
PHANTOM_DIR = "phantom"
CT_PHANTOM_DIR = "phantom-ct"
PIPELINE_DIR = "pipeline"
CT_PIPELINE_DIR = "pipeline-ct"
MONTAGE = "montage.png"
CT_SIZE = 64
CT_DEPTH = (40, 120)


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: cohorts, image size; pretraining steps and batch (``--quick`` only: the full demo takes
    them from its recipes). benchx always runs its suites' whole protocol, so the gates can accept the results."""

    n_2d: int
    n_3d: int
    synth_size: int
    cache_size: int
    steps: int
    batch_size: int


FULL = DemoSize(n_2d=1200, n_3d=200, synth_size=128, cache_size=128, steps=400, batch_size=32)
QUICK = DemoSize(n_2d=80, n_3d=24, synth_size=64, cache_size=64, steps=20, batch_size=16)


def synthesize_cohort(root: Path, workers: int = 1, **params: Any) -> bool:
    """Write the phantom cohort of ``params`` (:func:`medvl.data.phantom.synthesize` arguments; the files do not
    depend on ``workers``) into ``root`` unless the same one is there; returns True when (re)written."""
    from medvl.data.phantom import synthesize

    cohort = root / "cohort.json"
    if cohort.is_file() and (root / "studies.csv").is_file():
        written = json.loads(cohort.read_text())["parameters"]
        if all(written.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in params.items()):
            return False
    synthesize(root, **params, workers=workers, overwrite=True, progress=True)
    return True


def demo_config(args: argparse.Namespace, size: DemoSize, out: Path) -> PipelineConfig:
    """The demo pipeline config with this run's folders, sizes and tracking URI."""
    from medvl.realdata import realdata_root

    os.environ["MEDVL_DEMO_PHANTOM"] = str((out / PHANTOM_DIR).resolve())
    real = None if (args.no_realdata or args.quick) else realdata_root()
    if real is not None:
        os.environ["MEDVL_REALDATA"] = str(real)
    config = load_pipeline_config(CONFIG, [f"tracking_uri={tracking_uri(out)}", f"cache.size={size.cache_size}"])
    if real is None:
        config.sources = [s for s in config.sources if s.adapter == "phantom"]
    if args.quick:  # the full demo keeps the recipe's steps and batch
        config.gate.policy = str(CONFIG.with_name("gate-demo-quick.yaml"))
        config.pretrain.overrides += [f"train.steps={size.steps}", f"train.batch_size={size.batch_size}",
                                      "train.eval_every=10", "train.checkpoint_every=10", "train.log_every=5"]
    return config


def demo_ct_config(args: argparse.Namespace, size: DemoSize, out: Path) -> PipelineConfig:
    """The volume pipeline config (``demo-ct.yaml``) with this run's folders and tracking URI."""
    os.environ["MEDVL_DEMO_PHANTOM_CT"] = str((out / CT_PHANTOM_DIR).resolve())
    config = load_pipeline_config(CT_CONFIG, [f"tracking_uri={tracking_uri(out)}"])
    if args.quick:
        config.gate.policy = str(CONFIG.with_name("gate-demo-ct-quick.yaml"))
        config.pretrain.overrides += [f"train.steps={size.steps}", "train.batch_size=8", "data.max_slices=8",
                                      "train.eval_every=10", "train.checkpoint_every=10", "train.log_every=5"]
    return config


def tracking_uri(out: Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else a sqlite store in the demo folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(out / 'mlflow.db').resolve()}"


def is_stale(work: Path, config_hash: str, cohort_rewritten: bool) -> bool:
    """Whether an earlier demo's pipeline folder was made from another cohort or config."""
    state = work / STATE_FILE
    if not state.is_file():
        return False
    return cohort_rewritten or json.loads(state.read_text()).get("config_hash") != config_hash


def print_evaluation(ctx: Context) -> None:
    """The benchx comparison of a demo model with its baseline."""
    from pipelines.summary import comparison_table

    evaluated = ctx.state.outputs("benchx")
    if "baseline" in evaluated:
        print(f"\nbenchx ({ctx.config.evaluate.suite}): {ctx.state.outputs('register')['model_uri']} vs "
              f"{ctx.config.evaluate.baseline}")
        print(comparison_table(evaluated["model"]["results"], evaluated["baseline"]["results"]))


def model_ref(ctx: Context) -> str:
    """The demo model's registry reference: ``@alias`` when the gate passed it, else its version."""
    name, alias = ctx.config.model_name, ctx.config.gate.alias
    return f"models:/{name}@{alias}" if ctx.state.outputs("gate")["passed"] else ctx.state.outputs("register")["model_uri"]


def print_next_steps(contexts: list[Context]) -> None:
    """How to open the review app on the demo models, and their lineage."""
    env = f"MLFLOW_TRACKING_URI={contexts[0].tracking_uri}"
    for ctx in contexts:
        kind = "volumes (CT)" if ctx.config.name.endswith("-ct") else "radiographs"
        print(f"\nmodel for {kind}: {model_ref(ctx)}")
    print(f"review them in the clinician app:\n  {env} medvl review --model {model_ref(contexts[0])}\n"
          f"  (or: {env} streamlit run app/Home.py; pick the model in the sidebar)\n"
          f"lineage: {env} medvl lineage {model_ref(contexts[0])}")


def run_pipeline(config: PipelineConfig, work: Path, fresh: bool, montage: Path | None) -> Context:
    """One demo pipeline up to the cache (with a cohort summary and a montage), then to the end."""
    from pipelines import pretrain_evaluate_register as pipeline
    from pipelines.montage import write_montage
    from pipelines.summary import cohort_summary

    if is_stale(work, config_hash(config), fresh):
        print(f"[demo] {work} was made from another cohort or config: starting it over", flush=True)
        shutil.rmtree(work)
    ctx = pipeline.run(config, work, until="cache")
    print("\n" + cohort_summary(ctx.state.outputs("ingest")["manifest"]))
    if montage is not None:
        print(f"montage: {write_montage(ctx.state.outputs('cache')['cache'], montage)}\n", flush=True)
    return pipeline.run(config, work)


def _run_demo_pipelines(args: argparse.Namespace, size: DemoSize, n_2d: int, n_3d: int, contexts: list[Context]) -> None:
    """Synthesize the cohorts and run the 2D and volume pipelines, appending each pipeline's context."""
    out: Path = args.out
    print(f"[demo] phantom cohorts: {n_2d} radiographs in {out / PHANTOM_DIR}, {n_3d} CTs in {out / CT_PHANTOM_DIR}",
          flush=True)  # fmt: skip
    fresh = synthesize_cohort(out / PHANTOM_DIR, n_2d=n_2d, n_3d=0, seed=args.seed, size=size.synth_size)
    contexts.append(run_pipeline(demo_config(args, size, out), out / PIPELINE_DIR, fresh, out / MONTAGE))
    print_evaluation(contexts[-1])
    if n_3d:
        fresh = synthesize_cohort(out / CT_PHANTOM_DIR, n_2d=0, n_3d=n_3d, seed=args.seed, ct_size=CT_SIZE,
                                  depth_range=CT_DEPTH, ct_dicom_fraction=0.1, workers=2)  # fmt: skip
        contexts.append(run_pipeline(demo_ct_config(args, size, out), out / CT_PIPELINE_DIR, fresh, None))
        print_evaluation(contexts[-1])


def run_demo(args: argparse.Namespace) -> int:
    """Run ``medvl demo`` (see :mod:`pipelines.demo`); returns the exit status."""
    size = QUICK if args.quick else FULL
    n_2d = args.n_2d if args.n_2d is not None else size.n_2d
    n_3d = args.n_3d if args.n_3d is not None else size.n_3d
    if n_2d < 2 * size.batch_size or not (n_3d == 0 or n_3d >= 20):
        print(f"medvl demo: --n-2d must be at least {2 * size.batch_size} and --n-3d 0 or at least 20", file=sys.stderr)
        return 2
    contexts: list[Context] = []
    try:
        with sigterm_as_interrupt():
            _run_demo_pipelines(args, size, n_2d, n_3d, contexts)
    except (ConfigError, StateError, StageError) as exc:
        return failure_status("medvl demo", exc)
    except KeyboardInterrupt:
        print(f"medvl demo: {INTERRUPTED_MESSAGE}", file=sys.stderr)
        return INTERRUPTED_EXIT
    print_next_steps(contexts)
    if len(contexts) > 1 and not contexts[1].state.outputs("gate")["passed"]:
        print("\nthe CT model's gate refused it (registered, not promoted): at demo size the volume "
              "recipe learns less than at full size (docs/pretraining.md)")  # fmt: skip
    return 0 if contexts[0].state.outputs("gate")["passed"] else 1
