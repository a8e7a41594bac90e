"""One optimizer step's gradients from the real trainer: ``python pretrain_step_worker.py OUT.pt KEY=VALUE ...``.

Run directly for one process or under ``torchrun`` for several; rank 0 writes the (rank-averaged) loss and
the parameters' gradients (averaged over ranks by DDP or FSDP, gathered whole under FSDP) to ``OUT.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from medvl.config import load_config
from medvl.train import distributed
from medvl.train.settings import PretrainConfig
from medvl.train.trainer import Trainer


def _step(overrides: list[str], info: distributed.DistInfo) -> dict:
    trainer = Trainer.for_config(load_config(PretrainConfig, None, overrides), info)
    batches = trainer._batches()
    total, _ = trainer.compute_gradients([next(batches) for _ in range(trainer.cfg.train.grad_accum)])
    grads = {}
    for name, param in trainer.model.named_parameters():
        if param.grad is not None:
            grad = param.grad
            grads[name] = (grad.full_tensor() if hasattr(grad, "full_tensor") else grad).detach().cpu().clone()
    return {"loss": float(distributed.all_reduce_mean(total)), "grads": grads}


def first_step_gradients(overrides: list[str]) -> dict | None:
    """Loss and gradients of the first optimizer step of a run with ``overrides`` (None on ranks other than 0)."""
    info = distributed.setup()
    try:
        result = _step(overrides, info)  # the trainer (and DDP's reducer) is gone before the group is destroyed
        return result if info.is_main else None
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    result = first_step_gradients(sys.argv[2:])
    if result is not None:
        torch.save(result, Path(sys.argv[1]))
