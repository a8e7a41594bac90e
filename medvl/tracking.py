"""MLflow tracking that never stops a training run.

The tracking URI comes from the argument, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the
working directory. :class:`RunTracker` logs params, metrics, tags and artifacts through an explicit
``MlflowClient``. When the server cannot be reached (at start or mid-run) it says so once, keeps every later
event in a local journal (``mlflow-offline.jsonl`` in the run folder) and training goes on;
:func:`sync_offline` (``medvl sync-runs RUN_DIR``) replays the journal once the server is back.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medvl.interrupts import interrupts_deferred

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
JOURNAL_NAME = "mlflow-offline.jsonl"
_MAX_PARAM_CHARS = 6000


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``$MLFLOW_TRACKING_URI``, else a local sqlite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def artifact_root_for(uri: str) -> str | None:
    """Artifact folder beside a local sqlite store (``<db dir>/mlartifacts``); None for other stores."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :]).expanduser().resolve()
        return (db.parent / "mlartifacts").as_uri()
    return None


def server_reachable(uri: str, timeout: float = 3.0) -> bool:
    """Whether an HTTP tracking server answers its health check; local stores count as reachable."""
    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _limit_http_retries(uri: str) -> None:
    """Keep a dead server from stalling training in MLflow's retry loop (user settings win)."""
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def get_or_create_experiment(client: Any, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (with artifacts beside a sqlite store) when missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root_for(uri))


def _stringify_params(params: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v)[:_MAX_PARAM_CHARS] for k, v in params.items()}


class RunTracker:
    """One MLflow run, with a local journal as fallback when the tracking server is unreachable.

    Args:
        run_dir: folder of the training run (journal and local copies live here).
        experiment: MLflow experiment name.
        run_name: MLflow run name.
        tracking_uri: explicit URI (else ``$MLFLOW_TRACKING_URI``, else local sqlite).
        enabled: False on non-zero ranks: every call is a no-op.
        run_id: an existing run to continue (resume after a crash).
    """

    def __init__(
        self,
        run_dir: str | Path,
        experiment: str = "medvl",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        enabled: bool = True,
        run_id: str | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.experiment = experiment
        self.run_name = run_name
        self.uri = resolve_tracking_uri(tracking_uri)
        self.enabled = enabled
        self.run_id = run_id
        self.offline = False
        self._client: Any = None

    @property
    def journal(self) -> Path:
        """Path of the offline journal."""
        return self.run_dir / JOURNAL_NAME

    def start(self, tags: Mapping[str, str] | None = None) -> str | None:
        """Open (or reopen) the run; returns its id, or None when offline or disabled."""
        if not self.enabled:
            return None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        _limit_http_retries(self.uri)
        if not server_reachable(self.uri):
            self._go_offline(f"tracking server {self.uri} is unreachable")
            self._journal("start", {"tags": dict(tags or {}), "run_name": self.run_name})
            self._save_state()
            return None
        try:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
            if self.run_id is None:
                exp_id = get_or_create_experiment(self._client, self.experiment, self.uri)
                run = self._client.create_run(exp_id, run_name=self.run_name, tags=dict(tags or {}))
                self.run_id = run.info.run_id
            else:
                self._client.update_run(self.run_id, status="RUNNING")
                for key, value in (tags or {}).items():
                    self._client.set_tag(self.run_id, key, value)
        except Exception as exc:  # noqa: BLE001 - any tracking failure must not stop training
            self._go_offline(f"cannot open an MLflow run at {self.uri} ({exc})")
            self._journal("start", {"tags": dict(tags or {}), "run_name": self.run_name})
            self._save_state()
            return None
        self._save_state()
        return self.run_id

    def _save_state(self) -> None:
        state = {"run_id": self.run_id, "experiment": self.experiment, "tracking_uri": self.uri}
        (self.run_dir / "tracking.json").write_text(json.dumps(state, indent=2))

    def _go_offline(self, why: str) -> None:
        if not self.offline:
            self.offline = True
            log.warning(
                "%s; training goes on and logs locally to %s. Sync later with: medvl sync-runs %s",
                why,
                self.journal,
                self.run_dir,
            )

    def _journal(self, kind: str, data: Any, **extra: Any) -> None:
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        event = {"kind": kind, "data": data, "time": time.time(), **extra}
        with self.journal.open("a") as fh:
            fh.write(json.dumps(event, default=str) + "\n")

    def _call(self, kind: str, data: Any, fn: Any, **extra: Any) -> None:
        if not self.enabled:
            return
        if not self.offline and self._client is not None:
            try:
                with interrupts_deferred():
                    fn()
                return
            except Exception as exc:  # noqa: BLE001 - see start()
                if server_reachable(self.uri):  # the server is up but refused this call: do not retry it later
                    log.warning("MLflow refused '%s' (%s); not logged", kind, exc)
                    return
                self._go_offline(f"MLflow call '{kind}' failed ({exc})")
        self._journal(kind, data, **extra)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (values stringified, long values truncated)."""
        from mlflow.entities import Param

        flat = _stringify_params(params)
        self._call(
            "params", flat, lambda: self._client.log_batch(self.run_id, params=[Param(k, v) for k, v in flat.items()])
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log numeric metrics at ``step``."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = {k: float(v) for k, v in metrics.items()}
        batch = [Metric(k, v, now, step) for k, v in values.items()]
        self._call("metrics", values, lambda: self._client.log_batch(self.run_id, metrics=batch), step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags."""
        from mlflow.entities import RunTag

        values = {k: str(v) for k, v in tags.items()}
        self._call("tags", values, lambda: self._client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in values.items()]))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or folder (kept in the run folder's journal by path when offline)."""
        path = Path(path).resolve()
        fn = (
            (lambda: self._client.log_artifacts(self.run_id, str(path), artifact_path))
            if path.is_dir()
            else (lambda: self._client.log_artifact(self.run_id, str(path), artifact_path))
        )
        self._call("artifact", str(path), fn, artifact_path=artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        """Close the run with ``status`` (FINISHED, FAILED, KILLED)."""
        self._call("end", status, lambda: self._client.set_terminated(self.run_id, status=status))


def sync_offline(run_dir: str | Path, tracking_uri: str | None = None, experiment: str = "medvl") -> str:
    """Replay a run folder's offline journal into MLflow; returns the run id it went to.

    Events go to the run recorded in the journal (the run that was open when the server went away) or to a
    new run. The journal is renamed ``*.synced`` afterwards, so syncing twice logs nothing twice.
    """
    from mlflow import MlflowClient

    run_dir = Path(run_dir)
    journal = run_dir / JOURNAL_NAME
    if not journal.is_file():
        raise FileNotFoundError(f"{run_dir}: no offline journal ({JOURNAL_NAME}) to sync")
    uri = resolve_tracking_uri(tracking_uri)
    if not server_reachable(uri):
        raise ConnectionError(f"tracking server {uri} is still unreachable; try again when it is back")
    events = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    client = MlflowClient(tracking_uri=uri)
    state = json.loads((run_dir / "tracking.json").read_text()) if (run_dir / "tracking.json").is_file() else {}
    run_id = state.get("run_id")
    for event in events:
        kind, data = event["kind"], event["data"]
        if kind == "start" and run_id is None:
            exp_id = get_or_create_experiment(client, state.get("experiment", experiment), uri)
            tags = {**data.get("tags", {}), "medvl.synced_from": str(run_dir.resolve())}
            run_id = client.create_run(exp_id, run_name=data.get("run_name"), tags=tags).info.run_id
        elif run_id is None:
            exp_id = get_or_create_experiment(client, state.get("experiment", experiment), uri)
            run_id = client.create_run(exp_id, tags={"medvl.synced_from": str(run_dir.resolve())}).info.run_id
        if kind == "params":
            for key, value in data.items():
                client.log_param(run_id, key, value)
        elif kind == "metrics":
            for key, value in data.items():
                client.log_metric(run_id, key, value, timestamp=int(event["time"] * 1000), step=event.get("step", 0))
        elif kind == "tags":
            for key, value in data.items():
                client.set_tag(run_id, key, value)
        elif kind == "artifact":
            path = Path(data)
            if path.is_dir():
                client.log_artifacts(run_id, str(path), event.get("artifact_path"))
            elif path.is_file():
                client.log_artifact(run_id, str(path), event.get("artifact_path"))
        elif kind == "end":
            client.set_terminated(run_id, status=data)
    journal.rename(journal.with_suffix(".jsonl.synced"))
    return run_id
