"""Evaluation and governance stages: benchx on the registered version (and a baseline), model card, gate + alias."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from pipelines.runner import Context, StageError

BENCHX_DIR = "benchx"
CARD_DIR = "model-card"
GATE_DIR = "gate"


def require(module: str) -> ModuleType:
    """Import ``module`` or fail the stage saying which package is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise StageError(f"{module} is not available ({exc}); install medvl with its benchx and governance "
                         f"packages") from exc


def _evaluate(ctx: Context, model: str, out_dir: Path) -> dict[str, Any]:
    """Run benchx on ``model``; returns where results.json went and its MLflow parent run."""
    api = require("benchx.api")
    e = ctx.config.evaluate
    results = api.evaluate(model, e.suite, tasks=e.tasks or None, fractions=e.fractions or None,
                           seeds=e.seeds or None, out_dir=out_dir, tracking_uri=ctx.tracking_uri,
                           progress=ctx.progress)
    for failure in results.failures:
        ctx.say(f"  {model}: benchx {failure.dataset}/{failure.task} (fraction {failure.fraction}, seed "
                f"{failure.seed}) failed: {failure.error}")
    return {"results": str(out_dir / "results.json"), "mlflow_run_id": results.mlflow_run_id}


def benchx_stage(ctx: Context) -> dict[str, Any]:
    """Evaluate the registered version on the configured suite, and the baseline when one is set."""
    model_uri = ctx.state.outputs("register")["model_uri"]
    outputs = {"model": _evaluate(ctx, model_uri, ctx.work_dir / BENCHX_DIR / "model")}
    ctx.say(f"  {model_uri}: {outputs['model']['results']}")
    if ctx.config.evaluate.baseline:
        outputs["baseline"] = _evaluate(ctx, ctx.config.evaluate.baseline, ctx.work_dir / BENCHX_DIR / "baseline")
        ctx.say(f"  {ctx.config.evaluate.baseline}: {outputs['baseline']['results']}")
    return outputs


def card_stage(ctx: Context) -> dict[str, Any]:
    """Write the model card (Markdown + HTML) and attach it to the version (skipped when ``card: false``)."""
    if not ctx.config.card:
        return {"skipped": True}
    from pipelines.attribution_examples import write_attribution_examples

    cards = require("governance.cards")
    examples = write_attribution_examples(ctx.state.outputs("pretrain")["model_dir"],
                                          ctx.state.outputs("cache")["cache"], ctx.work_dir / CARD_DIR / "examples")
    markdown, html = cards.write_model_card(ctx.state.outputs("register")["model_uri"], ctx.work_dir / CARD_DIR,
                                            tracking_uri=ctx.tracking_uri, attributions=examples)
    ctx.say(f"  {markdown}\n  {html}")
    return {"markdown": str(markdown), "html": str(html)}


def resolved_policy(ctx: Context) -> Path:
    """The gate policy with ``beat_baseline.results: baseline`` pointing at this run's baseline results."""
    source = Path(ctx.config.gate.policy)
    policy = yaml.safe_load(source.read_text()) or {}
    beat = policy.get("beat_baseline") or {}
    if beat.get("results") == "baseline":
        evaluated = ctx.state.outputs("benchx")
        if "baseline" not in evaluated:
            raise StageError(f"{source}: beat_baseline.results is 'baseline' but evaluate.baseline is not set")
        beat["results"] = str(Path(evaluated["baseline"]["results"]).resolve())
    out = ctx.work_dir / GATE_DIR / "policy.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(policy, sort_keys=False))
    return out


def gate_stage(ctx: Context) -> dict[str, Any]:
    """Apply the promotion gate; a passing version gets the alias, a refused one keeps none (reasons printed)."""
    gate = ctx.config.gate
    model_uri = ctx.state.outputs("register")["model_uri"]
    if not gate.policy:
        ctx.say(f"  no gate.policy in the config: {model_uri} stays without @{gate.alias}")
        return {"passed": False, "reasons": ["no gate policy configured"], "alias": ""}
    gates = require("governance.gates")
    audit = Path(gate.audit_log) if gate.audit_log else ctx.work_dir / GATE_DIR / "audit.jsonl"
    decision = gates.promote(model_uri, resolved_policy(ctx), ctx.state.outputs("benchx")["model"]["results"],
                             tracking_uri=ctx.tracking_uri, audit_log=audit, alias=gate.alias)
    verdict = f"passed: {model_uri} is now @{gate.alias}" if decision.passed else "refused: no alias given"
    ctx.say(f"  gate {verdict}" + "".join(f"\n    - {r}" for r in decision.reasons))
    return {"passed": bool(decision.passed), "reasons": list(decision.reasons), "audit_log": str(audit),
            "alias": gate.alias if decision.passed else ""}
