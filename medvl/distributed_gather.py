"""Gather embeddings from every rank so contrastive losses see the global batch (as open_clip does).

Two ways to gather, both built on plain ``torch.distributed.all_gather``:

- ``gather_with_grad=False``: gather copies without autograd and put the local tensor (which carries the
  graph) back in its place. Gradients flow only into this rank's own features. If every rank then computes
  the full-batch loss ``L``, rank ``r`` obtains exactly the part of ``dL/dtheta`` that passes through its
  own samples; the full gradient is the *sum* over ranks, while DDP *averages*, so the gradient comes out
  divided by the world size ``W``. :class:`medvl.losses.ContrastiveLoss` multiplies the gradient reaching
  the local features by ``W`` (:func:`scale_gradient`) before gathering; shared parameters used inside the
  loss (the logit scale) already get the full gradient on every rank and are left alone.
- ``gather_with_grad=True``: an autograd all-gather whose backward all-reduces (sums) the incoming gradient
  and keeps this rank's slice. With the full loss on every rank, each rank's features receive
  ``W * dL/dx``; DDP's average then gives exactly ``dL/dtheta``. With ``local_loss`` (rank ``r`` computes
  only its rows' share ``L_r``, ``L = mean_r L_r``) the sum over ranks gives ``W * dL/dx`` likewise.

``local_loss`` without ``gather_with_grad`` would drop the other ranks' terms from the gradient and is refused.
The deprecated ``torch.distributed.nn.functional.all_gather`` is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class GatheredFeatures:
    """Global-batch features and the query rows this rank scores (all rows unless ``local_loss``)."""

    image: torch.Tensor
    text: torch.Tensor
    rows: slice | None


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums the gradient over ranks and returns this rank's slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: D102
        rank, world = _world()
        ctx.rank, ctx.rows = rank, tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by a constant."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, factor: float) -> torch.Tensor:  # noqa: D102
        ctx.factor = factor
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return grad * ctx.factor, None


def scale_gradient(tensor: torch.Tensor, factor: float) -> torch.Tensor:
    """``tensor`` unchanged, but the gradient flowing back through it is multiplied by ``factor``."""
    return _ScaleGradient.apply(tensor, factor)


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return _world()[1]


def _check_equal_batches(tensor: torch.Tensor, world: int) -> None:
    sizes = [torch.zeros(1, dtype=torch.long, device=tensor.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([tensor.shape[0]], device=tensor.device))
    if len({int(s) for s in sizes}) > 1:
        raise ValueError(f"per-rank batch sizes differ ({[int(s) for s in sizes]}): use equal batches on every rank")


def _gather_local_back(tensor: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    parts = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(parts, tensor.detach().contiguous())
    parts[rank] = tensor
    return torch.cat(parts)


def gather_tensor(tensor: torch.Tensor, check_sizes: bool = True) -> torch.Tensor:
    """All ranks' ``tensor`` along dim 0, gathered without autograd but with the local tensor put back in place.

    Returns ``tensor`` itself when not distributed. ``check_sizes`` compares the ranks' batch sizes first (one
    extra collective and a host sync; callers that guarantee equal sizes can skip it).
    """
    rank, world = _world()
    if world == 1:
        return tensor
    if check_sizes:
        _check_equal_batches(tensor, world)
    return _gather_local_back(tensor, rank, world)


def gather_features(
    image: torch.Tensor, text: torch.Tensor, *, local_loss: bool, gather_with_grad: bool, check_sizes: bool = True
) -> GatheredFeatures:
    """Image and text features of the global batch, in rank order, and this rank's rows.

    Args:
        image, text: this rank's ``(B, D)`` features (the same ``B`` on every rank).
        local_loss: return ``rows`` = this rank's slice, so the loss scores only local queries.
        gather_with_grad: gather with autograd (see the module docstring for the gradient factors).
        check_sizes: compare the ranks' batch sizes first (see :func:`gather_tensor`).
    """
    if local_loss and not gather_with_grad:
        raise ValueError("local_loss needs gather_with_grad: without it the gradients miss other ranks' terms")
    rank, world = _world()
    if world == 1:
        return GatheredFeatures(image, text, None)
    if check_sizes:
        _check_equal_batches(image, world)
    if gather_with_grad:
        all_image, all_text = _AllGatherWithGrad.apply(image), _AllGatherWithGrad.apply(text)
    else:
        all_image, all_text = _gather_local_back(image, rank, world), _gather_local_back(text, rank, world)
    b = image.shape[0]
    return GatheredFeatures(all_image, all_text, slice(rank * b, (rank + 1) * b) if local_loss else None)
