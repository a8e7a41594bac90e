"""Turn a model reference (a folder, a pretraining run, an MLflow model URI) into a local model folder.

Accepted references:

- a saved model folder (``config.json`` + ``model.safetensors``, as written by ``save_pretrained``);
- a ``medvl pretrain`` run folder (its ``model/`` sub-folder is used);
- ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/RUN_ID/model``: the pyfunc model logged by
  ``medvl pretrain``; its files are downloaded once into a cache folder keyed by the resolved version and its
  run, source and creation time (a version number given again, after the registered model or its store was
  made again, is another model).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from medvl.errors import MedvlError
from medvl.tracking import resolve_tracking_uri

MODEL_FILES = ("config.json", "model.safetensors")
REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


class ModelRefError(MedvlError, ValueError):
    """A model reference that does not lead to a saved medvl model; the message says why and what to do."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference resolved to a local folder.

    Attributes:
        ref: the reference as given.
        model_dir: the local folder holding ``config.json`` and ``model.safetensors``.
        name: registered model name (empty for folders and runs).
        version: registered model version (empty for folders and runs).
    """

    ref: str
    model_dir: Path
    name: str = ""
    version: str = ""


def default_cache_dir() -> Path:
    """Where downloaded models are kept: ``$MEDVL_CACHE/models`` or ``~/.cache/medvl/models``."""
    root = os.environ.get("MEDVL_CACHE") or Path.home() / ".cache" / "medvl"
    return Path(root) / "models"


def is_model_dir(path: Path) -> bool:
    """True when ``path`` holds a saved medvl model."""
    return all((path / name).is_file() for name in MODEL_FILES)


def resolve_model(
    ref: str | Path, tracking_uri: str | None = None, cache_dir: Path | None = None
) -> ResolvedModel:
    """Resolve ``ref`` to a local model folder (downloading registry models once).

    Raises:
        ModelRefError: the folder holds no model, or the registry / run has no such model.
    """
    text = str(ref)
    if text.startswith(("models:/", "runs:/")):
        return _resolve_mlflow(text, resolve_tracking_uri(tracking_uri), cache_dir or default_cache_dir())
    path = Path(text).expanduser()
    for candidate in (path, path / "model"):
        if is_model_dir(candidate):
            return ResolvedModel(text, candidate.resolve())
    if not path.exists():
        raise ModelRefError(
            f"{text}: no such model folder (give a model folder, a run folder or models:/NAME@ALIAS)"
        )
    raise ModelRefError(
        f"{text}: holds no saved model (expected {' and '.join(MODEL_FILES)} here or in model/)"
    )


def _resolve_mlflow(uri: str, tracking_uri: str, cache_dir: Path) -> ResolvedModel:
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    name = version = ""
    match = REGISTRY_URI.match(uri)
    try:
        if match:
            name = match["name"]
            mv = (
                client.get_model_version_by_alias(name, match["alias"])
                if match["alias"]
                else client.get_model_version(name, match["version"])
            )
            version = str(mv.version)
            source = client.get_model_version_download_uri(name, version)
            # the version's run, source and creation time too: a tracking store made again at the same URI
            # numbers its versions from 1 again, and its version 1 is another model
            identity = f"models:/{name}/{version}\n{mv.run_id}\n{mv.source}\n{mv.creation_timestamp}"
            target = cache_dir / _cache_name(f"{name}-v{version}", tracking_uri, identity)
        elif uri.startswith("runs:/"):
            source = uri
            target = cache_dir / _cache_name("run", tracking_uri, source)
        else:
            raise ModelRefError(
                f"{uri}: not a model URI (use models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/model)"
            )
        if not _cached_model(target):
            download_artifacts(artifact_uri=source, dst_path=str(target), tracking_uri=tracking_uri)
    except MlflowException as exc:
        raise ModelRefError(f"{uri}: not found at {tracking_uri} ({exc.message.splitlines()[0]})") from exc
    model_dir = _cached_model(target)
    if model_dir is None:
        raise ModelRefError(
            f"{uri}: the logged model holds no medvl model folder (was it logged by medvl pretrain?)"
        )
    return ResolvedModel(uri, model_dir, name, version)


def _cached_model(root: Path) -> Path | None:
    """The model folder inside a downloaded pyfunc model (``artifacts/<name>/``), when present."""
    if not root.is_dir():
        return None
    for config in sorted(root.rglob("config.json")):
        if is_model_dir(config.parent):
            return config.parent
    return None


def _cache_name(label: str, tracking_uri: str, source: str) -> str:
    """A folder name for a downloaded model: readable label plus a hash of where it came from."""
    digest = hashlib.sha256(f"{tracking_uri}\n{source}".encode()).hexdigest()[:16]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label)[:60] + "-" + digest


def model_fingerprint(model_dir: str | Path) -> str:
    """A content hash of a saved model (config and weights): the key for caching its features."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        with open(Path(model_dir) / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
