"""Optimizer parameter groups as open_clip builds them: weight decay on weight matrices only, one learning rate
per part of the model.

No decay on parameters with fewer than two dimensions (biases, norm weights, scalars such as ``logit_scale``),
on ``nn.Embedding`` weights, and on parameters whose name holds one of :data:`NO_DECAY_NAMES` (position
embeddings, CLS / register / mask tokens, Swin's relative position bias table, logit parameters, gains).
"""

from __future__ import annotations

from typing import Any

from torch import nn

NO_DECAY_NAMES = ("embed", "token", "logit_scale", "logit_bias", "gain", "relative_position_bias_table")


def decays(module: nn.Module, name: str, param: nn.Parameter) -> bool:
    """Whether ``module``'s own parameter ``name`` takes weight decay (see the module docstring)."""
    return param.ndim >= 2 and not isinstance(module, nn.Embedding) and not any(key in name for key in NO_DECAY_NAMES)


def decay_groups(
    part: str, modules: list[nn.Module], lr: float, weight_decay: float, seen: set[int]
) -> list[dict[str, Any]]:
    """``<part>/decay`` and ``<part>/no_decay`` groups of the trainable parameters of ``modules`` not in ``seen``.

    Each parameter's id is added to ``seen``, so a later part takes only what is left; empty groups are left out.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in modules:
        for sub in module.modules():
            for name, param in sub.named_parameters(recurse=False):
                if not param.requires_grad or id(param) in seen:
                    continue
                seen.add(id(param))
                (decay if decays(sub, name, param) else no_decay).append(param)
    groups = [
        {"name": f"{part}/decay", "params": decay, "lr": lr, "weight_decay": weight_decay},
        {"name": f"{part}/no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]
