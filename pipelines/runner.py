"""Run a list of stages against a work folder's state: skip finished ones, resume at the first unfinished one.

Each stage is a function of the :class:`Context` that returns its outputs (JSON-friendly); the runner records
them in the state file only after the stage returns, so a process killed mid-stage reruns that stage (stages are
written to be safe to rerun). Stages that talk to MLflow first check that the tracking server answers and fail
with a message naming its URI when it does not.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from medvl.io.errors import MedvlIOError
from medvl.tracking import server_reachable
from pipelines.config import PipelineConfig
from pipelines.state import PipelineState


class StageError(RuntimeError):
    """A stage cannot finish; the message says why and what to do. Finished stages are kept."""


INTERRUPTED_MESSAGE = ("interrupted; open MLflow runs are marked KILLED. Run the same command again: finished stages "
                       "are kept, the interrupted one starts again (pretraining from its last checkpoint)")


def failure_status(prog: str, exc: Exception) -> int:
    """Print a pipeline's failure as ``prog: message`` on stderr; the exit status: 1 for a failed stage, 2 for
    bad input (config, state)."""
    print(f"{prog}: {exc}", file=sys.stderr)
    return 1 if isinstance(exc, StageError) else 2


EXPECTED_ERRORS = (MedvlIOError, ValueError, KeyError, OSError)
"""Errors of bad input or data (medvl's typed errors): reported as a failed stage with their message."""


@dataclass
class Context:
    """What stages share: the config, the work folder, its state and the tracking URI."""

    config: PipelineConfig
    work_dir: Path
    state: PipelineState
    tracking_uri: str
    progress: bool = True
    out: TextIO = field(default_factory=lambda: sys.stdout)

    def say(self, message: str) -> None:
        """Print a progress line (flushed, so a log shows it even when the process is killed next)."""
        print(message, file=self.out, flush=True)


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline: ``run(ctx) -> outputs``; ``mlflow``: needs the tracking server."""

    name: str
    run: Callable[[Context], dict[str, Any]]
    mlflow: bool = False


def check_tracking(uri: str) -> None:
    """Raise :class:`StageError` naming ``uri`` when the MLflow tracking server does not answer."""
    if not server_reachable(uri):
        raise StageError(f"MLflow tracking server {uri} is unreachable; start it (or point MLFLOW_TRACKING_URI at a "
                         f"running one) and run the same command again: finished stages are kept")


def stage_names(stages: list[Stage]) -> list[str]:
    """The names of ``stages`` in order."""
    return [s.name for s in stages]


def run_stages(stages: list[Stage], ctx: Context, from_stage: str | None = None, until: str | None = None) -> None:
    """Run every unfinished stage in order (from ``from_stage`` on, when given, also the finished ones).

    Args:
        stages: the pipeline.
        ctx: shared context.
        from_stage: forget this stage and every later one first, so they run again.
        until: stop after this stage.

    Raises:
        StageError: a stage failed (message names the stage).
        ValueError: unknown stage name.
    """
    names = stage_names(stages)
    for label, value in (("--from", from_stage), ("until", until)):
        if value is not None and value not in names:
            raise ValueError(f"{label} '{value}' is not a stage; stages: {', '.join(names)}")
    if from_stage is not None:
        ctx.state.forget(names[names.index(from_stage):])
    # A stopped server must fail fast rather than stall in MLflow's HTTP retry loop (user settings win).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    last = names.index(until) if until is not None else len(names) - 1
    for number, stage in enumerate(stages[: last + 1], start=1):
        prefix = f"[{number}/{len(stages)}] {stage.name}"
        if ctx.state.done(stage.name):
            ctx.say(f"{prefix}: done before, skipped")
            continue
        ctx.say(f"{prefix}: started")
        started = time.perf_counter()
        try:
            if stage.mlflow:
                check_tracking(ctx.tracking_uri)
            outputs = stage.run(ctx)
        except KeyboardInterrupt:
            ctx.say(f"{prefix}: interrupted (not finished: it runs again next time)")
            raise
        except StageError as exc:
            raise StageError(f"stage '{stage.name}' failed: {exc}") from exc
        except Exception as exc:
            if stage.mlflow and not server_reachable(ctx.tracking_uri):
                raise StageError(f"stage '{stage.name}' failed: MLflow tracking server {ctx.tracking_uri} stopped "
                                 f"answering ({type(exc).__name__}); run the same command again when it is back: "
                                 f"finished stages are kept") from exc
            if isinstance(exc, EXPECTED_ERRORS):
                raise StageError(f"stage '{stage.name}' failed: {type(exc).__name__}: {exc}") from exc
            raise
        ctx.state.finish(stage.name, outputs)
        ctx.say(f"{prefix}: finished in {time.perf_counter() - started:.1f} s")
