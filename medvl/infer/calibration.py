"""Calibrated finding probabilities and operating points, fitted on a model's validation split.

A zero-shot score (prompt softmax or patch-concept sigmoid) ranks studies but is no probability: its level
depends on the logit scale and the prompts. Per finding and per input kind (``2d`` radiographs, ``3d`` volumes)
a monotone map fitted on the validation split turns it into one:

- **Platt scaling** (logistic regression on the score's logit) when either class has fewer than
  :data:`ISOTONIC_MIN_PER_CLASS` validation studies: two parameters, stable on small splits;
- **isotonic regression** (scikit-learn) above that: no shape assumed.

The **operating point** is the calibrated probability that maximises Youden's J (sensitivity + specificity - 1)
on the same split; a study is called positive at or above it. Both are saved with the model
(:data:`CALIBRATION_FILE`), so they travel into the MLflow model with the weights.

A finding is *offered* for a kind only when it was calibrated for that kind: the validation split had studies of
that kind with and without it. That makes the label space belong to the model and the modality (no liver finding
on a radiograph from a model that never saw one labelled).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve

CALIBRATION_FILE = "calibration.json"
ISOTONIC_MIN_PER_CLASS = 50
"""Positives and negatives each needed before isotonic regression replaces Platt scaling."""
MIN_PER_CLASS = 2
"""Validation studies of each class needed to calibrate a finding at all."""
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class FindingCalibration:
    """The fitted map of one finding for one input kind.

    Attributes:
        method: ``platt`` (``sigmoid(a * logit(score) + b)``) or ``isotonic`` (piecewise linear through ``knots``).
        params: ``[a, b]`` for Platt; for isotonic the knots ``[[x...], [y...]]``.
        threshold: the operating point on the calibrated probability (Youden's J on validation).
        n_positive, n_negative: validation studies of each class it was fitted on.
        auroc: validation AUROC of the raw score. Platt's slope ``a`` is negative when the score was inverted on
            validation: the map then reverses it (the calibrated AUROC is ``1 - auroc``), which the app shows as
            it is rather than hiding a finding the model reads backwards.
    """

    method: str
    params: list
    threshold: float
    n_positive: int
    n_negative: int
    auroc: float

    def apply(self, scores: np.ndarray | float) -> np.ndarray:
        """Calibrated probabilities of raw scores."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.method == "platt":
            a, b = self.params
            return 1.0 / (1.0 + np.exp(-(a * _logit(scores) + b)))
        xs, ys = self.params
        return np.interp(scores, xs, ys)


def fit_finding(scores: np.ndarray, labels: np.ndarray) -> FindingCalibration | None:
    """Calibrate one finding from validation scores and 0/1 labels; None without :data:`MIN_PER_CLASS` of each."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    n_pos, n_neg = int(labels.sum()), int((labels == 0).sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        return None
    if min(n_pos, n_neg) >= ISOTONIC_MIN_PER_CLASS:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
        calibration = FindingCalibration(
            "isotonic", [iso.X_thresholds_.tolist(), iso.y_thresholds_.tolist()], 0.5, n_pos, n_neg, 0.0
        )
    else:
        platt = LogisticRegression(C=1e4).fit(_logit(scores)[:, None], labels)
        calibration = FindingCalibration(
            "platt", [float(platt.coef_[0, 0]), float(platt.intercept_[0])], 0.5, n_pos, n_neg, 0.0
        )
    calibrated = calibration.apply(scores)
    fpr, tpr, thresholds = roc_curve(labels, calibrated)
    best = int(np.argmax(tpr - fpr))
    threshold = float(min(thresholds[best], 1.0))
    return FindingCalibration(calibration.method, calibration.params, threshold, n_pos, n_neg,
                              float(roc_auc_score(labels, scores)))  # fmt: skip


@dataclass(frozen=True)
class ModelCalibration:
    """Every finding's calibration per input kind, and how it was obtained.

    Attributes:
        kinds: ``{"2d" | "3d": {finding: FindingCalibration}}``; a finding missing for a kind is not offered there.
        split: the cache split it was fitted on.
        cache_key: the training cache it came from.
        prompts: the prompt set the prompt-based scores were computed with.
    """

    kinds: dict[str, dict[str, FindingCalibration]]
    split: str
    cache_key: str
    prompts: str

    def findings(self, kind: str) -> list[str]:
        """The findings offered for ``kind`` (``2d`` or ``3d``), in label-space order."""
        return list(self.kinds.get(kind, {}))

    def describe(self, kind: str) -> str:
        """How the probabilities of ``kind`` were obtained, in one sentence (for the app and reports)."""
        entries = self.kinds.get(kind, {})
        if not entries:
            return f"not calibrated for {kind_name(kind)}s"
        methods = sorted({c.method for c in entries.values()})
        smallest = min(min(c.n_positive, c.n_negative) for c in entries.values())
        return (f"calibrated per finding on the '{self.split}' split ({' / '.join(methods)}; smallest class "
                f"{smallest} studies); operating point: Youden's J on the same split")  # fmt: skip

    def save(self, model_dir: str | Path) -> Path:
        """Write :data:`CALIBRATION_FILE` into the model folder."""
        path = Path(model_dir) / CALIBRATION_FILE
        data = {"split": self.split, "cache_key": self.cache_key, "prompts": self.prompts,
                "kinds": {k: {n: asdict(c) for n, c in v.items()} for k, v in self.kinds.items()}}  # fmt: skip
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path


def read_calibration(model_dir: str | Path) -> ModelCalibration | None:
    """The model's calibration, or None for a model saved without one.

    Raises:
        ValueError: the file exists but cannot be read.
    """
    path = Path(model_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        kinds = {k: {n: FindingCalibration(**c) for n, c in v.items()} for k, v in data["kinds"].items()}
        return ModelCalibration(kinds, str(data["split"]), str(data["cache_key"]), str(data["prompts"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a medvl calibration file ({exc})") from exc


def kind_name(kind: str) -> str:
    """``radiograph`` for ``2d``, ``volume`` for ``3d``."""
    return "volume" if kind == "3d" else "radiograph"
