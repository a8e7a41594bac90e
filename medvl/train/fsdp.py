"""FSDP2 for the pretraining loop: sharded towers, replicated heads, sharded checkpoints, full-weight export.

``train.strategy=fsdp`` shards the two towers (the image and the text encoder, where nearly all parameters
live) with ``torch.distributed.fsdp.fully_shard``. The small rest (projection heads, slice pooling, logit
scale and bias, including the scalar parameters FSDP cannot shard) stays replicated: every rank holds it
whole and its gradients are averaged over ranks after backward (:func:`average_gradients`), which is what DDP
would do for it.

Every function here is collective: all ranks call it, in the same order.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.tensor import DTensor

SHARDED_TOWERS = ("image_encoder", "text_encoder")
EXTRA_FILE = "extra.pt"


def shard_towers(model: nn.Module) -> list[nn.Parameter]:
    """Shard each tower in place; return the replicated parameters that need :func:`average_gradients`."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    for name in SHARDED_TOWERS:
        fully_shard(getattr(model, name))
    register_fsdp_forward_method(model.image_encoder, "feature_map")  # the model's entry point into the tower
    prefixes = tuple(f"{name}." for name in SHARDED_TOWERS)
    return [p for n, p in model.named_parameters() if not n.startswith(prefixes)]


def average_gradients(params: list[nn.Parameter]) -> None:
    """Average the gradients of replicated parameters over ranks (one flat all-reduce)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def clip_gradients(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip the global gradient norm over sharded (DTensor) and replicated parameters alike; return the norm."""
    sharded = [p.grad for p in params if p.grad is not None and isinstance(p.grad, DTensor)]
    plain = [p.grad for p in params if p.grad is not None and not isinstance(p.grad, DTensor)]
    squares = []
    if sharded:
        squares.append(torch.nn.utils.get_total_norm(sharded).full_tensor() ** 2)
    if plain:
        squares.append(torch.nn.utils.get_total_norm(plain) ** 2)
    norm = torch.stack(squares).sum().sqrt()
    torch.nn.utils.clip_grads_with_norm_(sharded, max_norm, norm)
    torch.nn.utils.clip_grads_with_norm_(plain, max_norm, norm)
    return norm


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on rank 0's CPU (empty on other ranks), gathered from the shards."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_sharded(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, extra: dict[str, Any]) -> Path:
    """Write model and optimizer shards with ``torch.distributed.checkpoint``, plus rank 0's ``extra`` (state,
    scheduler, RNG states, config), to a temporary folder renamed to ``directory`` once every rank is done."""
    tmp = directory.with_name(f".{directory.name}.tmp")
    if dist.get_rank() == 0 and tmp.exists():
        shutil.rmtree(tmp)  # what a killed save left behind
    dist.barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp))
    if dist.get_rank() == 0:
        torch.save(extra, tmp / EXTRA_FILE)
    dist.barrier()
    if dist.get_rank() == 0:
        old = directory.with_name(f".{directory.name}.old")
        if directory.exists():
            shutil.rmtree(old, ignore_errors=True)  # left by a save killed after its second rename
            directory.rename(old)
        tmp.rename(directory)
        shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return directory


def load_sharded(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_sharded` wrote into the (already sharded) model and optimizer; return ``extra``.

    A save killed between its two renames left the previous checkpoint as ``.<name>.old``: that one is read."""
    old = directory.with_name(f".{directory.name}.old")
    if not directory.exists() and (old / EXTRA_FILE).is_file():
        directory = old
    if not (directory / EXTRA_FILE).is_file():
        raise FileNotFoundError(f"{directory}: no sharded checkpoint to resume from")
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(directory))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    return torch.load(directory / EXTRA_FILE, map_location="cpu", weights_only=False)
