"""MLflow logging of an evaluation: a parent run (experiment ``benchx``) with one nested run per
dataset / task / fraction / seed, the headline metrics and the results files on the parent, and, when the model came
from the registry, the model-version tag ``benchx.run_id.<suite>`` for results that cover the suite's whole
protocol (``benchx.partial_run_id.<suite>`` for partial ones, which no gate accepts)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

from benchx.models.base import ModelInfo

EXPERIMENT = "benchx"


class EvaluationRun:
    """The MLflow parent run of one ``benchx evaluate``."""

    def __init__(self, tracking_uri: str, info: ModelInfo, suite: str, params: Mapping[str, object]) -> None:
        from mlflow import MlflowClient

        from medvl.tracking import get_or_create_experiment

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = get_or_create_experiment(self.client, EXPERIMENT, tracking_uri)
        self.info = info
        self.suite = suite
        tags = {
            "benchx.model_ref": info.ref,
            "benchx.model_fingerprint": info.fingerprint,
            "benchx.model_name": info.name,
            "benchx.model_version": info.version,
            "benchx.suite": suite,
        }
        run = self.client.create_run(self.experiment_id, run_name=f"{suite}:{info.name or info.ref}", tags=tags)
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_unit(self, dataset: str, task: str, fraction: float, seed: int, metrics: Mapping[str, float],
                 error: str = "", cached: bool = False) -> str:
        """A nested run holding one task run's test metrics (or its error); returns its id."""
        from mlflow.entities import Metric

        tags = {"mlflow.parentRunId": self.run_id, "benchx.dataset": dataset, "benchx.task": task,
                "benchx.fraction": f"{fraction:g}", "benchx.seed": str(seed), "benchx.cached": str(cached).lower()}
        if error:
            tags["benchx.error"] = error[:5000]
        run = self.client.create_run(self.experiment_id, run_name=f"{dataset}/{task}/f{fraction:g}/s{seed}", tags=tags)
        now = int(time.time() * 1000)
        values = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v == v]
        if values:
            self.client.log_batch(run.info.run_id, metrics=values)
        self.client.set_terminated(run.info.run_id, status="FAILED" if error else "FINISHED")
        return run.info.run_id

    def finish(self, files: list[Path], failed: bool, complete: bool, headline: Mapping[str, float]) -> None:
        """Log the headline metrics and the results files, tag the run and the registered model version as complete
        or partial, close the run."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_metric_name(k), float(v), now, 0) for k, v in headline.items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_tag(self.run_id, "benchx.complete", str(complete).lower())
        if self.info.name and self.info.version:
            tag = f"benchx.run_id.{self.suite}" if complete else f"benchx.partial_run_id.{self.suite}"
            self.client.set_model_version_tag(self.info.name, self.info.version, tag, self.run_id)
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


    def kill(self) -> None:
        """Close the run as KILLED (an interrupted evaluation: no results files, no model-version tag)."""
        self.client.set_tag(self.run_id, "benchx.complete", "false")
        self.client.set_terminated(self.run_id, status="KILLED")


def mlflow_metric_name(name: str) -> str:
    """``name`` with characters MLflow refuses in metric names replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)
