"""Fine-tuning: a head on the frozen encoder (``finetune_frozen``, trained on cached embeddings) and the whole
image encoder with a linear head (``finetune_full``). The learning rate is chosen on val (macro AUROC) from a
small grid; training is short, full-batch for the frozen head and mini-batch for full fine-tuning.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from benchx.features import batches, encode_batch
from benchx.fractions import few_shot_indices
from benchx.tasks.base import TaskContext, TaskOutcome
from benchx.tasks.classification import choose_thresholds, classification_metrics, val_auroc

FROZEN_LR_GRID = (1e-3, 1e-2)
FROZEN_EPOCHS = 200
FULL_LR_GRID = (1e-4, 1e-3)
FULL_EPOCHS = 3
FULL_BATCH = 16


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the known (non-NaN) labels."""
    known = torch.isfinite(labels)
    return nn.functional.binary_cross_entropy_with_logits(logits[known], labels[known])


def train_head(x: np.ndarray, y: np.ndarray, lr: float, seed: int) -> nn.Module:
    """An MLP head (one hidden layer) trained full-batch with Adam on embeddings."""
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Linear(x.shape[1], 128), nn.ReLU(), nn.Linear(128, y.shape[1]))
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    inputs, targets = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    for _ in range(FROZEN_EPOCHS):
        optimizer.zero_grad()
        masked_bce(head(inputs), targets).backward()
        optimizer.step()
    return head.eval()


@torch.no_grad()
def head_scores(head: nn.Module, x: np.ndarray) -> np.ndarray:
    """Sigmoid scores of a head on embeddings."""
    return torch.sigmoid(head(torch.from_numpy(x).float())).numpy()


def select_and_score(ctx: TaskContext, candidates, extra: dict) -> TaskOutcome:
    """Pick the candidate with the best val AUROC; thresholds on val; metrics on test.

    ``candidates`` yields ``(lr, score_fn)`` where ``score_fn(split) -> (N, P)`` scores.
    """
    y_val = ctx.labels("val")
    best = None
    for lr, score_fn in candidates:
        val_scores = score_fn("val")
        score = val_auroc(val_scores, y_val)
        if best is None or (np.isfinite(score) and not score <= best[0]):
            best = (score, lr, score_fn, val_scores)
    _, lr, score_fn, val_scores = best
    metrics = classification_metrics(score_fn("test"), ctx.labels("test"), choose_thresholds(val_scores, y_val),
                                     ctx.label_space, ctx.dataset.card.task_type)
    return TaskOutcome(metrics, ctx.study_ids("test"), {"lr": lr, **extra})


def finetune_frozen(ctx: TaskContext, fraction: float, seed: int) -> TaskOutcome:
    """An MLP head on the frozen encoder's cached embeddings."""
    y_train = ctx.labels("train")
    keep = few_shot_indices(y_train, fraction, seed, ctx.dataset.split_hash)
    x_train = ctx.embeddings("train")[keep]

    def candidates():
        for lr in FROZEN_LR_GRID:
            head = train_head(x_train, y_train[keep], lr, seed)
            yield lr, lambda split, head=head: head_scores(head, ctx.embeddings(split))

    return select_and_score(ctx, candidates(), {"n_train": len(keep)})


class Classifier(nn.Module):
    """A copy of the adapter's trainable model with a linear head on its embeddings."""

    def __init__(self, ctx: TaskContext) -> None:
        super().__init__()
        self.adapter = copy.deepcopy(ctx.adapter)
        self.backbone = self.adapter.trainable()
        dim = ctx.embeddings("val").shape[1]
        self.head = nn.Linear(dim, len(ctx.label_space))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(encode_batch(self.adapter, batch))


def train_full(ctx: TaskContext, keep: np.ndarray, lr: float, seed: int) -> Classifier:
    """Fine-tune the whole image model with a linear head for a few epochs on the kept train items."""
    from torch.utils.data import Subset

    torch.manual_seed(seed)
    model = Classifier(ctx).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    subset = Subset(ctx.cohort("train"), keep.tolist())
    generator = torch.Generator().manual_seed(seed)
    for _ in range(FULL_EPOCHS):
        order = torch.randperm(len(subset), generator=generator).tolist()
        for batch in batches(Subset(subset, order), FULL_BATCH):
            optimizer.zero_grad()
            masked_bce(model(batch), batch["labels"].masked_fill(batch["labels"] == -1, float("nan"))).backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def model_scores(model: Classifier, cohort) -> np.ndarray:
    """Sigmoid scores of a fine-tuned model on a cohort."""
    return torch.cat([torch.sigmoid(model(b)) for b in batches(cohort)]).numpy()


def finetune_full(ctx: TaskContext, fraction: float, seed: int) -> TaskOutcome:
    """Full fine-tuning of the image encoder with a linear head."""
    keep = few_shot_indices(ctx.labels("train"), fraction, seed, ctx.dataset.split_hash)

    def candidates():
        for lr in FULL_LR_GRID:
            model = train_full(ctx, keep, lr, seed)
            yield lr, lambda split, model=model: model_scores(model, ctx.cohort(split))

    return select_and_score(ctx, candidates(), {"n_train": len(keep), "epochs": FULL_EPOCHS})
