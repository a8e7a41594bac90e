"""Adapters for medvl models: saved folders, ``medvl pretrain`` runs, MLflow URIs, random-initialised baselines."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from benchx.errors import BenchxError, UnknownNameError
from benchx.models.base import ModelInfo, slice_mean

RANDOM_SEED = 0
MODEL_REFS_HELP = ("a model folder, a medvl pretrain run folder, models:/NAME@ALIAS, models:/NAME/VERSION, "
                   "runs:/RUN_ID/model, random:ARCH or hf:PATH")


class MedvlAdapter:
    """A :class:`medvl.models.vlm.VisionLanguageModel` as a benchx model (eval mode, on the CPU).

    ``input_size``: the side the model was trained at (the ``preprocess.json`` that ``medvl pretrain`` saves);
    images of a dataset prepared at another size are resized to it, so a CNN sees anatomy at the pixel scale it
    learnt. None (a random baseline, a model saved without it) takes images as the dataset prepares them.
    ``crop_body``: the model was trained on CT cropped to the body (``preprocess.json`` again), so benchx
    prepares a dataset's CT that way too.
    """

    has_text = True

    def __init__(self, model: nn.Module, info: ModelInfo, input_size: int | None = None, crop_body: bool = False) -> None:
        self.model = model.eval()
        self.info = info
        self.input_size = input_size
        self.crop_body = crop_body

    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        """``(..., 1, H, W)`` images at the model's input size."""
        if not self.input_size or tuple(images.shape[-2:]) == (self.input_size, self.input_size):
            return images
        flat = images.reshape(-1, *images.shape[-3:])
        resized = F.interpolate(flat, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return resized.reshape(*images.shape[:-2], self.input_size, self.input_size)

    @property
    def logit_scale(self) -> float:
        """The similarity scale zero-shot classification uses (the model's own)."""
        from medvl.infer.zeroshot import logit_scale_of

        return logit_scale_of(self.model)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised image embeddings."""
        return self.model.encode_image(self._pixels(images))

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalised text embeddings (64 texts at a time)."""
        from medvl.infer.embed import encode_texts

        return encode_texts(self.model, list(texts), torch.device("cpu"))

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The image encoder's feature pyramid."""
        return self.model.feature_pyramid(self._pixels(images))

    def encode_volume(self, slices: torch.Tensor, z_mm: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """The model's own volume encoding (slice pooling or a 3D encoder) when it has one, else the normalised
        mean of its slice embeddings."""
        slices = self._pixels(slices)
        if self.model.encodes_volumes:
            return self.model.encode_volume(slices, z_mm, pad_mask).embedding
        return slice_mean(self.model.encode_image, slices, pad_mask)

    def trainable(self) -> nn.Module:
        """The whole model (full fine-tuning trains the image encoder through it)."""
        return self.model


def load_medvl(ref: str, tracking_uri: str | None = None) -> MedvlAdapter:
    """A saved medvl model from a folder, run folder or MLflow URI (:func:`medvl.infer.model_ref.resolve_model`)."""
    from medvl.infer.loading import PREPROCESS_FILE, load_for_inference
    from medvl.infer.model_ref import ModelRefError, model_fingerprint, resolve_model

    try:
        resolved = resolve_model(ref, tracking_uri)
    except ModelRefError as exc:
        raise BenchxError(f"model {exc}; a model reference is {MODEL_REFS_HELP}") from exc
    model, prep = load_for_inference(resolved.model_dir)
    info = ModelInfo(ref, resolved.name, resolved.version, model_fingerprint(resolved.model_dir))
    trained_size = prep.size if (resolved.model_dir / PREPROCESS_FILE).is_file() else None
    return MedvlAdapter(model, info, input_size=trained_size, crop_body=prep.crop_body)


def load_random(arch: str, tracking_uri: str | None = None) -> MedvlAdapter:
    """A registry architecture with random weights (seed 0): the floor a pretrained model must beat."""
    from medvl.models.registry import build_model, list_models

    if arch not in list_models():
        raise UnknownNameError("architecture", arch, [f"random:{name}" for name in list_models()])
    torch.manual_seed(RANDOM_SEED)
    model = build_model(arch)
    return MedvlAdapter(model, ModelInfo(f"random:{arch}", f"random:{arch}", "", state_fingerprint(model)))


def state_fingerprint(model: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
