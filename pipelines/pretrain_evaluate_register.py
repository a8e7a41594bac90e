"""The ``pretrain-evaluate-register`` pipeline: ingest -> de-identification check -> cache -> pretrain ->
register -> benchx -> gate (alias) -> model card (stating the gate's outcome).

The version is registered right after pretraining (tagged ``pipeline.key``) because benchx, the model card and the
gate all attach to a registered version; only the gate gives it the alias (``@champion``) that serving and the
review app use, and only when it passes. Killed at any point and run again on the same work folder, it resumes at
the first unfinished stage and ends in the same registered state.
"""

from __future__ import annotations

from pathlib import Path

from medvl.config import config_hash
from medvl.tracking import resolve_tracking_uri
from pipelines.config import PipelineConfig
from pipelines.runner import Context, Stage, run_stages
from pipelines.stages.data import cache_stage, deid_check_stage, ingest_stage
from pipelines.stages.governance import benchx_stage, card_stage, gate_stage
from pipelines.stages.model import pretrain_stage, register_stage
from pipelines.state import PipelineState

NAME = "pretrain-evaluate-register"
STAGES = [
    Stage("ingest", ingest_stage),
    Stage("deid-check", deid_check_stage),
    Stage("cache", cache_stage),
    Stage("pretrain", pretrain_stage, mlflow=True),
    Stage("register", register_stage, mlflow=True),
    Stage("benchx", benchx_stage, mlflow=True),
    Stage("gate", gate_stage, mlflow=True),
    Stage("card", card_stage, mlflow=True),
]


def open_context(config: PipelineConfig, work_dir: Path, from_stage: str | None = None, progress: bool = True) -> Context:
    """The context of a run on ``work_dir`` (its state file created or reopened)."""
    state = PipelineState(work_dir, NAME, config_hash(config), accept_new_config=from_stage is not None)
    return Context(config, Path(work_dir).resolve(), state, resolve_tracking_uri(config.tracking_uri or None), progress)


def run(config: PipelineConfig, work_dir: Path, from_stage: str | None = None, until: str | None = None,
        progress: bool = True) -> Context:
    """Run the pipeline on ``work_dir`` (resuming what an earlier run left); returns the context with its state.

    Raises:
        StageError: a stage failed; StateError: the work folder belongs to another pipeline or config.
    """
    ctx = open_context(config, work_dir, from_stage, progress)
    ctx.say(f"{NAME} '{config.name}' in {work_dir} (key {ctx.state.key}, MLflow {ctx.tracking_uri})")
    run_stages(STAGES, ctx, from_stage=from_stage, until=until)
    return ctx
