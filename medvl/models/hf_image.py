"""Hugging Face vision models as image towers (``image.arch: hf``).

``image.path`` names a hub id or a local ``save_pretrained`` folder (read at ``image.revision``; custom code
needs ``image.trust_remote_code: true``); ``image.hf_config``, a full transformers config, builds the model
with random weights instead (that is how a saved medvl model describes its tower). ``AutoModel`` loads the
base model; for a CLIP or SigLIP checkpoint, its vision tower (``CLIPVisionModel``, ``SiglipVisionModel``).

Inputs stay medvl's grayscale ``(B, 1, H, W)`` in [0, 1]: repeated to the model's ``num_channels`` and
normalised with its own ``image_mean`` / ``image_std`` (from ``preprocessor_config.json`` next to the weights,
else ImageNet's); the resolved config keeps both, so a saved model normalises the same way.

Region features (``feature_map``), pooled by ``global_pool`` into the global feature:

- CNNs (ResNet, ConvNeXt): the last stage's map;
- ViT-like (ViT, DINOv2, CLIP, SigLIP): the last layer's patch tokens on the ``H/p x W/p`` grid, without the
  CLS and register tokens;
- Swin: the last stage's tokens on that stage's grid.

A final norm that the model applies to its pooled output only (ConvNeXt's ``layernorm``, CLIP's
``post_layernorm``) is applied to every region. Parts outside this path (a pooler with weights, SigLIP's
attention-pooling head, the masked-image-modelling token) are removed, since DDP would wait for their gradients.

Other input sizes than the pretrained ``image_size`` interpolate the position embeddings
(``interpolate_pos_encoding=True``) where the model offers it (ViT, CLIP, SigLIP, Swin); DINOv2 always
interpolates and CNNs take any size.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medvl.models.config import ModelConfigError
from medvl.models.hf_loading import (
    config_from_dict,
    model_from_config,
    pretrained_config,
    pretrained_model,
    transformers_errors,
)
from medvl.models.image import ImageEncoder, check_images, quarter_layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROCESSOR_FILE = "preprocessor_config.json"
POOLED_ONLY_NORMS = {"convnext": "layernorm", "convnextv2": "layernorm", "clip_vision_model": "post_layernorm"}
STAGED_TOKEN_MODELS = ("swin", "swinv2")  # hierarchical transformers: the last stage's grid comes with the output


def _load_model(cfg: dict[str, Any]) -> nn.Module:
    """The vision model: built from ``hf_config``, or loaded from ``path`` (the vision part of a CLIP/SigLIP)."""
    trust = cfg["trust_remote_code"]
    if cfg["hf_config"] is not None:
        return model_from_config(config_from_dict(cfg["hf_config"], "image", cfg["path"], trust), "image", trust)
    config = pretrained_config(cfg["path"], "image", cfg["revision"], trust)
    vision = getattr(config, "vision_config", None) or config
    if hasattr(vision, "vision_use_head"):
        vision.vision_use_head = False  # SigLIP's attention-pooling head: the regions are pooled by medvl
    return pretrained_model(cfg["path"], "image", cfg["revision"], trust, config=vision)


def _drop_unused(model: nn.Module) -> None:
    """Remove a pooler with weights (ViT) and the masked-image-modelling token (DINOv2): never in the feature path."""
    pooler = getattr(model, "pooler", None)
    if pooler is not None and any(True for _ in pooler.parameters()):
        model.pooler = None
    embeddings = getattr(model, "embeddings", None)
    if getattr(embeddings, "mask_token", None) is not None:
        embeddings.mask_token = None


def _processor_stats(cfg: dict[str, Any]) -> dict[str, Any]:
    """``preprocessor_config.json`` of the folder or hub id (empty when there is none or the model is built from config)."""
    from transformers.utils import cached_file

    if cfg["hf_config"] is not None:
        return {}
    with transformers_errors("image", cfg["path"]):
        found = cached_file(cfg["path"], PROCESSOR_FILE, revision=cfg["revision"], _raise_exceptions_for_missing_entries=False)
    return json.loads(Path(found).read_text(encoding="utf-8")) if found else {}


def _normalisation(cfg: dict[str, Any], channels: int) -> tuple[list[float], list[float]]:
    """``image_mean`` / ``image_std``: the config's, else the processor's, else ImageNet's (averaged for 1 channel)."""
    processor = {} if cfg["image_mean"] is not None and cfg["image_std"] is not None else _processor_stats(cfg)
    if processor.get("do_normalize") is False:
        processor = {**processor, "image_mean": [0.0], "image_std": [1.0]}
    defaults = {"image_mean": list(IMAGENET_MEAN), "image_std": list(IMAGENET_STD)}
    if channels != 3:
        defaults = {key: [sum(values) / 3] for key, values in defaults.items()}
    stats = {}
    for key in ("image_mean", "image_std"):
        values = cfg[key] if cfg[key] is not None else processor.get(key, defaults[key])
        values = [float(v) for v in (values if isinstance(values, list | tuple) else [values])]
        if len(values) not in (1, channels):
            raise ModelConfigError(f"image.{key}", f"{len(values)} values for a model with {channels} input channels")
        stats[key] = values
    return stats["image_mean"], stats["image_std"]


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


CNN_MODEL_TYPES = frozenset({"resnet", "convnext", "convnextv2", "regnet", "efficientnet", "mobilenet_v2"})


class HFImageEncoder(ImageEncoder):
    """A transformers vision model as a medvl image encoder (see the module docstring).

    Args:
        cfg: a resolved ``image`` section with ``arch: hf``; ``image_mean`` / ``image_std`` are filled in place.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.model = _load_model(cfg)
        _drop_unused(self.model)
        config = self.model.config
        self.in_channels = int(getattr(config, "num_channels", 3))
        hidden_sizes = getattr(config, "hidden_sizes", None)
        self.out_channels = int(hidden_sizes[-1] if hidden_sizes else config.hidden_size)
        mean, std = _normalisation(cfg, self.in_channels)
        cfg["image_mean"], cfg["image_std"] = mean, std
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.pooled_only_norm = POOLED_ONLY_NORMS.get(config.model_type)
        self.staged = config.model_type in STAGED_TOKEN_MODELS
        self.native_size = _pair(config.image_size) if hasattr(config, "image_size") else None
        self.interpolates = "interpolate_pos_encoding" in inspect.signature(self.model.forward).parameters
        self.channels_last = config.model_type in CNN_MODEL_TYPES

    def _run(self, images: torch.Tensor, hidden_states: bool) -> Any:
        check_images(images)
        pixels = (images.expand(-1, self.in_channels, -1, -1) - self.mean) / self.std
        kwargs = {}
        if self.interpolates and tuple(images.shape[-2:]) != self.native_size:
            kwargs["interpolate_pos_encoding"] = True
        return self.model(pixel_values=pixels, output_hidden_states=hidden_states, **kwargs)

    def _grid(self, output: Any, size: tuple[int, int]) -> tuple[int, int]:
        """The ``(h, w)`` grid of the last layer's tokens."""
        if self.staged:
            return tuple(output.reshaped_hidden_states[-1].shape[-2:])
        ph, pw = _pair(self.model.config.patch_size)
        return size[0] // ph, size[1] // pw

    @staticmethod
    def _to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """``(B, N, C)`` tokens -> ``(B, C, h, w)``, dropping the leading CLS / register tokens."""
        patches = tokens[:, tokens.shape[1] - grid[0] * grid[1] :]
        return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)

    def _regions(self, output: Any, size: tuple[int, int]) -> torch.Tensor:
        """The feature map from the model output, with a pooled-only final norm applied to every region."""
        hidden = output.last_hidden_state
        cnn = hidden.ndim == 4
        grid = tuple(hidden.shape[-2:]) if cnn else self._grid(output, size)
        tokens = hidden.flatten(2).transpose(1, 2) if cnn else hidden
        if self.pooled_only_norm:
            tokens = getattr(self.model, self.pooled_only_norm)(tokens)
        return self._to_map(tokens, grid)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        return self._regions(self._run(images, hidden_states=self.staged), tuple(images.shape[-2:]))

    def feature_pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """CNNs and Swin: the last map of each resolution, finest first; ViT-like: the tokens after each quarter
        of the layers (as UNETR); the last map is always :meth:`feature_map`."""
        size = tuple(images.shape[-2:])
        output = self._run(images, hidden_states=True)
        fmap = self._regions(output, size)
        if self.staged or output.last_hidden_state.ndim == 4:
            stages = output.reshaped_hidden_states if self.staged else output.hidden_states
            by_size: dict[tuple[int, ...], torch.Tensor] = {}
            for stage_map in [*stages[:-1], fmap]:
                by_size[tuple(stage_map.shape[-2:])] = stage_map
            return list(by_size.values())
        grid = self._grid(output, size)
        layers = quarter_layers(len(output.hidden_states) - 1)
        return [self._to_map(output.hidden_states[i], grid) for i in layers] + [fmap]
