"""Model stages: pretrain on the cache (resuming a killed run), then register the model version once."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from medvl.config import ConfigError
from pipelines.registry import register_once
from pipelines.runner import Context, StageError

PRETRAIN_DIR = "pretrain"


def pretrain_stages(ctx: Context) -> list[Any]:
    """The ``medvl pretrain`` runs of this pipeline (one, or one per stage of a staged recipe): the file, its
    overrides, then the pipeline's own paths."""
    from medvl.train.stages import plan_stages

    p = ctx.config.pretrain
    forced = [f"data.cache={ctx.state.outputs('cache')['cache']}", "data.manifest=",
              f"output_dir={ctx.work_dir / PRETRAIN_DIR}", f"run_name={ctx.config.name}",
              f"tracking.uri={ctx.tracking_uri}", "tracking.register_as=", "tracking.log_model=true"]
    try:
        return plan_stages(p.config or None, [*p.overrides, *forced])
    except ConfigError as exc:
        raise StageError(f"pretrain settings: {exc}") from None


def pretrain_stage(ctx: Context) -> dict[str, Any]:
    """Train each stage in turn (an earlier stage that exported its model is not trained again; a killed run
    resumes from ``last.pt``); replay an offline MLflow journal. The last stage's model is the pipeline's."""
    from medvl.tracking import JOURNAL_NAME, sync_offline
    from medvl.train.trainer import run_pretrain

    logging.getLogger("medvl").setLevel(logging.WARNING)
    *earlier, last = pretrain_stages(ctx)
    for stage in [s for s in earlier if not s.finished] + [last]:
        config, run_dir = stage.config, stage.run_dir
        resume = stage.has_checkpoint
        if not resume and run_dir.exists():
            shutil.rmtree(run_dir)  # a run killed before its first checkpoint: start clean
        ctx.say(f"  {'resuming' if resume else 'starting'} {run_dir} ({config.train.steps} steps)")
        result = run_pretrain(config, resume=resume)
    run_id = result.mlflow_run_id
    if (run_dir / JOURNAL_NAME).is_file():
        ctx.say("  the tracking server went away during training; replaying the offline log")
        try:
            run_id = sync_offline(run_dir, ctx.tracking_uri, config.tracking.experiment)
        except ConnectionError as exc:
            raise StageError(str(exc)) from exc
    if result.val_metrics:
        ctx.say("  validation: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(result.val_metrics.items())))
    return {"run_dir": str(run_dir), "model_dir": str(result.model_dir), "run_id": run_id, "steps": result.steps,
            "val_metrics": result.val_metrics}


def _logged_model_uri(ctx: Context, run_id: str, model_dir: str) -> str:
    """The pyfunc model of the pretraining run (logged now when training ran offline)."""
    from mlflow import MlflowClient

    from medvl.infer.pyfunc import log_pyfunc

    client = MlflowClient(tracking_uri=ctx.tracking_uri)
    uri = client.get_run(run_id).data.tags.get("medvl.model_uri")
    if not uri:
        uri, _ = log_pyfunc(model_dir, run_id, ctx.tracking_uri)
        client.set_tag(run_id, "medvl.model_uri", uri)
    return uri


def register_stage(ctx: Context) -> dict[str, Any]:
    """Register the pretrained model as a version of ``model_name`` (found again by ``pipeline.key``)."""
    from mlflow import MlflowClient

    trained = ctx.state.outputs("pretrain")
    run_id = trained["run_id"]
    if not run_id:
        raise StageError(f"the pretraining run has no MLflow run id; see {trained['run_dir']}/tracking.json")
    name = ctx.config.model_name
    tags = {"pipeline.name": ctx.config.name, "pipeline.config_hash": ctx.state.data["config_hash"],
            "pipeline.work_dir": str(ctx.work_dir.resolve())}
    version, created = register_once(_logged_model_uri(ctx, run_id, trained["model_dir"]), name, ctx.state.key,
                                     ctx.tracking_uri, tags)
    MlflowClient(tracking_uri=ctx.tracking_uri).set_tag(run_id, "medvl.registered_version", version)
    lineage = json.loads((Path(trained["model_dir"]) / "lineage.json").read_text())
    ctx.say(f"  {'registered' if created else 'found registered'} models:/{name}/{version} (run {run_id})")
    return {"name": name, "version": version, "model_uri": f"models:/{name}/{version}", "run_id": run_id,
            "cache_key": lineage.get("cache_key", "")}
