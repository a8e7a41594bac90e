"""``benchx.api.evaluate``: run a suite on a model and return :class:`~benchx.results.BenchResults`.

The plan is every (dataset, task, fraction, seed) of the suite's protocol, or of a restriction of it (training-free
tasks once, at fraction 1.0 and the first seed); the results say whether they cover the whole protocol
(``completeness``, :mod:`benchx.plan`). Each task run's outcome is cached under the benchx data dir, keyed by the model fingerprint,
the image cache key, the split hash, the task, fraction, seed and the protocol version, so a re-run reuses
both features and outcomes and gives identical numbers. A task run that raises is recorded in ``failures``;
the others go on.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchx.cards import TASKS, DatasetCard, find_card
from benchx.data import GROUPS, PreparedDataset, prepare_dataset
from benchx.errors import BenchxError, UnknownNameError
from benchx.features import FeatureStore
from benchx.headline import HEADLINE
from benchx.models import load_adapter
from benchx.paths import default_data_dir, digest
from benchx.plan import Unit, completeness, plan_units
from benchx.results import PROTOCOL_VERSION, REPLICATES_FILE, BenchResults, Failure, ResultRow
from benchx.stats import Metric, bootstrap_weights, metric_from_dict, summarise
from benchx.suites import Suite, load_suite
from benchx.tasks import TASK_FUNCTIONS
from benchx.tasks.base import TaskContext, TaskOutcome
from benchx.timing import TimingLog, plan_text
from benchx.tracking import EvaluationRun

SUBGROUP_TASKS = ("linear_probe", "finetune_frozen", "finetune_full", "zero_shot")
MIN_GROUP_CASES = 5


def resolve_cards(suite_name: str, datasets: list[str] | None, tasks: list[str] | None) -> tuple[Suite, list[DatasetCard], list[str] | None]:
    """The suite, the cards to evaluate and the task restriction (checked; errors list what exists)."""
    suite = load_suite(suite_name)
    names = suite.available_datasets()
    if datasets:
        unknown = [d for d in datasets if d not in names]
        if unknown:
            raise UnknownNameError(f"dataset in suite '{suite.name}'", unknown[0], names)
        names = list(datasets)
    for task in tasks or ():
        if task not in TASKS:
            raise UnknownNameError("task", task, TASKS)
    restriction = [t for t in (tasks or suite.tasks or TASKS) if suite.tasks is None or t in suite.tasks]
    cards = [find_card(name) for name in names]
    if not any(t in card.tasks for card in cards for t in restriction):
        raise BenchxError(f"no dataset of suite '{suite.name}' has task(s) {restriction}; "
                          f"they have: {sorted({t for c in cards for t in c.tasks})}")
    return suite, cards, restriction


def evaluate(
    model: str,
    suite: str,
    tasks: list[str] | None = None,
    fractions: list[float] | None = None,
    seeds: list[int] | None = None,
    out_dir: str | Path = "benchx-results",
    tracking_uri: str | None = None,
    *,
    datasets: list[str] | None = None,
    data_dir: str | Path | None = None,
    bootstrap: int | None = None,
    progress: bool = True,
) -> BenchResults:
    """Evaluate ``model`` on ``suite``; writes ``results.json``, ``results.csv`` and ``bootstrap.npz`` to ``out_dir``.

    Args:
        model: a model reference (folder, run folder, ``models:/NAME@ALIAS``, ``runs:/ID/model``,
            ``random:ARCH``, ``hf:PATH``).
        suite: a suite name or suite YAML path.
        tasks, fractions, seeds: restrictions (default: the suite's protocol; its fractions default to the cards').
        out_dir: where the results files go.
        tracking_uri: MLflow store (else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).
        datasets: evaluate only these datasets of the suite.
        data_dir: benchx data dir (generated data, splits, caches); default :func:`default_data_dir`.
        bootstrap: bootstrap resamples for the confidence intervals (default: the suite's).
        progress: show progress bars.

    Raises:
        BenchxError: unknown suite, dataset, task or model; missing data; label-space mismatch; changed split.
    """
    from medvl.tracking import resolve_tracking_uri

    if fractions is not None and any(not 0 < f <= 1 for f in fractions):
        raise BenchxError(f"fractions {fractions}: each must be in (0, 1]")
    protocol_suite, cards, task_list = resolve_cards(suite, datasets, tasks)
    suite_name = protocol_suite.name
    seeds = list(seeds) if seeds is not None else list(protocol_suite.seeds)
    if not seeds:
        raise BenchxError("give at least one seed")
    fractions = fractions if fractions is not None else list(protocol_suite.fractions or []) or None
    bootstrap = bootstrap if bootstrap is not None else protocol_suite.bootstrap
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    adapter = load_adapter(model, tracking_uri)
    prepared = {card.name: prepare_dataset(card, data_dir, progress, adapter.crop_body) for card in cards}
    units = plan_units(cards, task_list, fractions, seeds)
    protocol = {"seeds": seeds, "fractions": sorted({u.fraction for u in units}), "bootstrap": bootstrap,
                "version": PROTOCOL_VERSION}
    run = EvaluationRun(resolve_tracking_uri(tracking_uri), adapter.info, suite_name,
                        {"protocol": json.dumps(protocol), "datasets": ",".join(prepared), "units": len(units)})
    store = FeatureStore(data_dir / "features")
    contexts = {name: TaskContext(ds, adapter, store) for name, ds in prepared.items()}
    timings = TimingLog(data_dir)
    if progress:
        cached = {u for u in units if outcome_path(contexts[u.dataset], u, data_dir).is_file()}
        print(plan_text(suite_name, units, cached, timings), file=sys.stderr, flush=True)
    try:
        outcomes, failures = run_units(units, contexts, data_dir, run, timings, progress)
    except KeyboardInterrupt:
        run.kill()
        raise
    rows, replicates = summarise_outcomes(outcomes, prepared, bootstrap)
    covered = completeness(protocol_units(protocol_suite), outcomes, bootstrap, protocol_suite.bootstrap)
    results = BenchResults(
        model={"ref": adapter.info.ref, "name": adapter.info.name, "version": adapter.info.version,
               "fingerprint": adapter.info.fingerprint},
        suite=suite_name, protocol=protocol,
        datasets={n: {"manifest_hash": d.manifest_hash, "split_hash": d.split_hash, "preprocessing": d.preprocessing}
                  for n, d in prepared.items()},
        mlflow_run_id=run.run_id, results=rows, failures=failures, completeness=covered.to_dict(),
    )
    files = write_results(results, replicates, Path(out_dir))
    run.finish(files, failed=bool(failures) and not outcomes, complete=covered.complete,
               headline=headline_metrics(rows))
    results.path = files[0]
    return results


def protocol_units(suite: Suite) -> list[Unit]:
    """Every task run of the suite's whole protocol (its available datasets, tasks, fractions and seeds)."""
    cards = [find_card(name) for name in suite.available_datasets()]
    return plan_units(cards, list(suite.tasks) if suite.tasks else None, list(suite.fractions or []) or None,
                      list(suite.seeds))


def headline_metrics(rows: list[ResultRow]) -> dict[str, float]:
    """The overall (not subgroup) means of each task's headline metrics (:data:`benchx.headline.HEADLINE`) at its
    largest fraction, named ``DATASET/TASK/METRIC``, so runs of different models can be compared in MLflow's run
    table."""
    largest: dict[tuple[str, str], float] = {}
    for row in rows:
        largest[(row.dataset, row.task)] = max(row.fraction, largest.get((row.dataset, row.task), 0.0))
    return {f"{r.dataset}/{r.task}/{r.metric}": r.mean for r in rows
            if not r.group and r.metric in HEADLINE.get(r.task, ()) and r.fraction == largest[(r.dataset, r.task)]
            and np.isfinite(r.mean)}


def run_units(units: list[Unit], contexts: dict[str, TaskContext], data_dir: Path, run: EvaluationRun,
              timings: TimingLog, progress: bool) -> tuple[dict[Unit, TaskOutcome], list[Failure]]:
    """Every unit's outcome (cached or computed, each logged as a nested run and timed); a unit that raises is a
    failure and the others go on. A ``KeyboardInterrupt`` stops the loop; finished units stay cached for the next
    run."""
    outcomes: dict[Unit, TaskOutcome] = {}
    failures: list[Failure] = []
    for unit in tqdm(units, desc="benchx", unit="run", disable=not progress):
        started = time.perf_counter()
        try:
            outcome, cached = run_unit(contexts[unit.dataset], unit, data_dir)
        except Exception as exc:  # noqa: BLE001 - a failing task must not lose the others
            message = f"{type(exc).__name__}: {exc}"
            failures.append(Failure(unit.dataset, unit.task, unit.fraction, unit.seed, message))
            run.log_unit(unit.dataset, unit.task, unit.fraction, unit.seed, {}, traceback.format_exc(), False)
            continue
        outcomes[unit] = outcome
        if not cached:
            timings.record(unit, time.perf_counter() - started)
        run.log_unit(unit.dataset, unit.task, unit.fraction, unit.seed,
                     {name: m.point() for name, m in outcome.metrics.items()}, cached=cached)
    return outcomes, failures


def outcome_key(ctx: TaskContext, unit: Unit) -> str:
    """The cache key of one task run's outcome."""
    return digest("outcome", PROTOCOL_VERSION, ctx.adapter.info.fingerprint, ctx.dataset.cache_key,
                  ctx.dataset.split_hash, unit.task, unit.fraction, unit.seed)


def outcome_path(ctx: TaskContext, unit: Unit, data_dir: Path) -> Path:
    """Where one task run's outcome is cached."""
    return data_dir / "outcomes" / f"{outcome_key(ctx, unit)}.json"


def run_unit(ctx: TaskContext, unit: Unit, data_dir: Path) -> tuple[TaskOutcome, bool]:
    """One task run's outcome, from the outcome cache when present; returns it and whether it was cached."""
    path = outcome_path(ctx, unit, data_dir)
    if path.is_file():
        data = json.loads(path.read_text())
        metrics = {name: metric_from_dict(m) for name, m in data["metrics"].items()}
        return TaskOutcome(metrics, data["case_ids"], data["details"]), True
    outcome = TASK_FUNCTIONS[unit.task](ctx, unit.fraction, unit.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"metrics": {n: m.to_dict() for n, m in outcome.metrics.items()}, "case_ids": outcome.case_ids,
               "details": outcome.details}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)
    return outcome, False


def summarise_outcomes(outcomes: dict[Unit, TaskOutcome], prepared: dict[str, PreparedDataset],
                       n_resamples: int) -> tuple[list[ResultRow], dict[str, np.ndarray]]:
    """Result rows (overall and per subgroup) and their bootstrap replicates."""
    groups: dict[tuple[str, str, float], list[TaskOutcome]] = {}
    for unit, outcome in outcomes.items():
        groups.setdefault((unit.dataset, unit.task, unit.fraction), []).append(outcome)
    rows: list[ResultRow] = []
    replicates: dict[str, np.ndarray] = {}
    for (dataset, task, fraction), seeds in sorted(groups.items()):
        ds = prepared[dataset]
        weights = bootstrap_weights(seeds[0].n_test, n_resamples, (ds.split_hash, task, seeds[0].case_ids))
        masks = {("", ""): None}
        if task in SUBGROUP_TASKS:
            masks.update(subgroup_masks(ds, seeds[0].case_ids))
        for name in sorted(seeds[0].metrics):
            per_seed: list[Metric] = [o.metrics[name] for o in seeds if name in o.metrics]
            for (group, value), mask in masks.items():
                s = summarise(per_seed, weights, mask)
                row = ResultRow(dataset, task, fraction, name, s.mean, s.std, s.ci_low, s.ci_high, s.per_seed,
                                group, value, int(seeds[0].n_test if mask is None else mask.sum()))
                rows.append(row)
                replicates[row.key] = s.replicates
    return rows, replicates


def subgroup_masks(ds: PreparedDataset, case_ids: list[str]) -> dict[tuple[str, str], np.ndarray]:
    """Case masks of every subgroup value with at least :data:`MIN_GROUP_CASES` cases (when a group varies)."""
    values = ds.groups(case_ids)
    masks = {}
    for group in GROUPS:
        present = sorted(v for v in set(values[group].tolist()) if v)
        if len(present) < 2:
            continue
        for value in present:
            mask = values[group] == value
            if mask.sum() >= MIN_GROUP_CASES:
                masks[(group, value)] = mask
    return masks


def write_results(results: BenchResults, replicates: dict[str, np.ndarray], out_dir: Path) -> list[Path]:
    """Write ``results.json``, ``results.csv`` and ``bootstrap.npz``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "results.json", out_dir / "results.csv", out_dir / REPLICATES_FILE]
    results.to_json(paths[0])
    results.to_csv(paths[1])
    np.savez_compressed(paths[2], **replicates)
    return paths


__all__ = ["evaluate"]
