"""Learning-rate schedules: linear warm-up then cosine decay, or reduce-on-plateau."""

from __future__ import annotations

import math

import torch


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Multiply each group's lr by a linear warm-up over ``warmup_steps``, then a cosine to ``min_ratio``."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def plateau(optimizer: torch.optim.Optimizer, patience: int = 2, factor: float = 0.5) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    """Halve the lr (by default) when the validation metric stops improving (mode ``max``)."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=patience, factor=factor)
