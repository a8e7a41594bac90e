"""Zero-shot classification: compare an image with positive and negative prompt ensembles per observation.

For observation ``c`` the positive (negative) class embedding is the normalised mean of its positive
(negative) prompts' embeddings. The probability of ``c`` is the softmax over the two cosine similarities
times a scale (the model's learnt logit scale, else ``1 / tau``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from medvl.infer.embed import encode_texts


def logit_scale_of(model: Any) -> float:
    """Similarity scale: ``exp(logit_scale)`` when the model learns one, else ``1 / loss.tau``."""
    if getattr(model, "logit_scale", None) is not None:
        return float(model.logit_scale.detach().exp())
    return 1.0 / float(model.config["loss"]["tau"])


def class_embeddings(model: Any, prompts: Mapping[str, Any], device: torch.device) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Observation names and their positive / negative ensemble embeddings ``(C, D)`` each.

    ``prompts`` maps names to :class:`~medvl.text.prompts.PromptPair` objects or ``(positive(s), negative(s))``.
    """
    prompts = prompt_table(prompts)
    names = list(prompts)
    pos = [F.normalize(encode_texts(model, list(prompts[n][0]), device).mean(0), dim=0) for n in names]
    neg = [F.normalize(encode_texts(model, list(prompts[n][1]), device).mean(0), dim=0) for n in names]
    return names, torch.stack(pos), torch.stack(neg)


def zero_shot_probabilities(image_emb: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, scale: float) -> torch.Tensor:
    """``(N, C)`` probability that each observation is present."""
    logits = torch.stack([image_emb @ pos.T, image_emb @ neg.T], dim=-1) * scale
    return logits.softmax(dim=-1)[..., 0]


def prompt_table(prompt_pairs: Mapping[str, Any]) -> dict[str, tuple[list[str], list[str]]]:
    """``{name: (positives, negatives)}`` from :class:`medvl.text.prompts.PromptPair` objects or tuples."""
    table = {}
    for name, pair in prompt_pairs.items():
        if hasattr(pair, "positive"):
            table[name] = (list(pair.positive), list(pair.negative))
        else:
            positive, negative = pair
            table[name] = ([positive] if isinstance(positive, str) else list(positive),
                           [negative] if isinstance(negative, str) else list(negative))  # fmt: skip
    return table


def auroc_per_class(probs: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """AUROC of each observation over the items labelled 1 (positive) or 0 (negative).

    Uncertain (-1) and unknown (NaN) items are left out.
    Observations without both classes are omitted.
    """
    out = {}
    for j, name in enumerate(names):
        known = (labels[:, j] == 1) | (labels[:, j] == 0)
        y = labels[known, j]
        if len(np.unique(y)) == 2:
            out[name] = float(roc_auc_score(y, probs[known, j]))
    return out


def prompt_ensemble_aurocs(
    model: Any,
    image_emb: torch.Tensor,
    labels: np.ndarray,
    label_space: Sequence[str],
    prompts: Mapping[str, Any],
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Zero-shot AUROC per observation of ``prompts`` for images with known labels.

    Args:
        model: the model whose text encoder embeds the prompts.
        image_emb: ``(N, D)`` normalised image embeddings.
        labels: ``(N, len(label_space))`` study labels (1 positive; anything else counts as negative).
        label_space: the label columns' observation names.
        prompts: ``{observation: PromptPair or (positive(s), negative(s))}``.
    """
    names, pos, neg = class_embeddings(model, prompts, torch.device(device))
    probs = zero_shot_probabilities(image_emb, pos, neg, logit_scale_of(model)).numpy()
    columns = labels[:, [list(label_space).index(n) for n in names]]
    return auroc_per_class(probs, (columns == 1).astype(float), names)


@torch.no_grad()
def concept_scores(model: Any, images: torch.Tensor, concepts: Sequence[str], device: str | torch.device = "cpu") -> torch.Tensor:
    """``(B, C)`` patch-concept scores: the best-matching region's cosine similarity with each concept's text.

    This is the quantity the patch-concept alignment loss (``loss.weights.concept``) trains to tell whether an
    image shows a concept, so for such a model it is a zero-shot detector that needs no negative prompt.
    """
    device = torch.device(device)
    _, patches, _ = model.image_and_patch_embeddings(images.to(device))
    texts = F.normalize(encode_texts(model, list(concepts), device), dim=-1)
    return torch.einsum("bnd,cd->bnc", F.normalize(patches, dim=-1), texts).amax(dim=1).cpu()


def cohort_concept_aurocs(
    model: Any, cohort: Any, observations: Sequence[str], trained_concepts: Sequence[str], split: str = "test"
) -> dict[str, float]:
    """AUROC of :func:`concept_scores` per observation on a cache split's 2D images.

    Each observation is read through its most frequent concept in the model's trained vocabulary
    (:meth:`medvl.text.concepts.ConceptVocabulary.for_observation`), e.g. "pleural effusion".

    Args:
        model: a model trained with the concept term (any model works; an untrained one scores near 0.5).
        cohort: a :class:`medvl.data.cache.CachedCohort` opened on all splits.
        observations: label-space names to score.
        trained_concepts: the concept vocabulary of the patch-concept term (:func:`medvl.infer.loading.read_concepts`).
        split: the split whose images are scored.

    Raises:
        ValueError: an observation has no concept in ``trained_concepts``.
    """
    from medvl.text.concepts import ConceptVocabulary
    from medvl.text.lexicon import Lexicon

    vocabulary = ConceptVocabulary(list(trained_concepts), Lexicon.default())
    concepts = [vocabulary.for_observation(o) for o in observations]
    missing = [o for o, c in zip(observations, concepts, strict=True) if c is None]
    if missing:
        raise ValueError(f"no concept of {missing} is in the model's trained vocabulary (concepts.json)")
    items = cohort.select(split, "2d")
    images = torch.stack([cohort[int(i)]["image"] for i in items])
    labels = np.stack([cohort[int(i)]["labels"].numpy() for i in items])
    columns = labels[:, [list(cohort.label_space).index(o) for o in observations]]
    scores = concept_scores(model, images, concepts).numpy()
    return auroc_per_class(scores, (columns == 1).astype(float), list(observations))
