"""``medvl pipelines`` (alias ``pipelines``): end-to-end flows of medvl, restartable stage by stage.

  medvl pipelines list
  medvl pipelines run pretrain-evaluate-register pipelines/configs/phantom.yaml --work-dir work/phantom
  medvl pipelines run pretrain-evaluate-register CONFIG --work-dir DIR --from benchx   (redo benchx and later stages)
  medvl pipelines run pretrain-evaluate-register CONFIG --until cache      (data stages only)
  medvl pipelines run pretrain-evaluate-register CONFIG cache.size=64 'pretrain.overrides=[train.steps=50]'

A state file in the work folder (pipeline-state.json) records finished stages and their outputs. Killed at any
point, the same command resumes at the first unfinished stage (pretraining continues from its last checkpoint)
and registers the model version only once. MLflow: tracking_uri in the config, else $MLFLOW_TRACKING_URI, else
sqlite:///mlflow.db; a stage that needs an unreachable server fails naming its URI, and the same command resumes
once it is back.

Exit status: 0 finished (gate passed), 1 a stage failed or the gate refused the model, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "end-to-end flows (pretrain-evaluate-register), restartable stage by stage"
PIPELINES = {"pretrain-evaluate-register": "ingest -> deid-check -> cache -> pretrain -> register -> benchx -> gate "
             "(alias) -> card"}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``list`` and ``run`` actions and their options."""
    from pipelines.pretrain_evaluate_register import STAGES

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the pipelines and their stages")
    run_ = sub.add_parser("run", help="run (or resume) a pipeline on a work folder",
                          description="Run a pipeline, resuming at the first stage the work folder has not finished.")
    run_.add_argument("pipeline", help=f"pipeline name ({', '.join(PIPELINES)})")
    run_.add_argument("config", type=Path, help="pipeline config YAML (see pipelines/configs/)")
    run_.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                      help="config overrides, as for 'medvl pretrain' (e.g. cache.size=64 deid.policy=warn)")
    run_.add_argument("--work-dir", type=Path, default=None,
                      help="work folder with the state file and every output (default: work/<config name>)")
    run_.add_argument("--from", dest="from_stage", metavar="STAGE", choices=[s.name for s in STAGES],
                      help="run this stage and every later one again (also accepts a changed config)")
    run_.add_argument("--until", metavar="STAGE", choices=[s.name for s in STAGES],
                      help="stop after this stage (e.g. cache on a CPU node, the rest on a GPU node)")
    run_.add_argument("-q", "--quiet", action="store_true", help="no progress bars (stage lines are still printed)")


def run(args: argparse.Namespace) -> int:
    """Carry out ``args.action``; returns the exit status."""
    if args.action == "list":
        for name, stages in PIPELINES.items():
            print(f"{name}: {stages}")
        return 0
    return _run(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pipelines`` console script (the same as ``medvl pipelines``)."""
    from medvl.cli import run_as_program

    return run_as_program(sys.modules[__name__], "pipelines", argv)


def _run(args: argparse.Namespace) -> int:
    from medvl.config import ConfigError
    from medvl.interrupts import INTERRUPTED_EXIT, sigterm_as_interrupt
    from pipelines import pretrain_evaluate_register as pipeline
    from pipelines.config import load_pipeline_config
    from pipelines.runner import INTERRUPTED_MESSAGE, StageError, failure_status
    from pipelines.state import StateError

    if args.pipeline not in PIPELINES:
        print(f"pipelines: unknown pipeline '{args.pipeline}'; known: {', '.join(PIPELINES)}", file=sys.stderr)
        return 2
    try:
        config = load_pipeline_config(args.config, args.overrides)
        work_dir = args.work_dir or Path("work") / config.name
        with sigterm_as_interrupt():
            ctx = pipeline.run(config, work_dir, from_stage=args.from_stage, until=args.until, progress=not args.quiet)
    except (ConfigError, StateError, StageError) as exc:
        return failure_status("pipelines", exc)
    except KeyboardInterrupt:
        print(f"pipelines: {INTERRUPTED_MESSAGE}", file=sys.stderr)
        return INTERRUPTED_EXIT
    if args.until is not None and args.until != pipeline.STAGES[-1].name:
        print(f"stopped after stage '{args.until}'; run again without --until to finish")
        return 0
    gate = ctx.state.outputs("gate")
    print(f"finished: {ctx.state.outputs('register')['model_uri']}"
          + (f" is @{gate['alias']}" if gate["passed"] else " (gate refused; no alias)"))
    return 0 if gate["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
