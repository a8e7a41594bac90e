"""Attribution examples for the model card: test radiographs with a planted finding, overlaid with the model's
heatmap for that finding (each region's zero-shot logit, :func:`medvl.infer.attribution.heatmap`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from medvl.data.cache import CachedCohort
from medvl.infer.attribution import analyse, build_text_bank, finding_scores, heatmap
from medvl.infer.loading import load_for_inference, prepare_input, read_concepts

OBSERVATIONS = ("Cardiomegaly", "Pleural Effusion", "Pneumothorax", "Consolidation")


def _first_positive(cohort: CachedCohort, observation: str) -> int | None:
    """The first 2D item of the cohort labelled positive for ``observation``."""
    if observation not in cohort.label_space:
        return None
    j = cohort.label_space.index(observation)
    for i in range(len(cohort)):
        if not cohort.is_volume[i] and cohort[i]["labels"][j] == 1:
            return i
    return None


def write_attribution_examples(model_dir: str | Path, cache_dir: str | Path, out_dir: str | Path,
                               observations: tuple[str, ...] = OBSERVATIONS) -> list[tuple[Path, str]]:
    """One PNG per observation that has a positive test image; returns ``(path, caption)`` pairs.

    Raises:
        CacheError: ``cache_dir`` is not a complete cache; MedvlIOError: a source image cannot be read.
    """
    model, settings = load_for_inference(model_dir)
    bank = build_text_bank(model, trained_concepts=read_concepts(model_dir))
    cohort = CachedCohort(cache_dir, split="test")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    examples = []
    for observation in (o for o in observations if o in bank.observations):
        index = _first_positive(cohort, observation)
        if index is None:
            continue
        item = cohort[index]
        model_input = prepare_input(item["path"], settings)
        analysis = analyse(model, model_input)
        scores = heatmap(analysis, bank.direction(observation), bank.scale)
        top, left, bottom, right = model_input.content_box
        image = model_input.pixels[0, top:bottom, left:right]
        probability = next(s.probability for s in finding_scores(analysis, bank) if s.name == observation)
        figure = Figure(figsize=(4, 4))
        axis = figure.subplots()
        axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        axis.imshow(scores, cmap="inferno", alpha=0.45, vmin=float(np.percentile(scores, 5)),
                    vmax=float(np.percentile(scores, 99)))
        axis.axis("off")
        path = out_dir / f"{observation.lower().replace(' ', '-')}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        examples.append((path, f"{observation} (labelled present), study {item['study_id']}: zero-shot "
                               f"p={probability:.2f}; overlay = each region's zero-shot logit"))
    return examples
