"""Print the lineage of a registered model version: data -> pretraining run -> model -> benchx results.

  medvl lineage models:/demo/3
  medvl lineage models:/demo@champion --json > lineage.json

Reads the MLflow store given by --tracking-uri, $MLFLOW_TRACKING_URI or sqlite:///mlflow.db: the version
(aliases, tags), its source run (config params, manifest and split hashes, code version, environment,
metrics), the model folder's lineage.json (manifest hash, cache key) and the benchx runs of the version with
their headline results. Facts that are absent are listed as missing, contradicting ones as conflicts.

Exit status: 0 printed, 2 bad input (not a models:/ URI, unknown model, version or alias).
"""

from __future__ import annotations

import argparse
import json
import sys

from governance.lineage import LineageError, model_lineage

HELP = "print the lineage of a registered model version (data -> run -> model -> benchx)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``medvl lineage`` arguments to ``parser``."""
    parser.add_argument("model_uri", metavar="MODEL_URI", help="models:/NAME/VERSION or models:/NAME@ALIAS")
    parser.add_argument("--json", action="store_true", help="print the lineage as JSON")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite)")


def _short(value: object, width: int = 16) -> str:
    return str(value)[:width] if value else "unknown"


def format_lineage(lineage: dict) -> str:
    """The lineage as indented text, from the data to the benchx results."""
    data, run, model = lineage["data"], lineage["run"] or {}, lineage["model"]
    splits = ", ".join(f"{k} {_short(v, 12)}" for k, v in sorted((data.get("split_hashes") or {}).items()))
    lines = [
        f"data      manifest {data.get('manifest') or '(path unknown)'}",
        f"          manifest hash {data.get('manifest_hash') or 'unknown'}; cache key {_short(data.get('cache_key'))}",
        f"          splits: {splits or 'unknown'}",
    ]
    if run:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(run["metrics"].items())[:6])
        lines += [
            f"  -> run  {run['run_id']} ({run['experiment']}, {run['status']}, {len(run['params'])} params)",
            f"          code {run.get('code_version') or 'unknown'}",
            f"          environment {json.dumps(run.get('environment')) if run.get('environment') else 'unknown'}",
            f"          metrics {metrics or 'none'}",
        ]
    else:
        lines.append("  -> run  unknown")
    aliases = f" @{', @'.join(model['aliases'])}" if model["aliases"] else ""
    gate = model["tags"].get("gate.passed", "not run")
    lines.append(f"  -> model models:/{model['name']}/{model['version']}{aliases} (gate: {gate})")
    for entry in lineage["benchx"]:
        summary = entry["summary"]
        if summary is None:
            why = "interrupted before it wrote results" if entry["status"] == "KILLED" else (
                "still running" if entry["status"] in ("RUNNING", "SCHEDULED") else "results unavailable")
            lines.append(f"  -> benchx run {entry['run_id']} suite {entry['suite']} ({entry['status']}): {why}")
            continue
        lines.append(f"  -> benchx run {entry['run_id']} suite {entry['suite']}: {summary['rows']} results, "
                     f"{summary['failures']} failures")
        for row in summary["headline"]:
            lines.append(f"          {row['dataset']} {row['task']} {row['metric']} (fraction {row['fraction']}): "
                         f"{_num(row['mean'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]")
    lines += [f"missing: {item}" for item in lineage["missing"]]
    lines += [f"CONFLICT: {item}" for item in lineage["conflicts"]]
    return "\n".join(lines)


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "?"


def run(args: argparse.Namespace) -> int:
    """Run ``medvl lineage``; returns the exit status."""
    try:
        lineage = model_lineage(args.model_uri, args.tracking_uri)
    except LineageError as exc:
        print(f"medvl lineage: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(lineage, indent=2, default=str) if args.json else format_lineage(lineage))
    return 0
