"""Loading the transformers model of a tower (``image`` with ``arch: hf``, ``text``), shared by both towers.

A tower comes from a hub id or a local ``save_pretrained`` folder (``path``, ``revision``,
``trust_remote_code``), or is built from its full transformers config (``hf_config``) with random weights, as
:meth:`VisionLanguageModel.save_pretrained` writes it. Models whose classes are custom code
(``trust_remote_code``) keep that code next to a saved model, in a folder that ``path`` then names, so loading
needs neither the hub nor the original folder. Weights are always float32 (mixed precision is the trainer's
business), whatever ``dtype`` the checkpoint was stored in.

transformers is imported inside the functions, so configs resolve without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medvl.models.config import ModelConfigError

REMOTE_CODE_MODULES = "transformers_modules"  # the package transformers imports custom (remote) code into
REASONS = {  # what went wrong, by the setting to change
    "path": "cannot load a transformers model from '{source}': {exc}. Give a local folder with config.json and "
    "weights, or a hub name already in the offline cache (HF_HUB_OFFLINE=1 blocks downloads)",
    "tokenizer": "'{source}' has no usable tokenizer ({exc}); set {section}.tokenizer",
    "hf_config": "cannot build a transformers model of type '{source}': {exc}",
}


@contextmanager
def transformers_errors(section: str, source: str, field: str = "path") -> Iterator[None]:
    """Turn transformers' ``OSError`` / ``ValueError`` into a :class:`ModelConfigError` naming the setting to change:
    ``<section>.trust_remote_code`` for custom code that was not trusted, else ``<section>.<field>``
    (``path``, ``tokenizer`` or ``hf_config``)."""
    try:
        yield
    except ModelConfigError:
        raise
    except (OSError, ValueError) as exc:
        if "trust_remote_code" in str(exc):
            raise ModelConfigError(
                f"{section}.trust_remote_code",
                f"'{source}' holds custom model code; read it, then set {section}.trust_remote_code: true",
            ) from exc
        raise ModelConfigError(f"{section}.{field}", REASONS[field].format(source=source, exc=exc, section=section)) from exc


def pretrained_config(path: str, section: str, revision: str | None, trust_remote_code: bool):
    """The transformers config of a hub id or local folder."""
    from transformers import AutoConfig

    with transformers_errors(section, path):
        return AutoConfig.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)


def pretrained_model(path: str, section: str, revision: str | None, trust_remote_code: bool, config: Any = None) -> nn.Module:
    """``AutoModel.from_pretrained`` in float32; ``config`` picks the class (e.g. the vision part of a CLIP config)."""
    from transformers import AutoModel

    kwargs = {"config": config} if config is not None else {}
    with transformers_errors(section, path):
        return AutoModel.from_pretrained(
            path, revision=revision, trust_remote_code=trust_remote_code, dtype=torch.float32, **kwargs
        )


def config_from_dict(hf: dict[str, Any], section: str, code_dir: str | None, trust_remote_code: bool):
    """A transformers config from a full config dict (``model_type`` picks the class).

    A dict with an ``auto_map`` names custom classes: their code is read from ``code_dir``.
    """
    from transformers import AutoConfig

    params = {k: v for k, v in hf.items() if k != "model_type"}
    if "auto_map" not in hf:
        with transformers_errors(section, hf["model_type"], "hf_config"):
            return AutoConfig.for_model(hf["model_type"], **params)
    if code_dir is None:
        raise ModelConfigError(f"{section}.path", "hf_config has an auto_map (custom code): name the folder holding that code")
    config = type(pretrained_config(code_dir, section, None, trust_remote_code)).from_dict(params)
    config.name_or_path = code_dir  # where AutoModel.from_config finds the model code
    return config


def model_from_config(config: Any, section: str, trust_remote_code: bool) -> nn.Module:
    """A randomly initialised float32 model of ``config`` (custom classes need ``trust_remote_code``)."""
    from transformers import AutoModel

    with transformers_errors(section, config.model_type, "hf_config"):
        return AutoModel.from_config(config, trust_remote_code=trust_remote_code, dtype=torch.float32)


def uses_remote_code(model: nn.Module) -> bool:
    """True when the model's class was imported from custom (``trust_remote_code``) code."""
    return type(model).__module__.startswith(REMOTE_CODE_MODULES)


def save_tower(section: dict[str, Any], model: nn.Module, directory: Path, code_dir: str) -> None:
    """Point a tower's config ``section`` at the model's full transformers config (``hf_config``), in place.

    Custom model code is copied to ``directory / code_dir`` (config.json and the .py files), which ``path``
    then names; otherwise ``path`` is cleared. ``revision`` is cleared: the saved weights are the reference.
    """
    from transformers.dynamic_module_utils import custom_object_save

    path = None
    if uses_remote_code(model):
        folder = directory / code_dir
        folder.mkdir(parents=True, exist_ok=True)
        custom_object_save(model, folder, config=model.config)  # the modeling file; auto_map points at the copy
        model.config.save_pretrained(folder)  # config.json and the configuration file
        path = code_dir
    section.update(path=path, revision=None, hf_config=model.config.to_dict())
