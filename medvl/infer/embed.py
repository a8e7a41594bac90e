"""Embedding images, volumes and texts with a :class:`~medvl.models.vlm.VisionLanguageModel` in batches."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


@contextlib.contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """Run the block with ``model`` in eval mode (no dropout, running batch-norm statistics), then restore it."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def uses_slices(model: Any) -> bool:
    """True when the model encodes volumes, by slice pooling or with a 3D encoder (its image inputs go through
    ``encode_volume``; a 2D image is a one-slice volume, whose embedding equals ``encode_image``'s with slice
    pooling, and a constant stack through a 3D encoder)."""
    return bool(getattr(model, "encodes_volumes", False))


def as_volume_batch(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(slices, z_mm, pad_mask)`` of a collated batch; 2D images become 1-slice volumes."""
    image = batch["image"]
    if image.ndim == 4:  # (B, 1, H, W): all 2D
        return image.unsqueeze(1), torch.zeros(image.shape[0], 1), torch.zeros(image.shape[0], 1, dtype=torch.bool)
    return image, batch["z_mm"], batch["key_padding_mask"]


def image_inputs(model: Any, batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """Keyword inputs of ``model.forward`` for the images of a collated batch."""
    if uses_slices(model) or batch["image"].ndim == 5:
        if not uses_slices(model):
            raise ValueError("the batch holds volumes but the model encodes none (no slice_pooling or volume_encoder); use 2D items")
        slices, z_mm, pad = as_volume_batch(batch)
        return {"slices": slices.to(device), "z_mm": z_mm.to(device), "pad_mask": pad.to(device)}
    return {"images": batch["image"].to(device)}


@torch.no_grad()
def encode_batch_images(model: Any, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Normalised image embeddings ``(B, D)`` of a collated batch and slice weights for volumes (else None), in eval mode."""
    inputs = image_inputs(model, batch, device)
    with evaluating(model):
        if "images" in inputs:
            return model.encode_image(inputs["images"]), None
        out = model.encode_volume(inputs["slices"], inputs["z_mm"], inputs["pad_mask"])
        return out.embedding, out.slice_weights


@torch.no_grad()
def encode_texts(model: Any, texts: Sequence[str], device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """Normalised text embeddings ``(N, D)`` on the CPU, in eval mode (no dropout)."""
    chunks = []
    with evaluating(model):
        for start in range(0, len(texts), batch_size):
            tokens = model.tokenize(list(texts[start : start + batch_size]))
            chunks.append(model.encode_text(tokens["input_ids"].to(device), tokens["attention_mask"].to(device)).float().cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, model.config["embed_dim"])


@dataclass
class PairEmbeddings:
    """Embeddings of an evaluation set, row-aligned."""

    image: torch.Tensor
    text: torch.Tensor
    labels: np.ndarray
    study_ids: list[str]
    texts: list[str]


@torch.no_grad()
def embed_pairs(model: Any, dataset: Dataset, collate: Any, device: torch.device, batch_size: int = 32) -> PairEmbeddings:
    """Image and text embeddings of every item of ``dataset`` (items carry ``image`` and ``text``), in eval mode."""
    images, texts, labels, ids = [], [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
        emb, _ = encode_batch_images(model, batch, device)
        images.append(emb.float().cpu())
        texts.extend(batch["text"])
        labels.append(batch["labels"].numpy())
        ids.extend(batch["study_id"])
    text_emb = encode_texts(model, texts, device, batch_size)
    return PairEmbeddings(torch.cat(images), text_emb, np.concatenate(labels), ids, texts)
