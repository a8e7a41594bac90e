"""Classification metrics shared by the classification tasks, and the linear probe.

Every observation is scored one-vs-rest on its known labels (1 or 0). Decision thresholds are chosen on val
(the F1-best threshold per observation) and applied to test. Metrics: ``auroc_<observation>``,
``auroc_macro``, ``f1_macro``, ``accuracy`` (multiclass: top-scoring class is the labelled one; otherwise
the share of an item's known labels predicted right), and the calibration of the scores, which every task gives as
probabilities (zero-shot softmax, probe ``predict_proba``, fine-tuned heads' sigmoid): ``ece_macro`` (expected
calibration error, :class:`benchx.stats.Ece`) and ``brier_macro`` (Brier score, :func:`benchx.stats.brier`), both
averaged over the observations with both classes in test, like ``auroc_macro``; lower is better.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from benchx.fractions import few_shot_indices
from benchx.stats import F1, Auroc, Ece, MacroMean, MeanOf, Metric, brier
from benchx.tasks.base import TaskContext, TaskOutcome

C_GRID = (0.01, 0.1, 1.0, 10.0)


def val_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Macro AUROC over the observations with both classes known (NaN when none): the model-selection score."""
    values = []
    for j in range(labels.shape[1]):
        known = np.isfinite(labels[:, j])
        if len(np.unique(labels[known, j])) == 2:
            values.append(roc_auc_score(labels[known, j], scores[known, j]))
    return float(np.mean(values)) if values else float("nan")


def choose_thresholds(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per observation, the score threshold with the best F1 on val (0.5 when val has no positive)."""
    thresholds = np.full(scores.shape[1], 0.5)
    for j in range(scores.shape[1]):
        known = np.isfinite(labels[:, j])
        y, s = labels[known, j] == 1, scores[known, j]
        if not y.any():
            continue
        candidates = np.unique(s)
        f1 = [2 * (y & (s >= t)).sum() / (y.sum() + (s >= t).sum()) for t in candidates]
        thresholds[j] = candidates[int(np.argmax(f1))]
    return thresholds


def classification_metrics(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, names: list[str],
                           task_type: str) -> dict[str, Metric]:
    """The test metrics of ``(N, P)`` scores (probabilities in [0, 1]) against ``(N, P)`` labels (NaN unknown)."""
    metrics: dict[str, Metric] = {}
    macro: dict[str, list[Metric]] = {"auroc_macro": [], "f1_macro": [], "ece_macro": [], "brier_macro": []}
    for j, name in enumerate(names):
        known = np.isfinite(labels[:, j])
        if len(np.unique(labels[known, j])) == 2:
            metrics[f"auroc_{name}"] = Auroc(scores[:, j], labels[:, j])
            macro["auroc_macro"].append(metrics[f"auroc_{name}"])
            macro["ece_macro"].append(Ece(scores[:, j], labels[:, j]))
            macro["brier_macro"].append(brier(scores[:, j], labels[:, j]))
        if (labels[known, j] == 1).any():
            macro["f1_macro"].append(F1((scores[:, j] >= thresholds[j]).astype(float), labels[:, j]))
    metrics.update({key: MacroMean(parts) for key, parts in macro.items() if parts})
    metrics["accuracy"] = MeanOf(per_case_accuracy(scores, labels, thresholds, task_type))
    return metrics


def per_case_accuracy(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray, task_type: str) -> np.ndarray:
    """Per item: 1/0 correct (multiclass: the top class is labelled 1), or the share of known labels right."""
    if task_type == "multiclass":
        labelled = np.nan_to_num(labels, nan=0.0).max(axis=1) == 1
        top = np.argmax(scores, axis=1)
        correct = np.nan_to_num(labels, nan=0.0)[np.arange(len(top)), top] == 1
        return np.where(labelled, correct.astype(float), np.nan)
    known = np.isfinite(labels)
    right = ((scores >= thresholds) == (labels == 1)) & known
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(known.any(axis=1), right.sum(axis=1) / known.sum(axis=1), np.nan)


def fit_probe(x_train: np.ndarray, y_train: np.ndarray, c: float, seed: int):
    """One logistic regression per observation; returns ``predict(x) -> (N, P)`` probabilities.

    An observation with a single known class in train predicts that class's training rate.
    """
    models = []
    for j in range(y_train.shape[1]):
        known = np.isfinite(y_train[:, j])
        y = y_train[known, j]
        if len(np.unique(y)) < 2:
            models.append(float(y.mean()) if len(y) else 0.5)
            continue
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)
        models.append(clf.fit(x_train[known], y))

    def predict(x: np.ndarray) -> np.ndarray:
        return np.stack([np.full(len(x), m) if isinstance(m, float) else m.predict_proba(x)[:, 1] for m in models], axis=1)

    return predict


def linear_probe(ctx: TaskContext, fraction: float, seed: int) -> TaskOutcome:
    """Logistic regression on frozen, cached embeddings; C chosen on val by macro AUROC."""
    y_train = ctx.labels("train")
    keep = few_shot_indices(y_train, fraction, seed, ctx.dataset.split_hash)
    scaler = StandardScaler().fit(ctx.embeddings("train")[keep])
    x_train, x_val, x_test = (scaler.transform(ctx.embeddings(s)) for s in ("train", "val", "test"))
    y_val = ctx.labels("val")
    best = None
    for c in C_GRID:
        predict = fit_probe(x_train[keep], y_train[keep], c, seed)
        score = val_auroc(predict(x_val), y_val)
        if best is None or (np.isfinite(score) and not score <= best[0]):
            best = (score, c, predict)
    _, c, predict = best
    thresholds = choose_thresholds(predict(x_val), y_val)
    metrics = classification_metrics(predict(x_test), ctx.labels("test"), thresholds, ctx.label_space,
                                     ctx.dataset.card.task_type)
    return TaskOutcome(metrics, ctx.study_ids("test"), {"C": c, "n_train": len(keep)})
