"""Calibration metrics of benchx's classification tasks (ECE, Brier score): values against references, bootstrap
CIs, their place among the task metrics and in the report tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from benchx.headline import HEADLINE, lower_is_better
from benchx.report_tables import LOWER, latex, task_table
from benchx.stats import ECE_BINS, Ece, MacroMean, bootstrap_weights, brier, metric_from_dict, summarise
from benchx.tasks.classification import classification_metrics


def calibrated(n: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels drawn with exactly those probabilities."""
    rng = np.random.default_rng(seed)
    probabilities = rng.random(n)
    return probabilities, (rng.random(n) < probabilities).astype(float)


def reference_ece(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE from sklearn's reliability curve, each bin weighted by its share of the cases."""
    prob_true, prob_pred = calibration_curve(labels, probabilities, n_bins=n_bins, strategy="uniform")
    counts = np.histogram(probabilities, bins=np.linspace(0, 1, n_bins + 1))[0]
    return float(np.sum(counts[counts > 0] / len(labels) * np.abs(prob_true - prob_pred)))


def test_ece_of_calibrated_probabilities_is_near_zero():
    probabilities, labels = calibrated()
    assert Ece(probabilities, labels).point() < 0.02


def test_ece_of_overconfident_probabilities_is_large():
    rng = np.random.default_rng(1)
    labels = (rng.random(5000) < 0.7).astype(float)  # the truth is 70 % positive
    overconfident = np.full(5000, 0.99)
    assert Ece(overconfident, labels).point() == pytest.approx(0.29, abs=0.02)
    assert Ece(overconfident, labels).point() > 10 * Ece(*calibrated()).point()


def test_ece_matches_sklearn_reliability_curve_on_resampled_cases():
    probabilities, labels = calibrated(400, seed=2)
    weights = bootstrap_weights(400, 10, "ece")
    values = Ece(probabilities, labels).values(weights)
    for b in range(10):
        idx = np.repeat(np.arange(400), weights[b].astype(int))
        assert values[b] == pytest.approx(reference_ece(probabilities[idx], labels[idx]))
    assert Ece(probabilities, labels, n_bins=5).point() == pytest.approx(reference_ece(probabilities, labels, 5))


def test_brier_equals_sklearn_with_unknown_labels_left_out():
    probabilities, labels = calibrated(300, seed=3)
    labels[:20] = np.nan
    assert brier(probabilities, labels).point() == pytest.approx(brier_score_loss(labels[20:], probabilities[20:]))
    weights = bootstrap_weights(300, 5, "brier")
    for b, value in enumerate(brier(probabilities, labels).values(weights)):
        assert value == pytest.approx(brier_score_loss(labels[20:], probabilities[20:], sample_weight=weights[b, 20:]))


@pytest.mark.parametrize("make", [Ece, brier])
def test_bootstrap_ci_brackets_the_point_estimate(make):
    probabilities, labels = calibrated(500, seed=4)
    overconfident = np.clip(probabilities * 1.6 - 0.3, 0, 1)
    summary = summarise([make(overconfident, labels)], bootstrap_weights(500, 300, "ci"))
    assert summary.ci_low < summary.mean < summary.ci_high
    assert summary.ci_high - summary.ci_low < 0.1


def test_ece_round_trips_through_json_form():
    probabilities, labels = calibrated(50, seed=5)
    labels[3] = np.nan
    metric = MacroMean([Ece(probabilities, labels, n_bins=10), brier(probabilities, labels)])
    again = metric_from_dict(metric.to_dict())
    assert again.parts[0].n_bins == 10
    weights = bootstrap_weights(50, 10, "json")
    assert np.allclose(again.values(weights), metric.values(weights))


def test_classification_metrics_macro_over_findings_with_both_classes():
    probabilities, labels = calibrated(600, seed=6)
    scores = np.stack([probabilities, probabilities[::-1], np.full(600, 0.9)], axis=1)
    truth = np.stack([labels, labels[::-1], np.zeros(600)], axis=1)  # the third finding has no positive
    metrics = classification_metrics(scores, truth, np.full(3, 0.5), ["a", "b", "c"], "multilabel")
    assert metrics["ece_macro"].point() == pytest.approx(np.mean([reference_ece(scores[:, j], truth[:, j])
                                                                  for j in range(2)]))
    assert metrics["brier_macro"].point() == pytest.approx(np.mean([brier_score_loss(truth[:, j], scores[:, j])
                                                                    for j in range(2)]))


def test_report_table_says_lower_is_better_and_ranks_lowest_first():
    assert {"ece_macro", "brier_macro"} <= set(HEADLINE["zero_shot"])
    assert lower_is_better("ece_macro") and lower_is_better("brier_macro") and not lower_is_better("auroc_macro")
    rows = [{"model": model, "is_baseline": model == "a", "metric": metric, "fraction": 1.0, "mean": mean,
             "ci_low": mean - 0.05, "ci_high": mean + 0.05, "chance": np.nan, "diff": np.nan, "diff_low": np.nan,
             "diff_high": np.nan, "p_value": np.nan, "n_resamples": 0}
            for model, metric, mean in [("a", "auroc_macro", 0.7), ("b", "auroc_macro", 0.8),
                                        ("a", "ece_macro", 0.1), ("b", "ece_macro", 0.3)]]
    table = task_table(pd.DataFrame(rows), ["auroc_macro", "ece_macro"])
    assert table.columns[0] == f"metric ({LOWER} lower is better)"
    assert [(row[0], row[1]) for row in table.rows] == [("auroc_macro", "b"), ("auroc_macro", "a"),
                                                        (f"ece_macro {LOWER}", "a"), (f"ece_macro {LOWER}", "b")]
    assert r"metric ($\downarrow$ lower is better)" in latex(table, "calibration", "tab:x")
    assert task_table(pd.DataFrame(rows[:2]), ["auroc_macro"]).columns[0] == "metric"
