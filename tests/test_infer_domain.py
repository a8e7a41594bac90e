"""The training domain: image statistics, kNN embedding distance and the reasons an input is outside."""

import numpy as np
import pytest

from medvl.infer.domain import (
    TrainingDomain,
    distance_threshold,
    image_statistics,
    knn_distance,
    read_domain,
    statistic_ranges,
)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _domain(seed: int = 0) -> tuple[TrainingDomain, np.ndarray]:
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=16)
    train = _unit(centre + 0.3 * rng.normal(size=(200, 16)))
    val = _unit(centre + 0.3 * rng.normal(size=(100, 16)))
    pixels = [rng.uniform(0.2, 0.8, (1, 32, 32)) for _ in range(20)]
    stats = statistic_ranges([image_statistics(p, (0, 0, 32, 32)) for p in pixels])
    domain = TrainingDomain(["CR", "DX"], ["2d"], ["PA"], {"2d": stats}, {"2d": distance_threshold(val, train)},
                            {"2d": train}, {"2d": 200})  # fmt: skip
    return domain, centre


def test_knn_distance_is_zero_on_the_reference_and_grows_away_from_it():
    reference = _unit(np.eye(8)[0] + 0.2 * np.random.default_rng(0).normal(size=(50, 8)))
    assert np.allclose(knn_distance(reference, reference, k=1), 0, atol=1e-6)
    assert knn_distance(-np.eye(8)[:1], reference, k=5)[0] > 1.5


def test_in_domain_inputs_pass_and_each_failure_gives_its_reason():
    domain, centre = _domain()
    rng = np.random.default_rng(5)
    image = rng.uniform(0.2, 0.8, (1, 32, 32))
    stats = image_statistics(image, (0, 0, 32, 32))
    near = _unit(centre + 0.3 * rng.normal(size=(200, 16)))
    inside = [domain.check("2d", "DX", stats, e).inside for e in near]
    assert np.mean(inside) >= 0.9
    far = domain.check("2d", "DX", stats, _unit(rng.normal(size=(1, 16)))[0])
    assert not far.inside and "far from every training study" in far.reasons[0]
    ct = domain.check("3d", "CT", stats, near[0])
    assert not ct.inside and "never on a volume" in ct.reasons[0]
    mr = domain.check("2d", "MR", stats, near[0])
    assert not mr.inside and "modality MR" in mr.reasons[0]
    assert domain.check("2d", "OT", stats, near[0]).inside  # unknown modality (PNG, JPEG) is not a reason
    domain.modalities = ["DX"]
    assert domain.check("2d", "CR", stats, near[0]).inside  # computed and digital radiography are one
    black = domain.check("2d", "DX", image_statistics(np.zeros((1, 32, 32)), (0, 0, 32, 32)), near[0])
    assert not black.inside and any("image statistic" in r for r in black.reasons)


def test_saved_domain_reads_back(tmp_path):
    domain, centre = _domain()
    domain.save(tmp_path)
    back = read_domain(tmp_path)
    assert back.kinds == ["2d"] and back.modalities == ["CR", "DX"] and back.thresholds == domain.thresholds
    assert np.allclose(back.reference["2d"], domain.reference["2d"], atol=1e-3)
    assert "200 radiographs" in back.describe()
    assert read_domain(tmp_path / "missing") is None


def test_unreadable_domain_names_the_file(tmp_path):
    (tmp_path / "domain.json").write_text("[]")
    with pytest.raises(ValueError, match="domain.json"):
        read_domain(tmp_path)
