"""2D image encoders for single-channel images, exposing their feature maps: MONAI networks built here, or
Hugging Face vision models (``arch: hf``, :mod:`medvl.models.hf_image`).

Every encoder takes channel-first grayscale batches ``(B, 1, H, W)`` and offers

- ``feature_map(images) -> (B, C, h, w)``: the last stage's region features (CNN cells or ViT patch tokens),
  used for attribution heatmaps and patch-level losses;
- ``feature_pyramid(images) -> list[Tensor]``: one map per stage, coarsest last (for a segmentation decoder);
- ``forward(images) -> (B, C)``: the global feature, the spatial mean (``global_pool: avg``, the default) or
  maximum (``global_pool: max``, better for small focal findings) of ``feature_map``.

Because the global feature pools the region features channel by channel, a region's feature and the image's
feature live in the same space, which is what makes patch embeddings comparable with text embeddings.

MONAI and transformers are imported when an encoder is built (importing them takes seconds), so configs
resolve without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from medvl.config import Number, check_non_empty, check_range, field_error
from medvl.models.config import Section, local_path, resolve_section

HF_ARCH = "hf"  # a Hugging Face vision model (medvl.models.hf_image)
ResNetArch = Literal["resnet18", "resnet50"]
Norm = Literal["batch", "instance", "group"]
GlobalPool = Literal["avg", "max"]


@dataclass(frozen=True)
class ImageConfig(Section):
    """The keys of every ``image`` section; each ``arch`` adds its own (:data:`IMAGE_CONFIGS`)."""

    arch: Literal[ResNetArch, "densenet121", "vit", "hf"]
    image_size: int = 224
    global_pool: GlobalPool = "avg"

    def __post_init__(self) -> None:
        check_range("image_size", self.image_size, 32)


@dataclass(frozen=True)
class ResNetConfig(ImageConfig):
    """MONAI ResNet-18/50 (:class:`ResNetEncoder`)."""

    widen_factor: Number = 1.0
    norm: Norm = "batch"


@dataclass(frozen=True)
class DenseNetConfig(ImageConfig):
    """MONAI DenseNet-121 (:class:`DenseNetEncoder`)."""

    init_features: int = 64
    growth_rate: int = 32
    norm: Norm = "batch"


@dataclass(frozen=True)
class ViTConfig(ImageConfig):
    """MONAI ViT (:class:`ViTEncoder`): ``image_size`` a multiple of ``patch_size``, ``hidden_size`` of ``num_heads``."""

    patch_size: int = 16
    """Side of the square patches, in pixels."""
    hidden_size: int = 768
    mlp_dim: int = 3072
    """Width of each block's feed-forward layer."""
    num_layers: int = 12
    num_heads: int = 12
    dropout: Number = 0.0
    pos_embed_type: str = "learnable"
    """MONAI's position embedding: ``learnable``, ``sincos`` or ``none``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("patch_size", "hidden_size", "mlp_dim", "num_layers", "num_heads"):
            check_range(key, getattr(self, key), 1)
        if self.image_size % self.patch_size:
            raise field_error("image_size", f"{self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise field_error("hidden_size", f"{self.hidden_size} is not divisible by num_heads {self.num_heads}")


@dataclass(frozen=True)
class HFImageConfig(ImageConfig):
    """A Hugging Face vision model (:mod:`medvl.models.hf_image`): pretrained from ``path`` or random from ``hf_config``."""

    path: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    hf_config: dict[str, Any] | None = None
    image_mean: list[Number] | None = None
    image_std: list[Number] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hf_config is None and not self.path:
            raise field_error("path", "required for arch 'hf': a hub id or a local save_pretrained folder (or give hf_config)")
        if self.hf_config is not None and "model_type" not in self.hf_config:
            raise field_error("hf_config", f"expected a transformers config mapping with a model_type, got {self.hf_config!r}")
        if self.hf_config is not None and self.path and "auto_map" not in self.hf_config:
            raise field_error(
                "path",
                "give path (pretrained weights) or hf_config (random weights), not both; with hf_config, path only "
                "names the folder of the custom code its auto_map refers to",
            )
        check_non_empty("path", self.path)
        check_non_empty("revision", self.revision)
        for key in ("image_mean", "image_std"):
            if getattr(self, key) == []:
                raise field_error(key, "expected a list of numbers (one per channel), got []")
        for value in self.image_std or ():
            check_range("image_std", value, 1e-6)


IMAGE_CONFIGS: dict[str, type[ImageConfig]] = {
    "resnet18": ResNetConfig,
    "resnet50": ResNetConfig,
    "densenet121": DenseNetConfig,
    "vit": ViTConfig,
    HF_ARCH: HFImageConfig,
}


def resolve_image_config(given: Any, where: str, base_dir: Path | None = None) -> dict[str, Any]:
    """The ``image`` section with the chosen architecture's defaults filled in and checked; a relative
    ``path`` (``arch: hf``) is made absolute against ``base_dir`` when it names an existing folder."""
    arch = given.get("arch") if isinstance(given, Mapping) else None
    selected = resolve_section(ImageConfig, {"arch": arch}, where)["arch"]  # a missing or unknown arch is refused first
    cfg = resolve_section(IMAGE_CONFIGS[selected], given, where)
    if selected == HF_ARCH:
        cfg["path"] = local_path(cfg["path"], base_dir)
    return cfg


def quarter_layers(num_layers: int) -> list[int]:
    """The (1-based) transformer layers after each quarter of ``num_layers``, as UNETR taps them."""
    return sorted({max(1, round(num_layers * q / 4)) for q in (1, 2, 3)})


INSTANCE_NORMS: dict[type[nn.Module], type[nn.Module]] = {
    nn.BatchNorm1d: nn.InstanceNorm1d,
    nn.BatchNorm2d: nn.InstanceNorm2d,
    nn.BatchNorm3d: nn.InstanceNorm3d,
}


def replace_batch_norm(module: nn.Module, norm: str) -> None:
    """Swap every ``BatchNorm1d/2d/3d`` in ``module`` for ``GroupNorm(8, C)`` or an affine instance norm of the
    same dimensionality (in place), so 2D and 3D networks alike can drop batch statistics.

    Done after building because MONAI's ResNet applies its ``norm`` argument to the stem only.
    """
    for name, child in module.named_children():
        instance_norm = INSTANCE_NORMS.get(type(child))
        if instance_norm is not None:
            c = child.num_features
            setattr(module, name, nn.GroupNorm(8, c) if norm == "group" else instance_norm(c, affine=True))
        else:
            replace_batch_norm(child, norm)


def check_images(images: torch.Tensor, name: str = "images") -> None:
    """Raise ``ValueError`` unless ``images`` is a float ``(B, 1, H, W)`` batch."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name}: expected a (B, 1, H, W) single-channel batch, got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"{name}: expected floating-point pixels, got {images.dtype}; convert with .float()")


def resnet_stages(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The feature maps after each of a MONAI ResNet's four stages (2D or 3D), stem first."""
    x = net.maxpool(net.act(net.bn1(net.conv1(x))))
    maps = []
    for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = stage(x)
        maps.append(x)
    return maps


class ImageEncoder(nn.Module):
    """Base class: subclasses set ``out_channels`` and implement :meth:`feature_pyramid`."""

    out_channels: int
    global_pool: str = "avg"
    channels_last: bool = False  # convolutions run faster on GPUs with NHWC memory layout

    def pool_regions(self, regions: torch.Tensor) -> torch.Tensor:
        """Global features ``(B, C)`` from region features ``(B, N, C)`` (mean or max over regions)."""
        return regions.amax(dim=1) if self.global_pool == "max" else regions.mean(dim=1)

    def feature_pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps ``(B, C_k, h_k, w_k)`` of each stage, the last one being :meth:`feature_map`."""
        raise NotImplementedError

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """The last stage's region features ``(B, out_channels, h, w)``."""
        return self.feature_pyramid(images)[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Global features ``(B, out_channels)``: the feature map pooled over space (``global_pool``)."""
        return self.pool_regions(self.feature_map(images).flatten(2).transpose(1, 2))


class ResNetEncoder(ImageEncoder):
    """MONAI ResNet-18/50 with the stride-2 stem (``conv1_t_stride=2``); stages at strides 4, 8, 16, 32."""

    channels_last = True

    def __init__(self, arch: str, widen_factor: float = 1.0, norm: str = "batch") -> None:
        from monai.networks.nets import resnet18, resnet50

        super().__init__()
        factory = {"resnet18": resnet18, "resnet50": resnet50}[arch]
        self.net = factory(
            spatial_dims=2,
            n_input_channels=1,
            conv1_t_stride=2,
            feed_forward=False,
            shortcut_type="B",
            bias_downsample=False,
            widen_factor=widen_factor,
        )
        if norm != "batch":
            replace_batch_norm(self.net, norm)
        self.out_channels = self.net.in_planes

    def feature_pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        check_images(images)
        return resnet_stages(self.net, images)


class DenseNetEncoder(ImageEncoder):
    """MONAI DenseNet-121; maps after dense blocks 1-3 (strides 4, 8, 16) and the final normalised block (32)."""

    channels_last = True

    def __init__(self, init_features: int = 64, growth_rate: int = 32, norm: str = "batch") -> None:
        from monai.networks.nets import densenet121

        super().__init__()
        net = densenet121(spatial_dims=2, in_channels=1, out_channels=1, init_features=init_features, growth_rate=growth_rate)
        self.features = net.features  # the classifier is dropped: unused parameters would stall DDP
        self.act = nn.ReLU()
        self.out_channels = self.features.norm5.num_features
        if norm != "batch":
            replace_batch_norm(self.features, norm)

    def feature_pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        check_images(images)
        maps = []
        x = images
        for name, layer in self.features.named_children():
            x = layer(x)
            if name in ("denseblock1", "denseblock2", "denseblock3"):
                maps.append(x)
        maps.append(self.act(x))
        return maps


class ViTEncoder(ImageEncoder):
    """MONAI ViT (``classification=False``, conv patch embedding); patch tokens form the feature map.

    The pyramid holds the tokens after each quarter of the blocks (all at the patch stride), as UNETR does.
    Inputs must have exactly the configured ``image_size`` (the position embedding is learned per patch).
    """

    def __init__(
        self,
        image_size: int,
        patch_size: int = 16,
        hidden_size: int = 768,
        mlp_dim: int = 3072,
        num_layers: int = 12,
        num_heads: int = 12,
        dropout: float = 0.0,
        pos_embed_type: str = "learnable",
    ) -> None:
        from monai.networks.nets import ViT

        super().__init__()
        self.image_size = image_size
        self.grid = image_size // patch_size
        self.net = ViT(
            in_channels=1,
            img_size=image_size,
            patch_size=patch_size,
            hidden_size=hidden_size,
            mlp_dim=mlp_dim,
            num_layers=num_layers,
            num_heads=num_heads,
            proj_type="conv",
            pos_embed_type=pos_embed_type,
            classification=False,
            dropout_rate=dropout,
            spatial_dims=2,
            qkv_bias=True,
        )
        for block in self.net.blocks:  # MONAI builds this norm even without cross-attention; idle under DDP
            block.norm_cross_attn = nn.Identity()
            block.attn.use_flash_attention = dropout == 0.0  # SDPA (flash / memory-efficient kernels on GPUs)
        self.out_channels = hidden_size
        self.pyramid_layers = quarter_layers(num_layers)

    def _to_map(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, c = tokens.shape
        return tokens.transpose(1, 2).reshape(b, c, self.grid, self.grid)

    def feature_pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        check_images(images)
        if tuple(images.shape[2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"images: ViT expects {self.image_size}x{self.image_size} pixels, got {tuple(images.shape[2:])}; "
                "resize the input or build the model with image.image_size set to the input size"
            )
        tokens, hidden = self.net(images)
        return [self._to_map(hidden[i - 1]) for i in self.pyramid_layers] + [self._to_map(tokens)]


def build_image_encoder(cfg: dict[str, Any]) -> ImageEncoder:
    """The encoder described by a resolved ``image`` config section (an ``hf`` encoder fills in its
    ``image_mean`` / ``image_std``)."""
    params = {k: v for k, v in cfg.items() if k not in ("arch", "image_size", "global_pool")}
    if cfg["arch"] == HF_ARCH:
        from medvl.models.hf_image import HFImageEncoder

        encoder: ImageEncoder = HFImageEncoder(cfg)
    elif cfg["arch"] in ("resnet18", "resnet50"):
        encoder = ResNetEncoder(cfg["arch"], **params)
    elif cfg["arch"] == "densenet121":
        encoder = DenseNetEncoder(**params)
    else:
        encoder = ViTEncoder(cfg["image_size"], **params)
    encoder.global_pool = cfg["global_pool"]
    return encoder
