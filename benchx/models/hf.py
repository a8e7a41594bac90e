"""Any Hugging Face vision (or CLIP-style vision-text) model from a local folder: ``hf:/path/to/model``.

Vision models get the grey image repeated over their input channels, resized to their ``image_size``; the
embedding is the pooled output (else the mean of the last hidden state), L2-normalised. CLIP-style models
(``get_image_features`` / ``get_text_features``) also encode texts with the folder's tokenizer. Feature maps
are the encoder's hidden states: 4-D maps as they are, token sequences reshaped onto their patch grid.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchx.errors import BenchxError
from benchx.models.base import ModelInfo

FEATURE_LEVELS = 3


class HFAdapter:
    """A transformers ``AutoModel`` in eval mode."""

    logit_scale = 1.0 / 0.07
    crop_body = False

    def __init__(self, model: nn.Module, tokenizer, info: ModelInfo) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.info = info
        self.has_text = tokenizer is not None and hasattr(model, "get_text_features")
        vision = getattr(model.config, "vision_config", model.config)
        self.channels = int(getattr(vision, "num_channels", 3))
        self.image_size = getattr(vision, "image_size", None)

    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        if self.image_size:
            size = self.image_size if isinstance(self.image_size, int) else tuple(self.image_size)
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        return images.expand(-1, self.channels, -1, -1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled (or mean) vision features, normalised."""
        pixels = self._pixels(images)
        if hasattr(self.model, "get_image_features"):
            return F.normalize(_tensor(self.model.get_image_features(pixel_values=pixels)), dim=-1)
        out = self.model(pixel_values=pixels)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state.flatten(2).mean(-1) if out.last_hidden_state.ndim == 4 else out.last_hidden_state.mean(1)
        return F.normalize(pooled.flatten(1), dim=-1)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Text features of a CLIP-style model, normalised."""
        if not self.has_text:
            raise BenchxError(f"{self.info.ref}: this Hugging Face model has no text tower")
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
        return F.normalize(_tensor(self.model.get_text_features(**tokens)), dim=-1)

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The last hidden states as ``(B, C, h, w)`` maps."""
        model = getattr(self.model, "vision_model", self.model)
        out = model(pixel_values=self._pixels(images), output_hidden_states=True)
        return [_as_map(h) for h in out.hidden_states[-FEATURE_LEVELS:]]

    def trainable(self) -> nn.Module:
        """The whole model."""
        return self.model


def _tensor(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _as_map(hidden: torch.Tensor) -> torch.Tensor:
    """A 4-D map as it is; a token sequence (with an optional class token) on its square patch grid."""
    if hidden.ndim == 4:
        return hidden
    tokens = hidden.shape[1]
    side = math.isqrt(tokens)
    if side * side != tokens:
        hidden, side = hidden[:, 1:], math.isqrt(tokens - 1)
    return hidden.transpose(1, 2).reshape(hidden.shape[0], hidden.shape[2], side, side)


def load_hf(path: str, tracking_uri: str | None = None) -> HFAdapter:
    """A local Hugging Face model folder (no downloads)."""
    from transformers import AutoModel, AutoTokenizer

    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise BenchxError(f"hf:{path}: not a Hugging Face model folder (no config.json)")
    model = AutoModel.from_pretrained(folder, local_files_only=True)
    tokenizer = None
    if any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    info = ModelInfo(f"hf:{path}", folder.name, "", folder_fingerprint(folder))
    return HFAdapter(model, tokenizer, info)


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 of every file of a folder (relative names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
