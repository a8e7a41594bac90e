"""Gate a registered model version on its benchx results; give it the alias only when it passes.

  medvl promote models:/demo/3 --policy governance/policies/phantom-demo.yaml --results bench/results.json
  medvl promote models:/demo/3 --policy P --results R --alias champion --audit-log audit.jsonl

The policy (YAML) sets minimum metrics (mean or CI lower bound), maximum subgroup gaps, required tasks and
optionally a baseline to beat (see docs/governance.md). The decision is recorded as model-version tags
(gate.passed, gate.reasons, gate.policy_sha256, gate.results_sha256) and appended to the audit log
(--audit-log, else $MEDVL_AUDIT_LOG, else medvl-audit.jsonl). A refusal never moves the alias.

Exit status: 0 passed (alias set), 1 refused (reasons printed), 2 bad input (policy, results, model, log).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from governance.audit import AuditLogError
from governance.gates import GateInputError, promote

HELP = "gate a model version on its benchx results and give it the champion alias only if it passes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``medvl promote`` arguments to ``parser``."""
    parser.add_argument("model_uri", metavar="MODEL_URI", help="models:/NAME/VERSION or models:/NAME@ALIAS")
    parser.add_argument("--policy", type=Path, required=True, metavar="P", help="gate policy YAML")
    parser.add_argument("--results", type=Path, required=True, metavar="R", help="benchx results.json of it")
    parser.add_argument("--alias", default="champion", help="alias given on a pass (default champion)")
    parser.add_argument("--audit-log", type=Path, metavar="LOG",
                        help="audit log (default: $MEDVL_AUDIT_LOG, else medvl-audit.jsonl)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite)")


def run(args: argparse.Namespace) -> int:
    """Run ``medvl promote``; returns the exit status."""
    try:
        decision = promote(args.model_uri, args.policy, args.results, args.tracking_uri, args.audit_log, args.alias)
    except (GateInputError, AuditLogError) as exc:
        print(f"medvl promote: {exc}", file=sys.stderr)
        return 2
    for note in decision.notes:
        print(f"note: {note}")
    if decision.passed:
        print(f"PASSED: {args.model_uri} now holds @{args.alias}")
        return 0
    print(f"REFUSED: {args.model_uri} keeps its aliases; @{args.alias} did not move")
    for reason in decision.reasons:
        print(f"  - {reason}")
    return 1
