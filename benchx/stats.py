"""Case-level metrics that can be re-evaluated under bootstrap resampling, and the protocol's statistics.

A metric keeps what it needs per test case (scores and labels, per-case values...) and evaluates under a
matrix of resampling weights ``W`` ``(B, N)`` (``W[b, i]`` = how often case ``i`` is drawn in resample ``b``)
in one vectorised pass. The point value is the evaluation under all-ones weights. Paired comparisons use the
same weight matrix for both models: it depends only on the test set (:func:`bootstrap_weights`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchx.paths import digest

CI_LEVEL = 0.95


class Metric:
    """A metric over ``n_cases`` test cases."""

    kind: str = ""

    @property
    def n_cases(self) -> int:
        """Number of test cases."""
        raise NotImplementedError

    def values(self, weights: np.ndarray) -> np.ndarray:
        """``(B,)`` values under resampling weights ``(B, N)`` (NaN where undefined)."""
        raise NotImplementedError

    def point(self) -> float:
        """The value on the test set as it is."""
        return float(self.values(np.ones((1, self.n_cases)))[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (see :func:`metric_from_dict`)."""
        raise NotImplementedError


@dataclass
class MeanOf(Metric):
    """The (weighted) mean of per-case values; NaN cases are left out (recall hits, Dice per case...)."""

    per_case: np.ndarray
    kind = "mean"

    @property
    def n_cases(self) -> int:
        return len(self.per_case)

    def values(self, weights: np.ndarray) -> np.ndarray:
        known = np.isfinite(self.per_case)
        w = weights * known
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, (w * np.nan_to_num(self.per_case)).sum(axis=1) / total, np.nan)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "per_case": _list(self.per_case)}


@dataclass
class Auroc(Metric):
    """Area under the ROC curve of ``scores`` against binary ``labels`` (NaN = unknown, left out).

    Evaluated exactly under weights by grouping tied scores: AUROC = sum over score groups of positive weight
    times (negative weight below + half the tied negative weight), over total positive x negative weight.
    """

    scores: np.ndarray
    labels: np.ndarray
    kind = "auroc"

    @property
    def n_cases(self) -> int:
        return len(self.scores)

    def values(self, weights: np.ndarray) -> np.ndarray:
        known = np.isfinite(self.labels)
        order = np.argsort(self.scores[known], kind="stable")
        scores, labels = self.scores[known][order], self.labels[known][order]
        w = weights[:, known][:, order]
        if len(scores) == 0:
            return np.full(len(weights), np.nan)
        starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
        pos = np.add.reduceat(w * (labels == 1), starts, axis=1)
        neg = np.add.reduceat(w * (labels == 0), starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        wins = (pos * (below + 0.5 * neg)).sum(axis=1)
        total = pos.sum(axis=1) * neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, wins / total, np.nan)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "scores": _list(self.scores), "labels": _list(self.labels)}


@dataclass
class F1(Metric):
    """F1 of binary ``predictions`` against binary ``labels`` (NaN = unknown, left out)."""

    predictions: np.ndarray
    labels: np.ndarray
    kind = "f1"

    @property
    def n_cases(self) -> int:
        return len(self.predictions)

    def values(self, weights: np.ndarray) -> np.ndarray:
        pred, truth = self.predictions == 1, self.labels == 1
        known = np.isfinite(self.labels)
        tp = (weights * (pred & truth & known)).sum(axis=1)
        fp = (weights * (pred & ~truth & known)).sum(axis=1)
        fn = (weights * (~pred & truth & known)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "predictions": _list(self.predictions), "labels": _list(self.labels)}


ECE_BINS = 15


@dataclass
class Ece(Metric):
    """Expected calibration error of the ``probabilities`` of a binary finding against ``labels`` (NaN = unknown,
    left out): how far the predicted probability is from the observed positive rate; lower is better.

    ``n_bins`` equal-width bins over [0, 1], assigned as :func:`sklearn.calibration.calibration_curve` does
    (``strategy="uniform"``); ECE = sum over bins of (share of cases in the bin) x |positive rate in the bin -
    mean probability in the bin| = sum over bins of |sum of w (y - p)| / sum of w, under case weights ``w``.
    """

    probabilities: np.ndarray
    labels: np.ndarray
    n_bins: int = ECE_BINS
    kind = "ece"

    @property
    def n_cases(self) -> int:
        return len(self.probabilities)

    def values(self, weights: np.ndarray) -> np.ndarray:
        known = np.isfinite(self.labels)
        p, y = self.probabilities[known], self.labels[known]
        bins = np.searchsorted(np.linspace(0.0, 1.0, self.n_bins + 1)[1:-1], p)
        w = weights[:, known]
        gaps = (w * (y - p)) @ np.eye(self.n_bins)[bins]
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, np.abs(gaps).sum(axis=1) / total, np.nan)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "probabilities": _list(self.probabilities), "labels": _list(self.labels),
                "n_bins": self.n_bins}


def brier(probabilities: np.ndarray, labels: np.ndarray) -> MeanOf:
    """Brier score of the ``probabilities`` of a binary finding: the mean of ``(p - y)^2`` over the cases with a
    known label (NaN = unknown, left out), as :func:`sklearn.metrics.brier_score_loss`; lower is better."""
    return MeanOf((probabilities - labels) ** 2)


@dataclass
class MacroMean(Metric):
    """The mean of several metrics over the same cases, leaving out those undefined in a resample."""

    parts: list[Metric]
    kind = "macro"

    @property
    def n_cases(self) -> int:
        return self.parts[0].n_cases

    def values(self, weights: np.ndarray) -> np.ndarray:
        stacked = np.stack([part.values(weights) for part in self.parts])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample where every part is undefined
            return np.nanmean(stacked, axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "parts": [p.to_dict() for p in self.parts]}


def metric_from_dict(data: dict[str, Any]) -> Metric:
    """The metric written by ``Metric.to_dict``."""
    args = {k: np.asarray(v, dtype=float) if isinstance(v, list) else v for k, v in data.items()
            if k not in ("kind", "parts")}
    kinds = {"mean": MeanOf, "auroc": Auroc, "f1": F1, "ece": Ece}
    if data["kind"] == "macro":
        return MacroMean([metric_from_dict(p) for p in data["parts"]])
    return kinds[data["kind"]](**args)


def _list(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]


def bootstrap_weights(n_cases: int, n_resamples: int, key: Any) -> np.ndarray:
    """``(n_resamples, n_cases)`` multinomial resampling counts, deterministic by ``key`` (the test set)."""
    rng = np.random.default_rng(int(digest("bootstrap", key, n_cases, n_resamples)[:16], 16))
    return rng.multinomial(n_cases, np.full(n_cases, 1.0 / n_cases), size=n_resamples).astype(np.float64)


@dataclass(frozen=True)
class Summary:
    """Mean and std over seeds, the percentile CI of the seed-averaged bootstrap replicates, the replicates."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    per_seed: list[float]
    replicates: np.ndarray


def summarise(per_seed: list[Metric], weights: np.ndarray, mask: np.ndarray | None = None) -> Summary:
    """Summarise one metric measured at several seeds on the same test cases.

    Args:
        per_seed: the metric of each seed.
        weights: bootstrap weights ``(B, N)``.
        mask: ``(N,)`` bool restricting the cases (a subgroup); None keeps all.
    """
    keep = np.ones(per_seed[0].n_cases) if mask is None else mask.astype(float)
    points = [float(m.values(keep[None])[0]) for m in per_seed]
    replicates = np.mean([m.values(weights * keep) for m in per_seed], axis=0)
    low, high = percentile_ci(replicates)
    std = float(np.std(points, ddof=1)) if len(points) > 1 else 0.0
    return Summary(float(np.mean(points)), std, low, high, points, replicates)


def percentile_ci(replicates: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (NaN replicates left out)."""
    finite = replicates[np.isfinite(replicates)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def paired_p_value(replicates_a: np.ndarray, replicates_b: np.ndarray) -> float:
    """Two-sided bootstrap p-value of ``A - B != 0`` from paired replicates (same resamples for both)."""
    diff = replicates_a - replicates_b
    diff = diff[np.isfinite(diff)]
    if len(diff) == 0:
        return float("nan")
    return float(min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0))))


def format_p(p_value: float, n_resamples: int = 0) -> str:
    """``p = 0.012``, ``p < 0.001`` or ``p = n/a``.

    A bootstrap p-value of 0 from ``n_resamples`` replicates only says ``p < 2 / n_resamples`` (the smallest
    non-zero two-sided value), so that bound is printed when it is above 0.001.
    """
    if not np.isfinite(p_value):
        return "p = n/a"
    floor = max(0.001, 2 / n_resamples) if p_value == 0 and n_resamples else 0.001
    return f"p < {floor:.2g}" if p_value < floor else f"p = {p_value:.3f}"
