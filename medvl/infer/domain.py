"""What a model was trained on, and whether an input lies outside it (out-of-distribution notice).

A :class:`TrainingDomain` is saved with the model (:data:`DOMAIN_FILE`, :data:`EMBEDDINGS_FILE`) and holds:

- the **modalities**, input **kinds** (``2d`` radiographs, ``3d`` volumes) and **views** of its training studies;
- **image statistics** of the prepared inputs (:func:`image_statistics`): the range each took over training,
  widened by :data:`STAT_MARGIN` of that range on both sides;
- an **embedding reference**: up to :data:`MAX_REFERENCE` training study embeddings per kind. An input's
  distance is one minus its mean cosine similarity with its :data:`KNN` nearest training embeddings; the
  threshold is the :data:`THRESHOLD_QUANTILE` quantile of the validation studies' distances (studies the model
  did not train on), times :data:`THRESHOLD_MARGIN`.

:meth:`TrainingDomain.check` says why an input is outside (a modality or kind never trained on, an image
statistic out of range, an embedding far from every training study), one reason per failed check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from medvl.infer.calibration import kind_name

DOMAIN_FILE = "domain.json"
EMBEDDINGS_FILE = "domain-embeddings.npz"
KNN = 5
MAX_REFERENCE = 4096
THRESHOLD_QUANTILE = 0.99
THRESHOLD_MARGIN = 1.1
STAT_MARGIN = 0.25
RADIOGRAPHY = frozenset({"CR", "DX"})
"""Computed and digital radiography: one modality for the check (archives tag the same X-ray either way)."""
STATISTICS = ("mean", "std", "p05", "p50", "p95", "gradient", "laplacian", "noise_correlation", "dark", "bright")
"""Image statistics of a prepared input's content (pixels in [0, 1]): mean, standard deviation, percentiles,
mean absolute gradient (texture), mean absolute Laplacian (fine detail and noise), the correlation of
neighbouring pixels' high-pass residuals (white noise: about -0.2; smooth detail or compression: positive),
share of pixels below 0.02 and above 0.98."""


def image_statistics(pixels: np.ndarray, content_box: Sequence[int]) -> dict[str, float]:
    """:data:`STATISTICS` of a prepared ``(S, H, W)`` input's content box (all slices)."""
    top, left, bottom, right = (int(v) for v in content_box)
    content = np.asarray(pixels, dtype=np.float32)[:, top:bottom, left:right]
    p05, p50, p95 = np.percentile(content, [5, 50, 95])
    gradient = (np.abs(np.diff(content, axis=-1)).mean() + np.abs(np.diff(content, axis=-2)).mean()) / 2
    laplacian = np.abs(ndimage.laplace(content, mode="nearest") - _across_slices(content)).mean()
    residual = content - ndimage.uniform_filter(content, size=(1, 3, 3), mode="nearest")
    left, right = residual[..., :-1].ravel(), residual[..., 1:].ravel()
    correlation = float(np.corrcoef(left, right)[0, 1]) if left.std() > 0 and right.std() > 0 else 0.0
    return {"mean": float(content.mean()), "std": float(content.std()), "p05": float(p05), "p50": float(p50),
            "p95": float(p95), "gradient": float(gradient), "laplacian": float(laplacian),
            "noise_correlation": correlation, "dark": float((content < 0.02).mean()),
            "bright": float((content > 0.98).mean())}  # fmt: skip


def _across_slices(content: np.ndarray) -> np.ndarray:
    """The slice-axis part of :func:`scipy.ndimage.laplace` (removed: each slice is its own 2D image)."""
    padded = np.concatenate([content[:1], content, content[-1:]], axis=0)
    return padded[:-2] + padded[2:] - 2 * content


def knn_distance(embeddings: np.ndarray, reference: np.ndarray, k: int = KNN) -> np.ndarray:
    """``(N,)`` one minus the mean cosine similarity of each normalised embedding with its ``k`` nearest
    reference embeddings."""
    similarity = np.asarray(embeddings, np.float32) @ np.asarray(reference, np.float32).T
    k = min(k, similarity.shape[1])
    nearest = -np.sort(-similarity, axis=1)[:, :k]
    return 1.0 - nearest.mean(axis=1)


@dataclass
class DomainCheck:
    """Whether one input lies inside the model's training domain, and why not.

    Attributes:
        inside: True when every check passed.
        reasons: one sentence per failed check.
        distance, threshold: the embedding distance to the training studies and the limit it was held to
            (NaN when the kind was never trained on).
    """

    inside: bool
    reasons: list[str]
    distance: float
    threshold: float


@dataclass
class TrainingDomain:
    """The training data of a model, as far as the out-of-distribution check needs it (see the module doc)."""

    modalities: list[str]
    kinds: list[str]
    views: list[str]
    statistics: dict[str, dict[str, list[float]]]
    thresholds: dict[str, float]
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    n_studies: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """The training data in words (for notices and model cards)."""
        kinds = " and ".join(f"{self.n_studies.get(k, 0)} {kind_name(k)}s" for k in self.kinds)
        views = f", views {', '.join(self.views)}" if self.views else ""
        return f"{kinds} ({', '.join(self.modalities) or 'modality unknown'}{views})"

    def check(
        self, kind: str, modality: str, statistics: dict[str, float], embedding: np.ndarray
    ) -> DomainCheck:
        """Check one input (its kind, modality, :func:`image_statistics` and normalised study embedding)."""
        reasons = []
        if kind not in self.kinds:
            reasons.append(f"the model was trained on {self.describe()}, never on a {kind_name(kind)}")
            return DomainCheck(False, reasons, float("nan"), float("nan"))
        if (
            modality
            and modality.upper() != "OT"
            and self.modalities
            and not _same_modality(modality, self.modalities)
        ):
            reasons.append(
                f"modality {modality} is not among the training modalities ({', '.join(self.modalities)})"
            )
        for name, (low, high) in self.statistics.get(kind, {}).items():
            value = statistics.get(name)
            if value is not None and not low <= value <= high:
                reasons.append(f"image statistic '{name}' = {value:.3f} is outside the training range "
                               f"[{low:.3f}, {high:.3f}]")  # fmt: skip
        distance = float(knn_distance(np.asarray(embedding)[None], self.reference[kind])[0])
        threshold = self.thresholds[kind]
        if distance > threshold:
            reasons.append(f"the image embedding is far from every training study (distance {distance:.3f} > "
                           f"{threshold:.3f}, the {THRESHOLD_QUANTILE:.0%} level of unseen validation studies)")  # fmt: skip
        return DomainCheck(not reasons, reasons, distance, threshold)

    def save(self, model_dir: str | Path) -> None:
        """Write :data:`DOMAIN_FILE` and :data:`EMBEDDINGS_FILE` into the model folder."""
        model_dir = Path(model_dir)
        data = {"modalities": self.modalities, "kinds": self.kinds, "views": self.views,
                "statistics": self.statistics, "thresholds": self.thresholds, "n_studies": self.n_studies,
                "knn": KNN, "threshold_quantile": THRESHOLD_QUANTILE, "threshold_margin": THRESHOLD_MARGIN}  # fmt: skip
        (model_dir / DOMAIN_FILE).write_text(json.dumps(data, indent=1) + "\n")
        np.savez_compressed(
            model_dir / EMBEDDINGS_FILE, **{k: v.astype(np.float16) for k, v in self.reference.items()}
        )


def _same_modality(modality: str, trained: Sequence[str]) -> bool:
    """Whether ``modality`` is a training modality (CR and DX count as one)."""
    code = modality.upper()
    return code in trained or (code in RADIOGRAPHY and bool(RADIOGRAPHY & set(trained)))


def read_domain(model_dir: str | Path) -> TrainingDomain | None:
    """The model's training domain, or None for a model saved without one.

    Raises:
        ValueError: the files exist but cannot be read.
    """
    path = Path(model_dir) / DOMAIN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        with np.load(Path(model_dir) / EMBEDDINGS_FILE) as arrays:
            reference = {k: arrays[k].astype(np.float32) for k in arrays.files}
        return TrainingDomain(list(data["modalities"]), list(data["kinds"]), list(data["views"]),
                              data["statistics"], {k: float(v) for k, v in data["thresholds"].items()},
                              reference, {k: int(v) for k, v in data["n_studies"].items()})  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a medvl training-domain file ({exc})") from exc


def statistic_ranges(rows: Sequence[dict[str, float]]) -> dict[str, list[float]]:
    """Per statistic: the training range widened by :data:`STAT_MARGIN` of its width on each side."""
    table = {name: np.array([row[name] for row in rows]) for name in STATISTICS} if rows else {}
    ranges = {}
    for name, values in table.items():
        low, high = float(values.min()), float(values.max())
        pad = STAT_MARGIN * max(high - low, 1e-3)
        ranges[name] = [low - pad, high + pad]
    return ranges


def distance_threshold(validation: np.ndarray, reference: np.ndarray) -> float:
    """The :data:`THRESHOLD_QUANTILE` quantile of the validation embeddings' distances, times the margin."""
    return float(np.quantile(knn_distance(validation, reference), THRESHOLD_QUANTILE) * THRESHOLD_MARGIN)
