"""Architectures by name: JSON/YAML files in ``medvl/models/configs/``, user files by path, saved models by folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_model

from medvl.models.config import ModelConfigError, apply_overrides, read_config_file, resolve_config
from medvl.models.vlm import CONFIG_FILE, LOGIT_PARAMETERS, WEIGHTS_FILE, VisionLanguageModel

CONFIG_DIR = Path(__file__).parent / "configs"
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


def _registered() -> dict[str, Path]:
    return {p.stem: p for p in sorted(CONFIG_DIR.iterdir()) if p.suffix in CONFIG_SUFFIXES}


def list_models() -> list[str]:
    """Names of the registered architectures."""
    return sorted(_registered())


def _raw_config(name_or_path: str | Path) -> tuple[dict[str, Any], str, Path | None]:
    """The unresolved config, where it came from, and the folder its relative paths refer to."""
    registered = _registered()
    if isinstance(name_or_path, str) and name_or_path in registered:
        raw = read_config_file(registered[name_or_path])
        raw.setdefault("name", name_or_path)
        return raw, name_or_path, None
    path = Path(name_or_path)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        path = path / CONFIG_FILE
    if path.is_file():
        raw = read_config_file(path)
        raw.setdefault("name", path.stem if path.name != CONFIG_FILE else path.parent.name)
        return raw, str(path), path.parent.resolve()
    raise ModelConfigError(
        str(name_or_path), f"neither a registered model nor a config file; registered models: {', '.join(list_models())}"
    )


def get_config(name_or_path: str | Path, **overrides: Any) -> dict[str, Any]:
    """The resolved config of a registered name or a config file, with ``overrides`` merged in.

    Overrides are config sections merged key by key, e.g. ``schedule={"stage": "volume"}``; an ``image``
    override with another ``arch`` (or a ``text`` override with another ``source``) replaces that section.
    """
    raw, source, base_dir = _raw_config(name_or_path)
    return resolve_config(apply_overrides(raw, overrides), source, base_dir)


def build_model(name_or_config: str | Path | Mapping[str, Any], **overrides: Any) -> VisionLanguageModel:
    """A freshly initialised model from a registered name, a config file, or a config dict.

    Text encoders with source ``pretrained`` or ``minilm`` and image towers with ``arch: hf`` and a ``path``
    start from their pretrained weights; the rest is randomly initialised.
    """
    if isinstance(name_or_config, Mapping):
        config = resolve_config(apply_overrides(name_or_config, overrides), str(name_or_config.get("name") or "config"))
    else:
        config = get_config(name_or_config, **overrides)
    return VisionLanguageModel(config)


def load_pretrained(directory: str | Path, **overrides: Any) -> VisionLanguageModel:
    """A model saved by :meth:`VisionLanguageModel.save_pretrained`, with its weights.

    ``overrides`` change the config before the weights load, e.g. ``schedule={"stage": "volume",
    "freeze_image_encoder": True}`` for RadCLIP's second stage; they must keep the parameter set (a
    ``slice_pooling`` section can only be added when the saved model already had one). Only the loss's own
    scalars (:data:`LOGIT_PARAMETERS`) may appear or go with a change of ``loss.weights``: a new one starts
    from its configured initial value.
    """
    directory = Path(directory)
    weights = directory / WEIGHTS_FILE
    if not (directory / CONFIG_FILE).is_file() or not weights.is_file():
        raise ModelConfigError(str(directory), f"not a saved model: needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    model = VisionLanguageModel(get_config(directory, **overrides))
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ModelConfigError(
            str(weights), f"weights do not fit the config ({detail}...); overrides must not change the architecture"
        ) from exc
    misfits = sorted((set(missing) | set(unexpected)) - set(LOGIT_PARAMETERS))
    if misfits:
        raise ModelConfigError(
            str(weights), f"weights do not fit the config ({', '.join(misfits[:5])}); overrides must not change the architecture"
        )
    return model
