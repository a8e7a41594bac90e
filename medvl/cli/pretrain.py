"""Contrastive image-report pretraining (ConVIRT / CLIP / SigLIP losses, RadCLIP slice pooling).

Settings come from an optional YAML file (see configs/pretrain/*.yaml) and ``key=value`` overrides, e.g.

    medvl pretrain configs/pretrain/phantom-tiny.yaml train.steps=400 optim.lr=3e-4

The run folder ``<output_dir>/<run_name>`` receives config.yaml, last.pt (checkpoint), metrics.jsonl and the
exported model/. A recipe with ``stages`` (RadCLIP: a 2D stage, then the volume stage) runs them in order, each
in ``<run_name>-<stage>`` and starting from the previous stage's model (see medvl.train.stages).
Re-run with --resume after a crash to continue on the same loss curve. Launch on several
processes or nodes with torchrun (or srun under SLURM); rank 0 alone logs and checkpoints. MLflow: the URI
comes from tracking.uri, $MLFLOW_TRACKING_URI, or sqlite:///mlflow.db; an unreachable server does not stop
training (see 'medvl sync-runs').
"""

from __future__ import annotations

import argparse
import logging
import sys

HELP = "pretrain an image-report model (single process, torchrun or SLURM)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None, help="settings YAML file (optional)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="setting overrides, e.g. train.steps=100")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run from <run folder>/last.pt (staged recipes: skip finished stages)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")


def run(args: argparse.Namespace) -> int:
    import yaml

    from medvl.config import ConfigError, to_dict
    from medvl.train.stages import plan_stages, stages_to_run

    config_path, overrides = args.config, list(args.overrides)
    if config_path is not None and "=" in config_path:
        config_path, overrides = None, [config_path, *overrides]
    try:
        stages = plan_stages(config_path, overrides)
    except ConfigError as exc:
        print(f"medvl pretrain: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        for stage in stages:
            if stage.name:
                print(f"# stage {stage.name}")
            print(yaml.safe_dump(to_dict(stage.config), sort_keys=False), end="")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from medvl.errors import EXIT_BAD_INPUT, MedvlError
    from medvl.interrupts import INTERRUPTED_EXIT, sigterm_as_interrupt
    from medvl.train.trainer import run_pretrain

    for stage, resume in stages_to_run(stages, args.resume):
        if stage.name:
            print(f"stage '{stage.name}': {stage.run_dir}{' (resumed)' if resume else ''}")
        try:
            with sigterm_as_interrupt():
                result = run_pretrain(stage.config, resume=resume)
        except (MedvlError, FileNotFoundError) as exc:  # bad settings or data; other errors keep their traceback
            print(f"medvl pretrain: {f'stage {stage.name!r}: ' if stage.name else ''}{exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print(f"medvl pretrain: interrupted; the MLflow run is marked KILLED. Continue from the last checkpoint "
                  f"with the same command and --resume ({stage.run_dir})", file=sys.stderr)
            return INTERRUPTED_EXIT
        if result.model_dir is not None:
            summary = ", ".join(f"{k}={v:.3f}" for k, v in sorted(result.val_metrics.items()))
            print(f"finished {result.steps} steps{' (early stop)' if result.stopped_early else ''}; model: {result.model_dir}")
            if summary:
                print(f"validation: {summary}")
    return 0
