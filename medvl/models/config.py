"""Architecture configs: read a JSON/YAML file, fill defaults, refuse unknown keys and impossible values.

A config is a plain dict with the sections ``image``, ``text``, ``projection``, ``slice_pooling`` (or null),
``volume_encoder`` (or null; a native 3D encoder, the alternative to slice pooling), ``schedule``, ``logit`` and
``loss`` plus ``name``, ``description`` and ``embed_dim``. Every section is merged onto its defaults, so a
config file only states what differs; a key that no section knows is an error that names the key (typos never
pass silently). The resolved dict is what :class:`VisionLanguageModel` keeps as
``model.config`` and writes next to its weights.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from medvl.config import ConfigError, merge_settings


class ModelConfigError(ConfigError):
    """An architecture config (or a file holding one) that cannot describe a model; names the field and reason."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


SCHEDULE_DEFAULTS: dict[str, Any] = {"stage": "2d", "freeze_image_encoder": False, "image_encoder_lr_scale": 1.0}
LOGIT_DEFAULTS: dict[str, Any] = {
    "init_temperature": 0.07,
    "max_scale": 100.0,
    "init_bias": -10.0,
    "concept_init_scale": 10.0,
    "concept_init_bias": -5.0,
}
PROJECTION_DEFAULTS: dict[str, Any] = {"hidden_dim": None}


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


def merge_section(defaults: Mapping[str, Any], given: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """``defaults`` updated with ``given``; nested mappings merge recursively, unknown keys raise."""
    if given is None:
        return copy.deepcopy(dict(defaults))
    if not isinstance(given, Mapping):
        raise ModelConfigError(where, f"expected a mapping, got {given!r}")
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ModelConfigError(f"{where}.{unknown[0]}", f"unknown key; known keys: {', '.join(sorted(defaults))}")
    out = copy.deepcopy(dict(defaults))
    for key, value in given.items():
        if isinstance(defaults[key], Mapping) and value is not None:
            out[key] = merge_section(defaults[key], value, f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


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


def check_choice(value: Any, choices: tuple[str, ...], where: str) -> None:
    """Raise naming ``where`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ModelConfigError(where, f"{value!r} is not one of {', '.join(choices)}")


def check_number(value: Any, where: str, *, minimum: float | None = None, integer: bool = False) -> None:
    """Raise naming ``where`` unless ``value`` is a number (an int when ``integer``) of at least ``minimum``."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ModelConfigError(where, f"expected {'an integer' if integer else 'a number'}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ModelConfigError(where, f"must be at least {minimum}, got {value}")


def check_flag(value: Any, where: str) -> None:
    """Raise naming ``where`` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise ModelConfigError(where, f"expected true or false, got {value!r}")


def check_optional_string(value: Any, where: str) -> None:
    """Raise naming ``where`` unless ``value`` is None or a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value):
        raise ModelConfigError(where, f"expected a non-empty string or null, got {value!r}")


def local_path(value: str | None, base_dir: Path | None) -> str | None:
    """``value`` made absolute against ``base_dir`` when that names an existing file or folder (else unchanged,
    e.g. a hub name)."""
    if value is None or base_dir is None or Path(value).is_absolute():
        return value
    candidate = base_dir / value
    return str(candidate.resolve()) if candidate.exists() else value


LOSS_TERMS = ("convirt", "clip", "siglip", "soft_target", "concept", "polarity")
LOSS_DEFAULTS: dict[str, Any] = {
    "weights": {"convirt": 1.0, "clip": 0.0, "siglip": 0.0, "soft_target": 0.0, "concept": 0.0, "polarity": 0.0},
    "tau": 0.1,
    "lam": 0.75,
    "soft_target_tau": 0.1,
    "target_tau": 0.1,
    "uncertain_as": 1.0,
    "max_logit_scale": 100.0,
}


def resolve_loss_config(given: Any, where: str) -> dict[str, Any]:
    """The ``loss`` section of an architecture config with defaults filled in and checked."""
    cfg = merge_section(LOSS_DEFAULTS, given, where)
    for name, weight in cfg["weights"].items():
        check_number(weight, f"{where}.weights.{name}", minimum=0.0)
    if not any(cfg["weights"].values()):
        raise ModelConfigError(f"{where}.weights", f"at least one of {', '.join(LOSS_TERMS)} needs a positive weight")
    for key in ("tau", "soft_target_tau", "target_tau", "max_logit_scale"):
        check_number(cfg[key], f"{where}.{key}", minimum=1e-6)
    check_number(cfg["lam"], f"{where}.lam", minimum=0.0)
    if cfg["lam"] > 1:
        raise ModelConfigError(f"{where}.lam", f"must be at most 1, got {cfg['lam']}")
    check_number(cfg["uncertain_as"], f"{where}.uncertain_as", minimum=0.0)
    return cfg


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

    known = {
        "name", "description", "embed_dim", "image", "text", "projection", "slice_pooling", "volume_encoder", "schedule",
        "logit", "loss",
    }  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ModelConfigError(f"{source}: {unknown[0]}", f"unknown section; known sections: {', '.join(sorted(known))}")
    if "image" not in raw:
        raise ModelConfigError(f"{source}: image", "missing section (an 'arch' is required)")
    cfg: dict[str, Any] = {
        "name": str(raw.get("name", "")),
        "description": str(raw.get("description", "")),
        "embed_dim": raw.get("embed_dim", 512),
    }
    check_number(cfg["embed_dim"], f"{source}: embed_dim", minimum=1, integer=True)
    cfg["image"] = resolve_image_config(raw["image"], f"{source}: image", base_dir)
    cfg["text"] = resolve_text_config(raw.get("text"), f"{source}: text", base_dir)
    cfg["projection"] = merge_section(PROJECTION_DEFAULTS, raw.get("projection"), f"{source}: projection")
    if cfg["projection"]["hidden_dim"] is not None:
        check_number(cfg["projection"]["hidden_dim"], f"{source}: projection.hidden_dim", minimum=1, integer=True)
    cfg["slice_pooling"] = resolve_slice_pooling_config(raw.get("slice_pooling"), f"{source}: slice_pooling")
    cfg["volume_encoder"] = resolve_volume_encoder_config(raw.get("volume_encoder"), f"{source}: volume_encoder")
    if cfg["slice_pooling"] is not None and cfg["volume_encoder"] is not None:
        raise ModelConfigError(
            f"{source}: volume_encoder", "a model encodes volumes by slice pooling or with a 3D encoder, not both: set slice_pooling to null"
        )
    cfg["schedule"] = _resolve_schedule(raw.get("schedule"), cfg["slice_pooling"], f"{source}: schedule")
    cfg["logit"] = merge_section(LOGIT_DEFAULTS, raw.get("logit"), f"{source}: logit")
    for key in ("init_temperature", "max_scale", "concept_init_scale"):
        check_number(cfg["logit"][key], f"{source}: logit.{key}", minimum=1e-6)
    cfg["loss"] = resolve_loss_config(raw.get("loss"), f"{source}: loss")
    return cfg


def _resolve_schedule(given: Any, slice_pooling: dict | None, where: str) -> dict[str, Any]:
    schedule = merge_section(SCHEDULE_DEFAULTS, given, where)
    check_choice(schedule["stage"], ("2d", "volume"), f"{where}.stage")
    check_flag(schedule["freeze_image_encoder"], f"{where}.freeze_image_encoder")
    check_number(schedule["image_encoder_lr_scale"], f"{where}.image_encoder_lr_scale", minimum=0.0)
    if schedule["stage"] == "volume" and slice_pooling is None:
        raise ModelConfigError(f"{where}.stage", "'volume' needs a slice_pooling section")
    return schedule
