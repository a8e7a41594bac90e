"""Model adapters: a typed interface over medvl checkpoints, MLflow models, random baselines and Hugging Face
models (see :mod:`benchx.models.base`)."""

from benchx.models.base import (
    ModelAdapter,
    ModelInfo,
    VolumeAdapter,
    adapter_schemes,
    encode_volumes,
    load_adapter,
)

__all__ = ["ModelAdapter", "ModelInfo", "VolumeAdapter", "adapter_schemes", "encode_volumes", "load_adapter"]
