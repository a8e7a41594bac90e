"""Architecture configs: read a JSON/YAML file, fill defaults, refuse unknown keys and impossible values.

A config is a plain dict with the sections ``image``, ``text``, ``projection``, ``slice_pooling`` (or null),
``volume_encoder`` (or null; a native 3D encoder, the alternative to slice pooling), ``schedule``, ``logit`` and
``loss`` plus ``name``, ``description`` and ``embed_dim``. Every section is merged onto its defaults, so a
config file only states what differs; a key that no section knows is an error that names the key (typos never
pass silently). Each section is a dataclass built by :func:`medvl.config.build` (:func:`resolve_section`):
the top level and the ``projection``, ``schedule``, ``logit`` and ``loss`` sections here, ``image``, ``text``,
``slice_pooling`` and ``volume_encoder`` in their modules. The resolved dict (:func:`dataclasses.asdict`) is
what :class:`VisionLanguageModel` keeps as ``model.config`` and writes next to its weights.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from medvl.config import ConfigError, Number, build, check_range, field_error, merge_settings


class ModelConfigError(ConfigError):
    """An architecture config (or a file holding one) that cannot describe a model; names the field and reason."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        super().__init__(f"{where}: {reason}", reason=reason)


def _model_error(where: str, separator: str) -> Callable[[ConfigError], ModelConfigError]:
    """The ``error`` of :func:`build` for a config (section) named ``where``: the refusal as a ModelConfigError."""
    return lambda exc: ModelConfigError(f"{where}{separator}{exc.key}" if exc.key else where, exc.reason)


class Section:
    """An architecture config section: its keys are called keys in messages."""

    config_noun: ClassVar[str] = "key"


def resolve_section(cls: type, given: Any, where: str) -> dict[str, Any]:
    """The section dataclass ``cls`` built from ``given`` (null: all defaults), as a plain dict; a refusal is a
    ModelConfigError naming ``<where>.<key>``."""
    return dataclasses.asdict(build(cls, {} if given is None else given, error=_model_error(where, ".")))


@dataclass(frozen=True)
class ProjectionConfig(Section):
    """The projection heads: ``hidden_dim`` null for a linear head, else Linear-ReLU-Linear through it."""

    hidden_dim: int | None = None

    def __post_init__(self) -> None:
        if self.hidden_dim is not None:
            check_range("hidden_dim", self.hidden_dim, 1)


@dataclass(frozen=True)
class ScheduleConfig(Section):
    """The training stage and how the image encoder trains in it."""

    stage: Literal["2d", "volume"] = "2d"
    freeze_image_encoder: bool = False
    image_encoder_lr_scale: Number = 1.0

    def __post_init__(self) -> None:
        check_range("image_encoder_lr_scale", self.image_encoder_lr_scale, 0.0)


@dataclass(frozen=True)
class LogitConfig(Section):
    """Initial values and the cap of the learnable logit scales and biases."""

    init_temperature: Number = 0.07
    max_scale: Number = 100.0
    init_bias: Number = -10.0
    concept_init_scale: Number = 10.0
    concept_init_bias: Number = -5.0

    def __post_init__(self) -> None:
        for key in ("init_temperature", "max_scale", "concept_init_scale"):
            check_range(key, getattr(self, key), 1e-6)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a ``.json``, ``.yaml`` or ``.yml`` architecture file into a dict (no defaults applied)."""
    path = Path(path)
    if not path.is_file():
        raise ModelConfigError(str(path), "no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ModelConfigError(str(path), f"not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelConfigError(str(path), "the file must hold a mapping of config sections")
    return data


SWITCH_KEYS = {"image": "arch", "text": "source"}


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with ``overrides`` merged key by key, except that a section whose kind changes
    (``image.arch``, ``text.source``) is replaced whole, since the old kind's settings do not apply."""
    base = dict(raw)
    for section, key in SWITCH_KEYS.items():
        new = overrides.get(section)
        if isinstance(new, Mapping) and key in new and new[key] != (base.get(section) or {}).get(key):
            base[section] = {}
    return merge_settings(base, overrides)


def local_path(value: str | None, base_dir: Path | None) -> str | None:
    """``value`` made absolute against ``base_dir`` when that names an existing file or folder (else unchanged,
    e.g. a hub name)."""
    if value is None or base_dir is None or Path(value).is_absolute():
        return value
    candidate = base_dir / value
    return str(candidate.resolve()) if candidate.exists() else value


@dataclass(frozen=True)
class LossWeights(Section):
    """The weight of each loss term (at least one positive)."""

    convirt: Number = 1.0
    """ConVIRT's bidirectional InfoNCE at a fixed temperature (:func:`medvl.losses.convirt_loss`)."""
    clip: Number = 0.0
    """CLIP's InfoNCE with a learnt logit scale."""
    siglip: Number = 0.0
    """SigLIP's pairwise sigmoid loss with a learnt scale and bias."""
    soft_target: Number = 0.0
    """InfoNCE towards label-similarity targets (studies with the same findings are not negatives)."""
    concept: Number = 0.0
    """ConceptCLIP-style patch-concept alignment."""
    concept_spread: Number = 0.0
    """Keeps the concept names' text embeddings apart (with ``concept``; :func:`medvl.losses.concept_spread_loss`)."""
    polarity: Number = 0.0
    """Each image chooses between a finding's statement and its negation."""

    def __post_init__(self) -> None:
        for name, weight in dataclasses.asdict(self).items():
            check_range(name, weight, 0.0)


@dataclass(frozen=True)
class LossConfig(Section):
    """The ``loss`` section: term weights plus temperatures (see :class:`medvl.losses.ContrastiveLoss`)."""

    weights: LossWeights = field(default_factory=LossWeights)
    tau: Number = 0.1
    """ConVIRT's temperature."""
    lam: Number = 0.75
    """Weight of the image-to-text direction."""
    soft_target_tau: Number = 0.1
    """Temperature of the soft-target logits."""
    target_tau: Number = 0.1
    """Temperature of the label-similarity targets."""
    uncertain_as: Number = 1.0
    """The value an uncertain label counts as in the targets."""
    max_logit_scale: Number = 100.0
    """Cap of a learnt logit scale."""
    concept_negatives: Literal["volume", "slices"] = "volume"
    """What the concept term pushes down on a slice-pooled volume without a concept: its best region
    (``volume``) or every slice's best region, averaged (``slices``; see :func:`medvl.losses.concept_alignment_loss`)."""
    concept_pool_temperature: Number = 0.0
    """How the concept term pools an image's regions in training: 0 takes the best region (as the review app
    reads a finding), a temperature ``t > 0`` the smooth maximum ``t * logsumexp(cos / t)``, so regions close to
    the best also learn (a finding cannot settle on one lookalike slice type)."""

    def __post_init__(self) -> None:
        weights = dataclasses.asdict(self.weights)
        if not any(weights.values()):
            raise field_error("weights", f"at least one of {', '.join(weights)} needs a positive weight")
        if self.weights.concept_spread > 0 and self.weights.concept <= 0:
            raise field_error("weights.concept_spread", "keeps the concept term's names apart: it needs weights.concept > 0")
        for key in ("tau", "soft_target_tau", "target_tau", "max_logit_scale"):
            check_range(key, getattr(self, key), 1e-6)
        check_range("lam", self.lam, 0.0, 1)
        check_range("concept_pool_temperature", self.concept_pool_temperature, 0.0)
        check_range("uncertain_as", self.uncertain_as, 0.0)


@dataclass(frozen=True)
class ArchitectureConfig:
    """An architecture config before its ``image``, ``text``, ``slice_pooling`` and ``volume_encoder`` sections
    are resolved by their modules."""

    config_noun: ClassVar[str] = "section"
    name: str = ""
    description: str = ""
    embed_dim: int = 512
    image: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    slice_pooling: dict[str, Any] | None = None
    volume_encoder: dict[str, Any] | None = None
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    logit: LogitConfig = field(default_factory=LogitConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        check_range("embed_dim", self.embed_dim, 1)
        if self.image is None:
            raise field_error("image", "missing section (an 'arch' is required)")
        if self.slice_pooling is not None and self.volume_encoder is not None:
            raise field_error("volume_encoder", "a model encodes volumes by slice pooling or with a 3D encoder, "
                                                "not both: set slice_pooling to null")
        if self.schedule.stage == "volume" and self.slice_pooling is None:
            raise field_error("schedule.stage", "'volume' needs a slice_pooling section")


def resolve_loss_config(given: Any, where: str) -> dict[str, Any]:
    """The ``loss`` section of an architecture config with defaults filled in and checked."""
    return resolve_section(LossConfig, given, where)


def resolve_config(raw: Mapping[str, Any], source: str, base_dir: Path | None = None) -> dict[str, Any]:
    """Fill every section's defaults, validate, and make relative paths absolute against ``base_dir``.

    Args:
        raw: the config as read from a file (or built in code), possibly with overrides applied.
        source: where it came from (a registry name or a file), used in error messages.
        base_dir: folder that relative ``image.path``, ``text.path`` and ``text.tokenizer`` paths are relative to.
    """
    from medvl.models.image import resolve_image_config
    from medvl.models.slice_pooling import resolve_slice_pooling_config
    from medvl.models.text import resolve_text_config
    from medvl.models.volume3d import resolve_volume_encoder_config

    cfg = dataclasses.asdict(build(ArchitectureConfig, raw, error=_model_error(source, ": ")))
    cfg["image"] = resolve_image_config(cfg["image"], f"{source}: image", base_dir)
    cfg["text"] = resolve_text_config(cfg["text"], f"{source}: text", base_dir)
    cfg["slice_pooling"] = resolve_slice_pooling_config(cfg["slice_pooling"], f"{source}: slice_pooling")
    cfg["volume_encoder"] = resolve_volume_encoder_config(cfg["volume_encoder"], f"{source}: volume_encoder")
    return cfg
