"""Per-finding calibration: Platt on small splits, isotonic on large ones, Youden operating points, saved files."""

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from medvl.infer.calibration import (
    ISOTONIC_MIN_PER_CLASS,
    FindingCalibration,
    ModelCalibration,
    fit_finding,
    read_calibration,
)


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores that rank well but sit near 0 or 1 far more often than the truth does."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    margin = rng.normal(0.8 * (2 * labels - 1), 1.5)
    return 1 / (1 + np.exp(-6 * margin)), labels


@pytest.mark.parametrize("n, method", [(40, "platt"), (800, "isotonic")])
def test_calibration_lowers_the_brier_score_of_overconfident_scores(n, method):
    scores, labels = _overconfident(n, seed=0)
    fitted = fit_finding(scores, labels)
    assert fitted is not None and fitted.method == method
    test_scores, test_labels = _overconfident(4000, seed=1)
    calibrated = fitted.apply(test_scores)
    assert brier_score_loss(test_labels, calibrated) < brier_score_loss(test_labels, test_scores) - 0.02
    assert np.all(np.diff(fitted.apply(np.sort(test_scores))) >= -1e-12)  # monotone: ranking kept


def test_isotonic_needs_enough_studies_of_each_class():
    scores, labels = _overconfident(2 * ISOTONIC_MIN_PER_CLASS + 200, seed=2)
    labels[: len(labels)] = 0
    labels[: ISOTONIC_MIN_PER_CLASS - 1] = 1
    assert fit_finding(scores, labels).method == "platt"


def test_operating_point_separates_separable_scores():
    scores = np.array([0.1, 0.2, 0.25, 0.3, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    fitted = fit_finding(scores, labels)
    decided = fitted.apply(scores) >= fitted.threshold
    assert decided.tolist() == labels.astype(bool).tolist() and fitted.auroc == 1.0


def test_a_finding_without_both_classes_is_not_calibrated():
    assert fit_finding(np.linspace(0, 1, 20), np.zeros(20)) is None
    assert fit_finding(np.linspace(0, 1, 20), np.r_[np.ones(1), np.zeros(19)]) is None


def test_saved_calibration_reads_back_and_applies_the_same(tmp_path):
    scores, labels = _overconfident(300, seed=3)
    fitted = fit_finding(scores, labels)
    saved = ModelCalibration({"2d": {"Cardiomegaly": fitted}}, "val", "key", "default")
    saved.save(tmp_path)
    back = read_calibration(tmp_path)
    assert back.findings("2d") == ["Cardiomegaly"] and back.findings("3d") == []
    np.testing.assert_allclose(back.kinds["2d"]["Cardiomegaly"].apply(scores), fitted.apply(scores))
    assert "val" in back.describe("2d") and "not calibrated" in back.describe("3d")


def test_unreadable_calibration_names_the_file(tmp_path):
    assert read_calibration(tmp_path) is None
    (tmp_path / "calibration.json").write_text("{")
    with pytest.raises(ValueError, match="calibration.json"):
        read_calibration(tmp_path)


def test_platt_map_is_a_sigmoid_of_the_logit():
    calibration = FindingCalibration("platt", [2.0, -1.0], 0.5, 10, 10, 0.9)
    p = np.array([0.2, 0.5, 0.8])
    expected = 1 / (1 + np.exp(-(2 * np.log(p / (1 - p)) - 1)))
    np.testing.assert_allclose(calibration.apply(p), expected)
