"""``medvl benchx`` (alias ``benchx``): list datasets and models, evaluate a model on a suite, report, compare.

Examples::

    medvl benchx list
    medvl benchx evaluate --model random:tiny-resnet18 --suite quick -o results/random
    medvl benchx evaluate --model models:/demo@candidate --suite phantom --tasks linear_probe zero_shot --seeds 0 1 2
    medvl benchx report results/random/results.json results/demo/results.json -o report/   # the first: baseline
    medvl benchx compare results/demo/results.json results/random/results.json

Bad input (unknown suite, dataset, task or model, missing data, label-space mismatch, changed split) exits
with status 2 and one line on stderr saying what exists.
"""

from __future__ import annotations

import argparse
import sys

from benchx.cards import TASKS

HELP = "the benchmark suite: evaluate a model on a suite, report, compare"
EXIT_BAD_INPUT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``list``, ``evaluate``, ``report`` and ``compare`` actions and their options."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    sub.add_parser("list", help="datasets (and whether their data is here), suites, tasks, model references")

    ev = sub.add_parser("evaluate", help="evaluate a model on a suite (MLflow parent run + results.json/csv)",
                        description="Evaluate a model on a suite: every dataset, task, fraction and seed, with an "
                        "MLflow parent run and nested runs, and results.json / results.csv / bootstrap.npz in -o.")
    ev.add_argument("--model", required=True, help="model folder, run folder, models:/NAME@ALIAS, models:/NAME/VERSION, "
                    "runs:/RUN_ID/model, random:ARCH (random-initialised baseline) or hf:PATH (local Hugging Face model)")
    ev.add_argument("--suite", required=True, help="suite name (see 'benchx list') or suite YAML path")
    ev.add_argument("--datasets", nargs="+", help="only these datasets of the suite")
    ev.add_argument("--tasks", nargs="+", metavar="TASK", help=f"only these tasks ({', '.join(TASKS)})")
    ev.add_argument("--fractions", nargs="+", type=float,
                    help="training fractions (default: the suite's, else each card's, e.g. 0.01 0.1 1.0)")
    ev.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the suite's, usually 0 1 2)")
    ev.add_argument("--bootstrap", type=int,
                    help="bootstrap resamples for the 95%% CIs (default: the suite's, usually 1000)")
    ev.add_argument("-o", "--out", default="benchx-results", help="output folder (default: benchx-results)")
    ev.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    ev.add_argument("--data-dir", help="benchx data dir: generated data, frozen splits, caches (default: $BENCHX_DATA, "
                    "else $MEDVL_CACHE/benchx, else ~/.cache/medvl/benchx)")

    rep = sub.add_parser("report", help="leaderboards and plots against a baseline: HTML, Markdown, LaTeX",
                         description="Write report.html (self-contained), report.md, report.tex (booktabs) and PNG "
                         "plots from one or more results.json files: per dataset and task every headline metric "
                         "with its 95%% CI, the difference against the baseline with its paired bootstrap 95%% CI "
                         "and p-value, significance marks and chance levels; bar charts for tasks at one fraction, "
                         "few-shot curves with CI bands for several.")
    rep.add_argument("results", nargs="+", help="results.json files (one per model)")
    rep.add_argument("-o", "--out", required=True, help="output folder")
    rep.add_argument("--baseline", help="the baseline's results.json (default: the first file; added when not listed)")

    cmp_ = sub.add_parser("compare", help="paired bootstrap comparison of two results files (A - B)",
                          description="Compare two evaluations on the same test sets: difference of means, its 95%% "
                          "CI and the two-sided paired bootstrap p-value for every shared result row.")
    cmp_.add_argument("a", help="results.json of model A")
    cmp_.add_argument("b", help="results.json of model B")
    cmp_.add_argument("--all-groups", action="store_true", help="include subgroup rows")


def run_list(args: argparse.Namespace) -> int:
    """Print datasets, suites, tasks and model references."""
    from benchx.cards import card_files, find_card
    from benchx.errors import BenchxError
    from benchx.models.medvl_models import MODEL_REFS_HELP
    from benchx.suites import data_present, load_suite, suite_names
    from medvl.models.registry import list_models

    print("datasets:")
    for name, path in card_files().items():
        try:
            card = find_card(name)
            status = "present" if data_present(name) else f"missing ({card.path})"
            tasks = ", ".join(card.tasks)
        except BenchxError as exc:
            status, tasks = f"invalid card ({exc})", ""
        print(f"  {name:18s} {status:12s} {tasks}  [{path}]")
    print("suites:")
    for name in suite_names():
        suite = load_suite(name)
        print(f"  {name:18s} {', '.join(suite.available_datasets())}  - {suite.description}")
    print(f"tasks: {', '.join(TASKS)}")
    print(f"models: {MODEL_REFS_HELP}")
    print(f"  random baselines: {', '.join(f'random:{m}' for m in list_models())}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Run an evaluation and print where the results went."""
    from benchx.api import evaluate

    results = evaluate(args.model, args.suite, tasks=args.tasks, fractions=args.fractions, seeds=args.seeds,
                       out_dir=args.out, tracking_uri=args.tracking_uri, datasets=args.datasets,
                       data_dir=args.data_dir, bootstrap=args.bootstrap)
    print(f"results: {results.path} (MLflow run {results.mlflow_run_id}); "
          f"{len(results.results)} rows, {len(results.failures)} failed task runs")
    if not results.complete:
        print(f"partial results (no promotion gate accepts them); missing: {'; '.join(results.completeness['missing'])}")
    for failure in results.failures:
        print(f"failed: {failure.dataset}/{failure.task} f={failure.fraction:g} seed={failure.seed}: {failure.error}",
              file=sys.stderr)
    return 1 if results.failures and not results.results else 0


def run_report(args: argparse.Namespace) -> int:
    """Write the report."""
    from benchx.report import write_report

    paths = write_report(args.results, args.out, baseline=args.baseline)
    print("\n".join(str(p) for p in paths))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """Print the paired comparison table."""
    from benchx.compare import compare, format_table
    from benchx.results import BenchResults

    a, b = BenchResults.from_json(args.a), BenchResults.from_json(args.b)
    rows = compare(a, b, all_groups=args.all_groups)
    print(f"A: {a.model.get('ref')} ({args.a})\nB: {b.model.get('ref')} ({args.b})")
    print(format_table(rows))
    return 0


ACTIONS = {"list": run_list, "evaluate": run_evaluate, "report": run_report, "compare": run_compare}


def run(args: argparse.Namespace) -> int:
    """Carry out ``args.action``: bad input is exit 2 with one line, an interrupt marks the MLflow run KILLED."""
    from benchx.errors import BenchxError
    from medvl.interrupts import INTERRUPTED_EXIT, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            return ACTIONS[args.action](args)
    except BenchxError as exc:
        print(f"benchx {args.action}: " + " ".join(str(exc).splitlines()), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"benchx {args.action}: interrupted; an open MLflow run is marked KILLED. Run the same command again: "
              "finished task runs are cached", file=sys.stderr)
        return INTERRUPTED_EXIT


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``benchx`` console script (the same as ``medvl benchx``)."""
    from medvl.cli import run_as_program

    return run_as_program(sys.modules[__name__], "benchx", argv)


if __name__ == "__main__":
    sys.exit(main())
