"""Image-report models: encoders, projection heads, slice pooling, and a registry of architecture configs.

Names are imported on first use, so ``medvl.models.config`` (used by :mod:`medvl.losses`) loads without
MONAI or transformers.

>>> from medvl.models import build_model
>>> model = build_model("tiny-resnet18")
>>> model.encode_text(**model.tokenize(["No acute findings."])).shape
torch.Size([1, 128])
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelConfigError": "medvl.models.config",
    "TextEncoder": "medvl.models.text",
    "VisionLanguageModel": "medvl.models.vlm",
    "VolumeEncoding": "medvl.models.vlm",
    "build_model": "medvl.models.registry",
    "get_config": "medvl.models.registry",
    "list_models": "medvl.models.registry",
    "load_pretrained": "medvl.models.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'medvl.models' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
