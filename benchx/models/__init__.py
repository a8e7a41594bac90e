"""Model adapters: a typed interface over medvl checkpoints, MLflow models, random baselines and Hugging Face
models (see :mod:`benchx.models.base`). :data:`FACTORIES` maps a reference scheme to its adapter factory."""

from __future__ import annotations

from benchx.errors import UnknownNameError
from benchx.models.base import DEFAULT_SCHEME, Factory, ModelAdapter, ModelInfo, VolumeAdapter, encode_volumes
from benchx.models.hf import load_hf
from benchx.models.medvl_models import load_medvl, load_random

FACTORIES: dict[str, Factory] = {DEFAULT_SCHEME: load_medvl, "random": load_random, "hf": load_hf}


def adapter_schemes() -> list[str]:
    """Registered reference schemes (``medvl`` is the default for folders and MLflow URIs)."""
    return sorted(FACTORIES)


def load_adapter(ref: str, tracking_uri: str | None = None) -> ModelAdapter:
    """The adapter for a model reference (see the module docstring).

    Raises:
        UnknownNameError: unknown scheme or architecture; BenchxError: the reference leads to no model.
    """
    scheme, _, rest = ref.partition(":")
    if rest and scheme in FACTORIES and scheme != DEFAULT_SCHEME:
        return FACTORIES[scheme](rest, tracking_uri)
    if rest and not rest.startswith("/") and scheme not in ("models", "runs"):
        raise UnknownNameError("model scheme", scheme, [f"{s}:" for s in FACTORIES] + ["models:/", "runs:/"])
    return FACTORIES[DEFAULT_SCHEME](ref, tracking_uri)


__all__ = ["FACTORIES", "ModelAdapter", "ModelInfo", "VolumeAdapter", "adapter_schemes", "encode_volumes", "load_adapter"]
