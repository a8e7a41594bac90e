"""Replay the offline MLflow journal of one or more run folders into the tracking server.

A run whose tracking server was unreachable keeps its params, metrics, tags and artifact paths in
``RUN_DIR/mlflow-offline.jsonl``. Once the server is back, this command logs them to the run that was open
(or to a new run) and marks the journal as synced, so running it twice logs nothing twice.
"""

from __future__ import annotations

import argparse
import sys

HELP = "send the offline MLflow journal of run folders to the tracking server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders holding mlflow-offline.jsonl")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--experiment", default="medvl", help="experiment for runs that never reached the server")


def run(args: argparse.Namespace) -> int:
    from medvl.tracking import sync_offline

    status = 0
    for run_dir in args.run_dirs:
        try:
            run_id = sync_offline(run_dir, args.tracking_uri, args.experiment)
        except (FileNotFoundError, ConnectionError) as exc:
            print(f"medvl sync-runs: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{run_dir}: synced to MLflow run {run_id}")
    return status
