"""The lineage of a registered model version: data -> pretraining run -> model -> benchx results.

Everything is read from MLflow: the model version (aliases, tags), its source run (params = the resolved config;
tags ``medvl.manifest_hash``, ``medvl.split_hashes``, ``medvl.code_version``, ``medvl.environment``; metrics),
the model folder's ``lineage.json`` (logged by ``medvl pretrain`` under ``model_files/``) and the benchx parent
runs of that version (tags ``benchx.model_name`` / ``benchx.model_version``, artifact ``results.json``).
Whatever is absent is listed under ``missing`` rather than guessed; facts that contradict each other are listed
under ``conflicts``.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from medvl.infer.model_ref import REGISTRY_URI
from medvl.tracking import resolve_tracking_uri

RUN_TAGS = ("medvl.manifest_hash", "medvl.split_hashes", "medvl.code_version", "medvl.environment")
JSON_TAGS = frozenset({"medvl.split_hashes", "medvl.environment"})
LINEAGE_ARTIFACT = "model_files/lineage.json"
RESULTS_ARTIFACT = "results.json"
UNFINISHED = ("KILLED", "RUNNING", "SCHEDULED")  # statuses of runs that wrote no results


class LineageError(ValueError):
    """A model URI that does not name a registered version, or a registry that cannot be read.

    Attributes:
        subject: the model URI (or run) concerned.
        reason: what is wrong and what to do.
    """

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"{subject}: {reason}")


def mlflow_client(tracking_uri: str | None = None) -> Any:
    """An ``MlflowClient`` on ``tracking_uri`` (else ``$MLFLOW_TRACKING_URI``, else the local sqlite store)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))


def registry_version(client: Any, model_uri: str) -> Any:
    """The ``ModelVersion`` named by ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``.

    Raises:
        LineageError: the URI has another form, or the registry has no such model, version or alias.
    """
    from mlflow.exceptions import MlflowException

    match = REGISTRY_URI.match(model_uri)
    if match is None:
        raise LineageError(model_uri, "not a registered model URI; use models:/NAME/VERSION or models:/NAME@ALIAS")
    try:
        if match["alias"]:
            return client.get_model_version_by_alias(match["name"], match["alias"])
        return client.get_model_version(match["name"], match["version"])
    except MlflowException as exc:
        raise LineageError(model_uri, f"not in the registry at {client.tracking_uri} "
                                      f"({exc.message.splitlines()[0]})") from exc


def download_json(run_id: str, artifact_path: str, tracking_uri: str) -> dict | None:
    """The JSON object stored as artifact ``artifact_path`` of run ``run_id``; None when the run has no such file.

    Raises:
        LineageError: the artifact exists but is not a JSON object.
    """
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="medvl-lineage-") as tmp:
        try:
            local = download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=tmp,
                                       tracking_uri=tracking_uri)
        except (MlflowException, OSError):
            return None
        try:
            value = json.loads(Path(local).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LineageError(f"runs:/{run_id}/{artifact_path}", f"not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise LineageError(f"runs:/{run_id}/{artifact_path}", "not a JSON object")
    return value


def benchx_results(run_id: str, tracking_uri: str | None = None) -> dict:
    """The ``results.json`` of a benchx parent run.

    Raises:
        LineageError: the run has no ``results.json`` or it is not a benchx results document.
    """
    from benchx.results import SCHEMA as RESULTS_SCHEMA  # benchx's results module imports pandas: only here

    results = download_json(run_id, RESULTS_ARTIFACT, resolve_tracking_uri(tracking_uri))
    if results is None:
        raise LineageError(f"runs:/{run_id}", f"has no {RESULTS_ARTIFACT} artifact (is it a benchx parent run?)")
    if results.get("schema") != RESULTS_SCHEMA or not isinstance(results.get("results"), list):
        raise LineageError(f"runs:/{run_id}/{RESULTS_ARTIFACT}",
                           f"not a benchx results document (schema {results.get('schema')!r}, "
                           f"expected {RESULTS_SCHEMA!r} with a 'results' list)")
    return results


def headline_rows(results: dict) -> list[dict]:
    """The overall (not subgroup) result rows at the largest fraction evaluated of each dataset/task/metric."""
    overall = [row for row in results.get("results", []) if not row.get("group")]
    largest: dict[tuple, float] = {}
    for row in overall:
        key = (row.get("dataset"), row.get("task"), row.get("metric"))
        largest[key] = max(largest.get(key, -math.inf), float(row.get("fraction", 1.0)))
    return [row for row in overall
            if float(row.get("fraction", 1.0)) == largest[(row.get("dataset"), row.get("task"), row.get("metric"))]]


def results_summary(results: dict) -> dict:
    """A short summary of a benchx results document: suite, protocol, counts and the headline rows."""
    keys = ("dataset", "task", "fraction", "metric", "mean", "ci_low", "ci_high", "n_test")
    return {
        "suite": results.get("suite", ""),
        "protocol": results.get("protocol", {}),
        "datasets": results.get("datasets", {}),
        "rows": len(results.get("results", [])),
        "failures": len(results.get("failures", [])),
        "headline": [{k: row.get(k) for k in keys} for row in headline_rows(results)],
    }


def model_lineage(model_uri: str, tracking_uri: str | None = None) -> dict:
    """The lineage of a registered model version, as a JSON-serialisable dict.

    Args:
        model_uri: ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``.
        tracking_uri: MLflow tracking URI (else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).

    Returns:
        ``{"model_uri", "tracking_uri", "model", "run", "data", "benchx", "missing", "conflicts"}``: ``model`` the
        registered version (name, version, aliases, tags, source, run_id, status, created); ``run`` the source
        run (run_id, experiment, name, status, start_time, params, metrics, tags, code_version, manifest_hash,
        split_hashes, environment) or None; ``data`` (manifest_hash, cache_key, split_hashes, steps); ``benchx``
        one entry per benchx parent run of the version (run_id, suite, status, start_time, model_ref,
        model_fingerprint, summary); ``missing`` and ``conflicts`` lists of sentences.

    Raises:
        LineageError: ``model_uri`` does not name a registered version.
    """
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow_client(uri)
    version = registry_version(client, model_uri)
    missing: list[str] = []
    conflicts: list[str] = []
    run = _source_run(client, version.run_id, missing)
    files = download_json(version.run_id, LINEAGE_ARTIFACT, uri) if version.run_id else None
    if files is None:
        missing.append(f"the model folder's lineage.json ({LINEAGE_ARTIFACT} of the source run)")
    data = _data(run, files or {}, conflicts)
    return {
        "model_uri": model_uri,
        "tracking_uri": uri,
        "model": _model(client, version),
        "run": run,
        "data": data,
        "benchx": _benchx_runs(client, version, uri, missing),
        "missing": missing,
        "conflicts": conflicts,
    }


def _model(client: Any, version: Any) -> dict:
    return {
        "name": version.name,
        "version": str(version.version),
        "aliases": sorted(version.aliases or []),
        "tags": dict(version.tags or {}),
        "description": version.description or "",
        "source": version.source,
        "run_id": version.run_id or "",
        "status": version.status,
        "created": version.creation_timestamp,
    }


def _source_run(client: Any, run_id: str | None, missing: list[str]) -> dict | None:
    from mlflow.exceptions import MlflowException

    if not run_id:
        missing.append("the source run (the model version names no run)")
        return None
    try:
        run = client.get_run(run_id)
    except MlflowException:
        missing.append(f"the source run {run_id} (deleted, or in another tracking store)")
        return None
    tags = dict(run.data.tags)
    try:
        experiment = client.get_experiment(run.info.experiment_id).name
    except MlflowException:
        experiment = run.info.experiment_id
    out: dict[str, Any] = {
        "run_id": run_id,
        "experiment": experiment,
        "name": run.info.run_name or "",
        "status": run.info.status,
        "start_time": run.info.start_time,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": {k: v for k, v in tags.items() if not k.startswith("mlflow.")},
    }
    for tag in RUN_TAGS:
        field = tag.removeprefix("medvl.")
        out[field] = _tag_value(tags, tag, missing)
    return out


def _tag_value(tags: dict[str, str], tag: str, missing: list[str]) -> Any:
    """A run tag's value (parsed for JSON tags); None, and a note in ``missing``, when absent or unreadable."""
    raw = tags.get(tag)
    if not raw:
        missing.append(f"run tag {tag}")
        return None
    if tag not in JSON_TAGS:
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        missing.append(f"run tag {tag} (present but not JSON: {raw[:60]!r})")
        return None


def _data(run: dict | None, files: dict, conflicts: list[str]) -> dict:
    run = run or {}
    tagged, recorded = run.get("manifest_hash"), files.get("manifest_hash")
    if tagged and recorded and tagged != recorded:
        conflicts.append(f"manifest hash: run tag {tagged} but the model folder's lineage.json says {recorded}")
    return {
        "manifest_hash": recorded or tagged,
        "cache_key": files.get("cache_key") or run.get("tags", {}).get("medvl.cache_key"),
        "split_hashes": run.get("split_hashes"),
        "steps": files.get("steps"),
        "manifest": run.get("params", {}).get("data.manifest") or _cache_manifest(run.get("params", {}).get("data.cache")),
    }


def _cache_manifest(cache_dir: str | None) -> str | None:
    """The manifest a training cache was built from (its cache.json), when the cache is on this machine."""
    if not cache_dir:
        return None
    try:
        return json.loads((Path(cache_dir) / "cache.json").read_text()).get("manifest") or None
    except (OSError, ValueError, AttributeError):
        return None


def _benchx_runs(client: Any, version: Any, tracking_uri: str, missing: list[str]) -> list[dict]:
    """The benchx parent runs of the version: found by their tags, plus any named by ``benchx.run_id.*``."""
    from mlflow.exceptions import MlflowException

    experiments = [e.experiment_id for e in client.search_experiments()]
    query = (f"tags.`benchx.model_name` = '{_quote(version.name)}' "
             f"and tags.`benchx.model_version` = '{version.version}'")
    found = {run.info.run_id: run for run in client.search_runs(experiments, query)} if experiments else {}
    for tag, run_id in (version.tags or {}).items():
        if tag.startswith("benchx.run_id.") and run_id not in found:
            try:
                found[run_id] = client.get_run(run_id)
            except MlflowException:
                missing.append(f"benchx run {run_id} named by model-version tag {tag}")
    entries = []
    for run in sorted(found.values(), key=lambda r: r.info.start_time or 0):
        tags = run.data.tags
        if "mlflow.parentRunId" in tags:
            continue
        summary = None
        if run.info.status not in UNFINISHED:
            try:
                summary = results_summary(benchx_results(run.info.run_id, tracking_uri))
            except LineageError as exc:
                missing.append(f"results of benchx run {run.info.run_id} ({exc.reason})")
        entries.append({
            "run_id": run.info.run_id,
            "suite": tags.get("benchx.suite", ""),
            "status": run.info.status,
            "start_time": run.info.start_time,
            "model_ref": tags.get("benchx.model_ref", ""),
            "model_fingerprint": tags.get("benchx.model_fingerprint", ""),
            "summary": summary,
        })
    if not entries:
        missing.append(f"benchx runs of {version.name} version {version.version} (none evaluated it yet)")
    return entries


def _quote(text: str) -> str:
    return text.replace("'", "\\'")
