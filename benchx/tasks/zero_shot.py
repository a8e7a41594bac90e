"""Zero-shot classification: each image against positive and negative prompt ensembles per observation.

Prompts: :func:`medvl.text.prompts.build_prompts` ensembles for the observations of medvl's label space
(CheXpert 14); the phantom's report-style prompts (:data:`medvl.text.prompts.PHANTOM_PROMPTS`) for the
others it knows (``Liver Lesion``); medvl's templates around the lower-cased name for the rest. The
probability is the softmax of the two scaled cosine similarities
(:func:`medvl.infer.zeroshot.zero_shot_probabilities`); thresholds are chosen on val.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchx.errors import BenchxError
from benchx.tasks.base import TaskContext, TaskOutcome
from benchx.tasks.classification import choose_thresholds, classification_metrics


def prompt_ensembles(names: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """``{observation: (positive prompts, negative prompts)}`` for every name (see the module docstring)."""
    from medvl.text.prompts import NEGATIVE_TEMPLATES, PHANTOM_PROMPTS, POSITIVE_TEMPLATES, build_prompts

    built = build_prompts()
    table = {}
    for name in names:
        if name in built:
            table[name] = (built[name].positive, built[name].negative)
        elif name in PHANTOM_PROMPTS:
            positive, negative = PHANTOM_PROMPTS[name]
            table[name] = ([positive], [negative])
        else:
            term = name.lower()
            table[name] = ([t.format(term=term) for t in POSITIVE_TEMPLATES],
                           [t.format(term=term) for t in NEGATIVE_TEMPLATES])
    return table


def ensemble_embeddings(ctx: TaskContext, prompts: dict[str, tuple[list[str], list[str]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative class embeddings ``(P, D)``: the normalised mean of each ensemble."""
    key = ctx.dataset.cache_key
    pos = [F.normalize(torch.from_numpy(ctx.store.text_embeddings(ctx.adapter, p, key)).mean(0), dim=0) for p, _ in prompts.values()]
    neg = [F.normalize(torch.from_numpy(ctx.store.text_embeddings(ctx.adapter, n, key)).mean(0), dim=0) for _, n in prompts.values()]
    return torch.stack(pos), torch.stack(neg)


def zero_shot(ctx: TaskContext, fraction: float, seed: int) -> TaskOutcome:
    """Prompt-ensemble zero-shot classification (trains nothing)."""
    from medvl.infer.zeroshot import zero_shot_probabilities

    if not ctx.adapter.has_text:
        raise BenchxError(f"{ctx.adapter.info.ref}: zero-shot needs a model with a text encoder")
    pos, neg = ensemble_embeddings(ctx, prompt_ensembles(ctx.label_space))

    def probabilities(split: str) -> np.ndarray:
        images = torch.from_numpy(ctx.embeddings(split))
        return zero_shot_probabilities(images, pos, neg, ctx.adapter.logit_scale).numpy()

    thresholds = choose_thresholds(probabilities("val"), ctx.labels("val"))
    metrics = classification_metrics(probabilities("test"), ctx.labels("test"), thresholds, ctx.label_space,
                                     ctx.dataset.card.task_type)
    return TaskOutcome(metrics, ctx.study_ids("test"))
