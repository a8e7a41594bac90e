"""Contrastive image-report pretraining (ConVIRT / CLIP / SigLIP losses, RadCLIP slice pooling).

Settings come from an optional YAML file (see configs/pretrain/*.yaml) and ``key=value`` overrides, e.g.

    medvl pretrain configs/pretrain/phantom-tiny.yaml train.steps=400 optim.lr=3e-4

The run folder ``<output_dir>/<run_name>`` receives config.yaml, last.pt (checkpoint), metrics.jsonl and the
exported model/. Re-run with --resume after a crash to continue on the same loss curve. Launch on several
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
    parser.add_argument("--resume", action="store_true", help="continue the run from <run folder>/last.pt")
    parser.add_argument("--print-config", action="store_true", help="print the resolved settings and exit")


def run(args: argparse.Namespace) -> int:
    import yaml

    from medvl.config import ConfigError, load_config, to_dict
    from medvl.train.settings import PretrainConfig

    config_path, overrides = args.config, list(args.overrides)
    if config_path is not None and "=" in config_path:
        config_path, overrides = None, [config_path, *overrides]
    try:
        config = load_config(PretrainConfig, config_path, overrides)
    except ConfigError as exc:
        print(f"medvl pretrain: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from medvl.data.cache import CacheError
    from medvl.models.config import ModelConfigError
    from medvl.train.trainer import run_pretrain

    try:
        result = run_pretrain(config, resume=args.resume)
    except (CacheError, ModelConfigError, FileNotFoundError, ValueError) as exc:
        print(f"medvl pretrain: {exc}", file=sys.stderr)
        return 2
    if result.model_dir is not None:
        summary = ", ".join(f"{k}={v:.3f}" for k, v in sorted(result.val_metrics.items()))
        print(f"finished {result.steps} steps{' (early stop)' if result.stopped_early else ''}; model: {result.model_dir}")
        if summary:
            print(f"validation: {summary}")
    return 0
