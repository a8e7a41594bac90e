"""Fit what is saved beside a model's weights for trustworthy findings: the per-finding calibration and operating
points (:mod:`medvl.infer.calibration`) and the training domain (:mod:`medvl.infer.domain`).

Both come from one pass of the model over its training cache: up to :data:`medvl.infer.domain.MAX_REFERENCE`
training studies per kind (the embedding reference and the image-statistic ranges) and the validation studies
(the calibration, the operating points and the out-of-distribution threshold). Studies are read the way the app
and ``medvl predict`` read them (:meth:`medvl.infer.reading.Reader.read`): whole volumes, the default prompts.

Labels: 1 is positive; 0 and unknown (NaN: the report does not mention the finding) are negative; uncertain (-1)
studies are left out of that finding's fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from medvl.data.cache import CachedCohort
from medvl.infer.attribution import ImageAnalysis, analyse
from medvl.infer.calibration import FindingCalibration, ModelCalibration, fit_finding, kind_name
from medvl.infer.domain import (
    MAX_REFERENCE,
    TrainingDomain,
    distance_threshold,
    image_statistics,
    statistic_ranges,
)
from medvl.infer.loading import ModelInput
from medvl.infer.reading import Reader, kind_of, raw_scores
from medvl.text.prompts import DEFAULT_PROMPTS

MAX_VALIDATION = 2048
"""Validation studies per kind read at most (a seeded sample beyond)."""


def cohort_input(cohort: CachedCohort, i: int) -> ModelInput:
    """Item ``i`` of a cache as a prepared model input (all its slices)."""
    item = cohort[int(i)]
    pixels = item["image"].numpy()
    pixels = pixels[:, 0] if item["is_volume"] else pixels
    return ModelInput(
        pixels.astype(np.float32), item["z_mm"].numpy().astype(np.float32), cohort.content_box(i)
    )


def cohort_outside(domain: TrainingDomain, cohort: CachedCohort, indices: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: which cache items (with their normalised study embeddings) lie outside ``domain``."""
    flags = []
    for i, embedding in zip(indices, np.asarray(embeddings, dtype=np.float32), strict=True):
        model_input = cohort_input(cohort, int(i))
        kind = kind_of(model_input)
        statistics = image_statistics(model_input.pixels, model_input.content_box)
        flags.append(not domain.check(kind, str(cohort.modalities[i]), statistics, embedding).inside)
    return np.asarray(flags, dtype=bool)


def _sample(indices: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(indices) <= limit:
        return indices
    return np.sort(np.random.default_rng(seed).choice(indices, size=limit, replace=False))


@dataclass
class _Pass:
    analyses: list[ImageAnalysis]
    statistics: list[dict[str, float]]

    @property
    def embeddings(self) -> np.ndarray:
        return np.stack([a.embedding.numpy() for a in self.analyses]).astype(np.float32)


def _read_items(
    reader: Reader, cohort: CachedCohort, indices: np.ndarray, desc: str, progress: bool
) -> _Pass:
    analyses, statistics = [], []
    for i in tqdm(indices, desc=desc, unit="study", disable=not progress, leave=False):
        model_input = cohort_input(cohort, int(i))
        analyses.append(analyse(reader.model, model_input, reader.device, dense=False))
        statistics.append(image_statistics(model_input.pixels, model_input.content_box))
    return _Pass(analyses, statistics)


def _calibrate(
    reader: Reader, cohort: CachedCohort, indices: np.ndarray, seen: _Pass, kind: str
) -> dict[str, FindingCalibration]:
    names, scores = raw_scores(reader, seen.analyses, kind)
    labels = cohort.item_labels(indices)
    fitted = {}
    for j, name in enumerate(names):
        if name not in cohort.label_space:
            continue
        column = labels[:, cohort.label_space.index(name)]
        known = column != -1
        calibration = fit_finding(scores[known, j], (column[known] == 1).astype(np.int64))
        if calibration is not None:
            fitted[name] = calibration
    return fitted


def fit_profile(
    model_dir: str | Path,
    cache_dir: str | Path,
    train_split: str = "train",
    val_split: str = "val",
    device: str = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> tuple[ModelCalibration, TrainingDomain]:
    """Fit the calibration and the training domain of a saved model on its cache, and save both beside it.

    Raises:
        ValueError: the cache has no training study of any kind.
    """
    reader = Reader(model_dir, DEFAULT_PROMPTS, device)
    cohort = CachedCohort(cache_dir)
    kinds = [k for k in ("2d", "3d") if len(cohort.select(train_split, k))]
    if not kinds:
        raise ValueError(f"{cache_dir}: no '{train_split}' study to describe the model's training data with")
    calibrations, statistics, thresholds, reference, counts = {}, {}, {}, {}, {}
    modalities, views = set(), set()
    for kind in kinds:
        train_all = cohort.select(train_split, kind)
        train = _sample(train_all, MAX_REFERENCE, seed)
        val = _sample(cohort.select(val_split, kind), MAX_VALIDATION, seed)
        seen = _read_items(reader, cohort, train, f"training {kind_name(kind)}s", progress)
        reference[kind], statistics[kind], counts[kind] = (
            seen.embeddings,
            statistic_ranges(seen.statistics),
            len(train_all),
        )
        modalities |= {m.upper() for m in cohort.modalities[train_all] if m and m.upper() != "OT"}  # OT: unknown
        views |= {v for v in (cohort.text("view", int(i)) for i in train_all) if v}
        if len(val):
            held_out = _read_items(reader, cohort, val, f"validation {kind_name(kind)}s", progress)
            thresholds[kind] = distance_threshold(held_out.embeddings, reference[kind])
            calibrations[kind] = _calibrate(reader, cohort, val, held_out, kind)
        elif len(train) >= 2:  # no validation study of this kind: hold out half of the training sample
            half = len(train) // 2
            thresholds[kind] = distance_threshold(seen.embeddings[half:], seen.embeddings[:half])
        else:
            thresholds[kind] = float("inf")
    calibration = ModelCalibration(calibrations, val_split, cohort.key, DEFAULT_PROMPTS)
    domain = TrainingDomain(
        sorted(modalities), kinds, sorted(views), statistics, thresholds, reference, counts
    )
    calibration.save(model_dir)
    domain.save(model_dir)
    return calibration, domain
