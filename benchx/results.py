"""Results of an evaluation: the ``benchx.results/1`` document (see ``docs/architecture.md``).

:class:`BenchResults` reads and writes ``results.json``; :meth:`BenchResults.rows` gives the flat rows that
``results.csv`` holds. The seed-averaged bootstrap replicates of every row go to ``bootstrap.npz`` beside
``results.json`` (for paired comparisons, :mod:`benchx.compare`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchx.errors import ResultsError

SCHEMA = "benchx.results/1"
PROTOCOL_VERSION = "3"
"""Keys the outcome cache, so a change in what a task computes is not mixed with older cached outcomes.
2: segmentation decoders train at feature resolution, at most 300 steps; 3: classification outcomes carry
``ece_macro`` and ``brier_macro``."""
ROW_FIELDS = ("dataset", "task", "fraction", "metric", "mean", "std", "ci_low", "ci_high", "per_seed", "group",
              "group_value", "n_test")
REPLICATES_FILE = "bootstrap.npz"


@dataclass
class ResultRow:
    """One metric of one task on one dataset at one fraction (``group`` set for subgroup rows)."""

    dataset: str
    task: str
    fraction: float
    metric: str
    mean: float
    std: float
    ci_low: float
    ci_high: float
    per_seed: list[float]
    group: str = ""
    group_value: str = ""
    n_test: int = 0

    @property
    def key(self) -> str:
        """A unique key of the row within one results document."""
        return "|".join([self.dataset, self.task, f"{self.fraction:g}", self.metric, self.group, self.group_value])


@dataclass
class Failure:
    """A task run that raised; the others went on."""

    dataset: str
    task: str
    fraction: float
    seed: int
    error: str


@dataclass
class BenchResults:
    """An evaluation's results (the ``results.json`` document)."""

    model: dict[str, str]
    suite: str
    protocol: dict[str, Any]
    datasets: dict[str, dict[str, str]]
    mlflow_run_id: str = ""
    results: list[ResultRow] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    completeness: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA
    path: Path | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document as a dict (NaN written as null)."""
        return {
            "schema": self.schema,
            "model": dict(self.model),
            "suite": self.suite,
            "protocol": dict(self.protocol),
            "datasets": {k: dict(v) for k, v in self.datasets.items()},
            "mlflow_run_id": self.mlflow_run_id,
            "results": [_finite(asdict(r)) for r in self.results],
            "failures": [asdict(f) for f in self.failures],
            "completeness": dict(self.completeness),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The JSON text; written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> BenchResults:
        """Read a results file (or JSON text).

        Raises:
            ResultsError: unreadable, not JSON, or not ``benchx.results/1``.
        """
        path = None
        text = str(source)
        if not text.lstrip().startswith("{"):
            path = Path(source)
            try:
                text = path.read_text()
            except OSError as exc:
                raise ResultsError(f"{path}: cannot read results ({exc.strerror})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{path or '<text>'}: not JSON ({exc})") from exc
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ResultsError(f"{path or '<text>'}: field 'schema' is {data.get('schema') if isinstance(data, dict) else None!r}, "
                               f"expected {SCHEMA!r}")
        try:
            return cls(
                model=data["model"], suite=data["suite"], protocol=data["protocol"], datasets=data["datasets"],
                mlflow_run_id=data.get("mlflow_run_id", ""),
                results=[ResultRow(**{k: _nan(v) for k, v in r.items()}) for r in data["results"]],
                failures=[Failure(**f) for f in data.get("failures", [])],
                completeness=data.get("completeness") or {}, path=path,
            )
        except (KeyError, TypeError) as exc:
            raise ResultsError(f"{path or '<text>'}: does not follow {SCHEMA} ({exc})") from exc

    @property
    def complete(self) -> bool:
        """True when the results cover the suite's whole protocol (:mod:`benchx.plan`); older documents without
        the ``completeness`` field count as partial."""
        return self.completeness.get("complete") is True

    def rows(self) -> list[dict[str, Any]]:
        """Flat result rows with the model's ref, name and version (what ``results.csv`` holds)."""
        info = {"model_ref": self.model.get("ref", ""), "model_name": self.model.get("name", ""),
                "model_version": self.model.get("version", "")}
        return [{**info, **asdict(r)} for r in self.results]

    def to_csv(self, path: str | Path) -> None:
        """Write :meth:`rows` as CSV (``per_seed`` as JSON)."""
        frame = pd.DataFrame(self.rows(), columns=["model_ref", "model_name", "model_version", *ROW_FIELDS])
        frame["per_seed"] = frame["per_seed"].map(json.dumps)
        frame.to_csv(path, index=False)

    def replicates(self) -> dict[str, np.ndarray]:
        """The bootstrap replicates of each row (by :attr:`ResultRow.key`) from ``bootstrap.npz`` beside the file."""
        if self.path is None or not (self.path.parent / REPLICATES_FILE).is_file():
            raise ResultsError(f"{self.path}: no {REPLICATES_FILE} beside it; paired comparison needs the replicates "
                               f"that benchx evaluate writes")
        with np.load(self.path.parent / REPLICATES_FILE) as data:
            return {key: data[key] for key in data.files}


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else
                [None if not np.isfinite(x) else x for x in v] if k == "per_seed" else v) for k, v in row.items()}


def _nan(value: Any) -> Any:
    if value is None:
        return float("nan")
    if isinstance(value, list):
        return [float("nan") if x is None else x for x in value]
    return value
