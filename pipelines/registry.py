"""Register a model version exactly once per pipeline run: look it up by its ``pipeline.key`` tag first.

The tag is given at creation (``mlflow.register_model(..., tags=...)``), so a version either exists with its key
or does not exist at all: a process killed around registration, run again, finds it instead of adding another.
"""

from __future__ import annotations

from typing import Any

KEY_TAG = "pipeline.key"


def find_version(client: Any, name: str, key: str) -> Any | None:
    """The version of registered model ``name`` tagged ``pipeline.key = key`` (None when there is none)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code):
            return None
        raise
    matches = [v for v in versions if (v.tags or {}).get(KEY_TAG) == key]
    if len(matches) > 1:
        numbers = ", ".join(str(v.version) for v in matches)
        raise RuntimeError(f"registered model '{name}' has several versions ({numbers}) tagged {KEY_TAG}={key}")
    return matches[0] if matches else None


def register_once(model_uri: str, name: str, key: str, tracking_uri: str, tags: dict[str, str]) -> tuple[str, bool]:
    """Register ``model_uri`` as a version of ``name`` unless the version of ``key`` exists.

    Returns the version number and whether it was created now.
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    existing = find_version(client, name, key)
    if existing is not None:
        return str(existing.version), False
    mlflow.set_tracking_uri(tracking_uri)
    mv = mlflow.register_model(model_uri, name, tags={**tags, KEY_TAG: key})
    return str(mv.version), True
