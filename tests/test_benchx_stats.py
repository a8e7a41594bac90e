"""Bootstrap metrics, CIs and paired p-values against sklearn / scipy / hand-written references."""

from __future__ import annotations

import numpy as np
import scipy.stats
import torch
from sklearn.metrics import f1_score, roc_auc_score

from benchx.stats import (
    F1,
    Auroc,
    MacroMean,
    MeanOf,
    bootstrap_weights,
    metric_from_dict,
    paired_p_value,
    summarise,
)
from benchx.tasks.retrieval import retrieval_metrics
from medvl.infer.retrieval import precision_at_k, recall_at_k


def data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(float)
    scores = np.round(labels * 0.5 + rng.random(n), 1)  # rounding makes ties
    return scores, labels


def test_weighted_auroc_equals_sklearn_on_resampled_cases():
    scores, labels = data()
    weights = bootstrap_weights(len(scores), 20, "k")
    values = Auroc(scores, labels).values(weights)
    for b in range(20):
        idx = np.repeat(np.arange(len(scores)), weights[b].astype(int))
        assert np.isclose(values[b], roc_auc_score(labels[idx], scores[idx]))


def test_unknown_labels_are_left_out_and_f1_matches_sklearn():
    scores, labels = data()
    labels[:10] = np.nan
    assert np.isclose(Auroc(scores, labels).point(), roc_auc_score(labels[10:], scores[10:]))
    pred = (scores > 0.7).astype(float)
    assert np.isclose(F1(pred, labels).point(), f1_score(labels[10:], pred[10:]))


def test_ci_matches_hand_loop_and_scipy():
    scores, labels = data(200)
    weights = bootstrap_weights(200, 1000, "ci")
    summary = summarise([Auroc(scores, labels)], weights)
    hand = []
    for w in weights:
        idx = np.repeat(np.arange(200), w.astype(int))
        hand.append(roc_auc_score(labels[idx], scores[idx]))
    assert np.allclose(summary.replicates, hand)
    assert np.isclose(summary.ci_low, np.percentile(hand, 2.5)) and np.isclose(summary.ci_high, np.percentile(hand, 97.5))
    ref = scipy.stats.bootstrap((scores, labels), lambda s, y: roc_auc_score(y, s), paired=True, vectorized=False,
                                n_resamples=1000, method="percentile", random_state=0).confidence_interval
    assert abs(summary.ci_low - ref.low) < 0.03 and abs(summary.ci_high - ref.high) < 0.03


def test_seeds_mean_std_and_subgroup_mask():
    values = [MeanOf(np.array([1.0, 0.0, 1.0, 1.0])), MeanOf(np.array([1.0, 1.0, 1.0, 0.0]))]
    summary = summarise(values, bootstrap_weights(4, 50, "s"))
    assert summary.per_seed == [0.75, 0.75] and summary.std == 0.0
    masked = summarise(values, bootstrap_weights(4, 50, "s"), np.array([True, True, False, False]))
    assert masked.per_seed == [0.5, 1.0] and np.isclose(masked.std, np.std([0.5, 1.0], ddof=1))


def test_paired_p_value_against_hand_computation():
    rng = np.random.default_rng(1)
    a = rng.normal(0.8, 0.02, 1000)
    b = a - rng.normal(0.01, 0.01, 1000)
    diff = a - b
    assert paired_p_value(a, b) == min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0)))
    assert paired_p_value(a, b) < 0.5
    assert paired_p_value(a, a) == 1.0


def test_metrics_round_trip_through_json_form():
    scores, labels = data()
    metric = MacroMean([Auroc(scores, labels), F1((scores > 0.6).astype(float), labels)])
    again = metric_from_dict(metric.to_dict())
    weights = bootstrap_weights(len(scores), 10, "j")
    assert np.allclose(again.values(weights), metric.values(weights))


def test_benchx_retrieval_matches_medvl_recall_and_precision():
    rng = np.random.default_rng(2)
    img = torch.nn.functional.normalize(torch.randn(30, 8), dim=-1)
    txt = torch.nn.functional.normalize(img + 0.8 * torch.randn(30, 8), dim=-1)
    sims = (img @ txt.T).numpy()
    classes = rng.integers(0, 3, 30)
    metrics = retrieval_metrics(img.numpy(), txt.numpy(), classes)
    for k in (1, 5, 10):
        assert np.isclose(metrics[f"i2t_R{k}"].point(), recall_at_k(img, txt)[k])
        assert np.isclose(metrics[f"t2i_R{k}"].point(), recall_at_k(txt, img)[k])
    assert np.isclose(metrics["precision_at_5"].point(), precision_at_k(classes, classes, sims, 5))
