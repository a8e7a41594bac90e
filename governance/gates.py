"""Promotion gates: a YAML policy checked against benchx results before a version gets the ``champion`` alias.

Policy file (every section optional, at least one rule)::

    min_metrics:            # overall (not subgroup) results
      - {dataset: phantom-2d, task: linear_probe, metric: auroc_macro, min: 0.8, use: ci_low, fraction: 1.0}
    max_subgroup_gap:       # largest minus smallest subgroup mean
      - {dataset: phantom-2d, task: linear_probe, metric: auroc_macro, group: sex, max: 0.1}
    required_tasks:         # must have results and no failed runs
      - {dataset: phantom-2d, task: retrieval}
    beat_baseline:          # every min_metrics rule must also beat the baseline's value by margin
      results: models:/demo@champion    # or runs:/RUN_ID (a benchx parent run) or a results.json path
      margin: 0.0

Whatever the policy, results that do not cover their suite's whole protocol (``completeness.complete`` of
benchx ``results.json``: every dataset, task, fraction and seed, the full bootstrap, no failed run) are refused,
with what is missing named.

``use`` is ``mean`` (default) or ``ci_low``; ``fraction`` defaults to the largest fraction evaluated. A relative
``results`` path is relative to the policy file. A ``models:/`` baseline is the benchx run of the same suite
named by that version's ``benchx.run_id.<suite>`` tag; while no version holds the alias (the first promotion)
the baseline check is skipped and a note says so.

:func:`promote` records the decision as model-version tags (``gate.passed``, ``gate.reasons``,
``gate.policy_sha256``, ``gate.results_sha256``), gives the alias only when the gate passes (a refusal never
moves it) and appends a ``model.promote`` entry to the audit log.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from governance.audit import AuditLog
from governance.lineage import (
    LineageError,
    benchx_results,
    mlflow_client,
    registry_version,
)
from medvl.config import ConfigError, build, check_non_empty, field_error
from medvl.tracking import resolve_tracking_uri

Use = Literal["mean", "ci_low"]
AUDIT_ENV = "MEDVL_AUDIT_LOG"
DEFAULT_AUDIT_LOG = "medvl-audit.jsonl"
_TAG_LIMIT = 5000
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$")
_ROW_KEYS = ("dataset", "task", "fraction", "metric", "mean", "ci_low", "ci_high", "group", "group_value")


class GateInputError(ConfigError):
    """A policy, results document or model that a gate cannot judge; names the file or field and the reason.

    Attributes:
        path: the file, field or model URI concerned.
        reason: what is wrong and what to do.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}", reason=reason)


@dataclass(frozen=True)
class _Rule:
    """What every rule of a policy checks: its names are non-empty and its numbers finite."""

    config_noun: ClassVar[str] = "field"

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, str):
                check_non_empty(spec.name, value)
            if isinstance(value, float) and not math.isfinite(value):
                raise field_error(spec.name, f"expected a finite number, got {value!r}")


@dataclass(frozen=True)
class MetricRule(_Rule):
    """An overall metric that must reach ``min`` (its ``mean`` or ``ci_low``)."""

    dataset: str
    task: str
    metric: str
    min: float
    fraction: float | None = None
    use: Use = "mean"


@dataclass(frozen=True)
class GapRule(_Rule):
    """The spread of a metric's subgroup means over ``group`` must not exceed ``max``."""

    dataset: str
    task: str
    metric: str
    group: str
    max: float
    fraction: float | None = None


@dataclass(frozen=True)
class TaskRule(_Rule):
    """A task that must have been evaluated on a dataset, without failed runs."""

    dataset: str
    task: str


@dataclass(frozen=True)
class BaselineRule(_Rule):
    """Results to beat by ``margin`` on every :class:`MetricRule` (a path, ``runs:/ID`` or ``models:/...``)."""

    results: str
    margin: float = 0.0


@dataclass
class GatePolicy:
    """A parsed policy file; ``sha256`` is the hash of its bytes (recorded with every decision)."""

    config_noun: ClassVar[str] = "section"
    min_metrics: tuple[MetricRule, ...] = ()
    max_subgroup_gap: tuple[GapRule, ...] = ()
    required_tasks: tuple[TaskRule, ...] = ()
    beat_baseline: BaselineRule | None = None
    path: str = field(default="", init=False)
    sha256: str = field(default="", init=False)

    def __post_init__(self) -> None:
        if self.beat_baseline is not None and not self.min_metrics:
            raise ConfigError("beat_baseline compares the min_metrics rules: add at least one", "beat_baseline")
        if not (self.min_metrics or self.max_subgroup_gap or self.required_tasks):
            raise ConfigError("the policy has no rule: a gate that checks nothing would pass anything")


@dataclass
class GateDecision:
    """The outcome of a gate: ``reasons`` says why it refused (empty when it passed); ``notes`` are remarks
    that did not decide anything (a skipped baseline)."""

    passed: bool
    reasons: list[str]
    notes: list[str] = field(default_factory=list)


def load_policy(path: str | Path) -> GatePolicy:
    """Read and validate a gate policy YAML file (a relative baseline ``results`` path is made absolute).

    Raises:
        GateInputError: the file is missing, not YAML, or a rule lacks a field or holds a wrong value (the
            message names the section, the rule number and the field).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GateInputError(path, f"cannot read the policy file ({exc.strerror})") from exc
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise GateInputError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from exc
    policy = build(GatePolicy, doc, error=lambda exc: GateInputError(path, str(exc)))
    baseline = policy.beat_baseline
    if baseline is not None and not baseline.results.startswith(("runs:/", "models:/")):
        policy.beat_baseline = dataclasses.replace(baseline, results=str((path.parent / baseline.results).resolve()))
    policy.path, policy.sha256 = str(path.resolve()), hashlib.sha256(raw).hexdigest()
    return policy


def load_results(path: str | Path) -> dict:
    """Read a benchx ``results.json`` and check its shape.

    Raises:
        GateInputError: the file is missing, not JSON, or not a benchx results document.
    """
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except OSError as exc:
        raise GateInputError(path, f"cannot read the results file ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GateInputError(path, f"not valid JSON ({exc})") from exc
    check_results(results, str(path))
    return results


def check_results(results: Any, where: str = "results") -> None:
    """Raise :class:`GateInputError` naming the first field that does not follow the benchx results schema."""
    from benchx.results import SCHEMA as RESULTS_SCHEMA  # benchx's results module imports pandas: only here

    if not isinstance(results, dict) or results.get("schema") != RESULTS_SCHEMA:
        found = results.get("schema") if isinstance(results, dict) else type(results).__name__
        raise GateInputError(where, f"not a benchx results document (schema {found!r}, expected {RESULTS_SCHEMA!r})")
    if not isinstance(results.get("results"), list):
        raise GateInputError(where, "field 'results' must be a list of result rows")
    for number, row in enumerate(results["results"]):
        if not isinstance(row, dict):
            raise GateInputError(where, f"results[{number}] is not an object")
        lacking = [key for key in _ROW_KEYS if key not in row]
        if lacking:
            raise GateInputError(where, f"results[{number}] lacks field(s) {lacking}")
    if not isinstance(results.get("failures", []), list):
        raise GateInputError(where, "field 'failures' must be a list")


def check_gate(policy: GatePolicy, results: dict, tracking_uri: str | None = None) -> GateDecision:
    """Judge benchx ``results`` (a results.json dict) against ``policy``.

    Args:
        policy: from :func:`load_policy`.
        results: the benchx results document of the candidate.
        tracking_uri: where ``runs:/`` and ``models:/`` baselines are looked up.

    Raises:
        GateInputError: ``results`` or the baseline is not a benchx results document, or the baseline cannot
            be found.
    """
    check_results(results)
    reasons: list[str] = _check_complete(results)
    notes: list[str] = []
    for rule in policy.min_metrics:
        reasons.extend(_check_min(rule, results))
    for rule in policy.max_subgroup_gap:
        reasons.extend(_check_gap(rule, results))
    for rule in policy.required_tasks:
        reasons.extend(_check_task(rule, results))
    if policy.beat_baseline is not None:
        baseline = _baseline_results(policy.beat_baseline, results, tracking_uri)
        if baseline is None:
            notes.append(f"baseline {policy.beat_baseline.results} does not exist yet; baseline check skipped")
        else:
            for rule in policy.min_metrics:
                reasons.extend(_check_baseline(rule, results, baseline, policy.beat_baseline))
    return GateDecision(not reasons, reasons, notes)


def _check_complete(results: dict) -> list[str]:
    """A reason naming what is missing when the results are partial (or do not say they are complete)."""
    covered = results.get("completeness")
    if not isinstance(covered, dict) or "complete" not in covered:
        return [f"results do not say whether they cover the whole protocol of suite '{results.get('suite')}' "
                "(written by an older benchx); run benchx evaluate again"]  # fmt: skip
    if covered["complete"] is True:
        return []
    missing = "; ".join(str(m) for m in covered.get("missing") or ()) or "unknown"
    return [f"partial results: they do not cover the whole protocol of suite '{results.get('suite')}' (missing: "
            f"{missing})"]


def _label(dataset: str, task: str, metric: str, fraction: float | None) -> str:
    return f"{task} {metric} on {dataset}" + (f" (fraction {fraction:g})" if fraction is not None else "")


def _rows(results: dict, dataset: str, task: str, metric: str, fraction: float | None, group: str = "") -> list:
    """Matching rows at ``fraction`` (default: the largest fraction among the matches)."""
    rows = [r for r in results["results"] if r["dataset"] == dataset and r["task"] == task
            and r["metric"] == metric and (r["group"] or "") == group]
    if not rows:
        return []
    wanted = fraction if fraction is not None else max(float(r["fraction"]) for r in rows)
    return [r for r in rows if math.isclose(float(r["fraction"]), wanted)]


def _value(row: dict, use: str) -> float:
    value = row.get(use)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _overall(rule: MetricRule, results: dict) -> tuple[float | None, str]:
    """The rule's value in ``results`` (None when absent) and the label naming it."""
    rows = _rows(results, rule.dataset, rule.task, rule.metric, rule.fraction)
    fraction = float(rows[0]["fraction"]) if rows else rule.fraction
    label = _label(rule.dataset, rule.task, rule.metric, fraction)
    return (_value(rows[0], rule.use) if rows else None), label


def _check_min(rule: MetricRule, results: dict) -> list[str]:
    value, label = _overall(rule, results)
    if value is None:
        return [f"{label}: no result (required >= {rule.min:g})"]
    if math.isnan(value):
        return [f"{label}: {rule.use} is missing or NaN (required >= {rule.min:g})"]
    if value < rule.min:
        return [f"{label}: {rule.use} {value:.4f} < min {rule.min:g}"]
    return []


def _check_gap(rule: GapRule, results: dict) -> list[str]:
    rows = _rows(results, rule.dataset, rule.task, rule.metric, rule.fraction, rule.group)
    label = _label(rule.dataset, rule.task, rule.metric, float(rows[0]["fraction"]) if rows else rule.fraction)
    means = {str(r["group_value"]): _value(r, "mean") for r in rows}
    unknown = sorted(name for name, value in means.items() if math.isnan(value))
    if unknown:
        return [f"{label}: subgroup mean missing or NaN for {rule.group}={', '.join(unknown)}"]
    if len(means) < 2:
        return [f"{label}: {len(means)} {rule.group} subgroup(s) evaluated; need 2 or more to check the gap"]
    best, worst = max(means, key=means.get), min(means, key=means.get)
    gap = means[best] - means[worst]
    if gap > rule.max:
        return [f"{label}: {rule.group} gap {gap:.4f} ({best} {means[best]:.4f} vs {worst} {means[worst]:.4f}) "
                f"> max {rule.max:g}"]
    return []


def _check_task(rule: TaskRule, results: dict) -> list[str]:
    rows = [r for r in results["results"] if r["dataset"] == rule.dataset and r["task"] == rule.task]
    failures = [f for f in results.get("failures", [])
                if isinstance(f, dict) and f.get("dataset") == rule.dataset and f.get("task") == rule.task]
    reasons = []
    if not rows:
        reasons.append(f"required task {rule.task} on {rule.dataset}: no result")
    if failures:
        first = failures[0]
        reasons.append(f"required task {rule.task} on {rule.dataset}: {len(failures)} failed run(s), e.g. "
                       f"fraction {first.get('fraction')} seed {first.get('seed')}: {first.get('error')}")
    return reasons


def _check_baseline(rule: MetricRule, results: dict, baseline: dict, base: BaselineRule) -> list[str]:
    value, label = _overall(rule, results)
    reference, _ = _overall(rule, baseline)
    if value is None or math.isnan(value):
        return []  # already refused by the min_metrics rule itself
    if reference is None or math.isnan(reference):
        return [f"{label}: the baseline {base.results} has no {rule.use} for it"]
    if value < reference + base.margin:
        return [f"{label}: {rule.use} {value:.4f} does not beat the baseline {reference:.4f} "
                f"by {base.margin:g} ({base.results})"]
    return []


def _baseline_results(rule: BaselineRule, results: dict, tracking_uri: str | None) -> dict | None:
    """The baseline's results document; None for a ``models:/NAME@ALIAS`` whose alias is not set yet."""
    source = rule.results
    if source.startswith("runs:/"):
        return _run_results(source.removeprefix("runs:/").split("/")[0], source, tracking_uri)
    if source.startswith("models:/"):
        client = mlflow_client(tracking_uri)
        try:
            version = registry_version(client, source)
        except LineageError:
            if "@" in source:
                return None
            raise GateInputError(source, "baseline model version not found in the registry") from None
        tag = f"benchx.run_id.{results.get('suite', '')}"
        run_id = (version.tags or {}).get(tag)
        if not run_id:
            raise GateInputError(source, f"baseline version {version.version} has no tag {tag}: evaluate it with "
                                         f"benchx on suite {results.get('suite')!r} first")
        return _run_results(run_id, source, tracking_uri)
    return load_results(source)


def _run_results(run_id: str, source: str, tracking_uri: str | None) -> dict:
    try:
        baseline = benchx_results(run_id, tracking_uri)
    except LineageError as exc:
        raise GateInputError(source, f"baseline: {exc.reason}") from exc
    check_results(baseline, source)
    return baseline


def default_audit_log() -> Path:
    """``$MEDVL_AUDIT_LOG``, else ``medvl-audit.jsonl`` in the working directory."""
    return Path(os.environ.get(AUDIT_ENV) or DEFAULT_AUDIT_LOG)


def promote(
    model_uri: str,
    policy_path: str | Path,
    results_path: str | Path,
    tracking_uri: str | None = None,
    audit_log: Path | None = None,
    alias: str = "champion",
) -> GateDecision:
    """Gate a registered version on its benchx results; give it ``alias`` only when it passes.

    The decision is written as model-version tags (``gate.passed`` ``true``/``false``, ``gate.reasons`` a JSON
    list, ``gate.policy_sha256``, ``gate.results_sha256``, ``gate.alias``) and appended to the audit log as a
    ``model.promote`` entry. A refusal never moves the alias.

    Args:
        model_uri: ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``.
        policy_path: the gate policy YAML.
        results_path: the candidate's benchx ``results.json``; it must be about this version (its model name
            and version, or else its model fingerprint, must match).
        tracking_uri: MLflow tracking URI (else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).
        audit_log: the audit log (default :func:`default_audit_log`).
        alias: the alias given on a pass.

    Raises:
        GateInputError: bad policy or results, results of another model, unknown version, damaged audit log
            (nothing is recorded then).
    """
    from mlflow.exceptions import MlflowException

    if not _ALIAS.match(alias) or _RESERVED_ALIAS.match(alias):
        raise GateInputError(f"alias {alias!r}", "use letters, digits, '_' or '-', not 'latest' nor v<number>")
    policy = load_policy(policy_path)
    results = load_results(results_path)
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    try:
        version = registry_version(client, model_uri)
    except LineageError as exc:
        raise GateInputError(exc.subject, exc.reason) from exc
    _check_results_model(results, version, results_path, uri)
    log = AuditLog(audit_log or default_audit_log())
    log.head()  # refuses a damaged or tampered log before anything is recorded
    decision = check_gate(policy, results, uri)
    results_sha = hashlib.sha256(Path(results_path).read_bytes()).hexdigest()
    name, number = version.name, str(version.version)
    tags = {
        "gate.passed": "true" if decision.passed else "false",
        "gate.reasons": _fit(json.dumps(decision.reasons, ensure_ascii=False)),
        "gate.policy_sha256": policy.sha256,
        "gate.results_sha256": results_sha,
        "gate.alias": alias,
    }
    try:
        for key, value in tags.items():
            client.set_model_version_tag(name, number, key, value)
        if decision.passed:
            client.set_registered_model_alias(name, alias, number)
    except MlflowException as exc:
        raise GateInputError(f"models:/{name}/{number}", f"MLflow refused to record the decision "
                                                         f"({exc.message.splitlines()[0]})") from exc
    log.append(getpass.getuser(), "model.promote", f"models:/{name}/{number}", passed=decision.passed,
               alias=alias if decision.passed else None, reasons=decision.reasons, notes=decision.notes,
               policy=policy.path, policy_sha256=policy.sha256, results=str(Path(results_path).resolve()),
               results_sha256=results_sha, tracking_uri=uri)
    return decision


def _check_results_model(results: dict, version: Any, results_path: str | Path, tracking_uri: str) -> None:
    """Refuse results that are not about ``version`` (by registry name and version, else by fingerprint)."""
    model = results.get("model") or {}
    name, number = str(model.get("name") or ""), str(model.get("version") or "")
    if name or number:
        if (name, number) != (version.name, str(version.version)):
            raise GateInputError(results_path, f"results are for {name or '?'} version {number or '?'}, not for "
                                               f"{version.name} version {version.version}")
        return
    fingerprint = model.get("fingerprint")
    if not fingerprint:
        raise GateInputError(results_path, "results name no registered model nor fingerprint: cannot tell which "
                                           "model they are about; evaluate models:/NAME/VERSION with benchx")
    if _version_fingerprint(version, tracking_uri) != fingerprint:
        raise GateInputError(results_path, f"results fingerprint {fingerprint[:12]} is not that of {version.name} "
                                           f"version {version.version}")


def _version_fingerprint(version: Any, tracking_uri: str) -> str:
    """The content hash of the model folder registered as ``version`` (downloaded to a temporary folder)."""
    import tempfile

    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from medvl.infer.model_ref import MODEL_FILES, is_model_dir, model_fingerprint

    subject = f"models:/{version.name}/{version.version}"
    with tempfile.TemporaryDirectory(prefix="medvl-gate-") as tmp:
        try:
            source = mlflow_client(tracking_uri).get_model_version_download_uri(version.name, str(version.version))
            download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=tracking_uri)
        except (MlflowException, OSError) as exc:
            raise GateInputError(subject, f"cannot download the model to compare fingerprints ({exc})") from exc
        folders = [p.parent for p in sorted(Path(tmp).rglob(MODEL_FILES[0])) if is_model_dir(p.parent)]
        if not folders:
            raise GateInputError(subject, f"the registered files hold no model folder ({' + '.join(MODEL_FILES)})")
        return model_fingerprint(folders[0])


def _fit(text: str) -> str:
    """A tag value within MLflow's length limit (cut with a marker)."""
    return text if len(text) <= _TAG_LIMIT else text[: _TAG_LIMIT - 20] + "...(truncated)"
