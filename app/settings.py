"""The review app's settings, read from ``MEDVL_REVIEW_*`` environment variables (``medvl review serve`` sets them).

| variable | meaning | default |
|---|---|---|
| ``MEDVL_REVIEW_MODEL`` | model reference: ``models:/NAME@ALIAS``, a model folder or a run folder | ``models:/medvl@champion`` |
| ``MEDVL_REVIEW_APPROVED_MODELS`` | further model references reviewers may pick, comma-separated | none |
| ``MEDVL_REVIEW_MODEL_ROOTS`` | folders (``:``-separated) under which administrators may open local checkpoints | none |
| ``MEDVL_REVIEW_TRACKING_URI`` | MLflow tracking URI for registry models | MLflow's own resolution |
| ``MEDVL_REVIEW_USERS`` | users YAML (bcrypt-hashed passwords, roles) | ``review/users.yaml`` |
| ``MEDVL_REVIEW_DB`` | feedback database, any SQLAlchemy URL | ``sqlite:///review/feedback.db`` |
| ``MEDVL_REVIEW_AUDIT`` | audit log (JSON Lines, hash-chained) | ``review/audit.jsonl`` |
| ``MEDVL_REVIEW_MANIFEST`` | manifest to pick studies from | none |
| ``MEDVL_REVIEW_INDEX`` | similar-case index folder (``medvl review index``) | none |
| ``MEDVL_REVIEW_PROMPTS`` | ``default`` (CheXpert-14 prompt ensembles) or ``phantom`` | ``default`` |
| ``MEDVL_REVIEW_MAX_UPLOAD_MB`` | largest accepted upload (and unpacked zip) | ``512`` |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medvl.text.prompts import PROMPT_SETS

ENV_PREFIX = "MEDVL_REVIEW_"


@dataclass(frozen=True)
class AppSettings:
    """Where the app finds its model, users, database, audit log, manifest and index."""

    model: str = "models:/medvl@champion"
    approved_models: tuple[str, ...] = ()
    model_roots: tuple[Path, ...] = ()
    tracking_uri: str | None = None
    users: Path = Path("review/users.yaml")
    db_url: str = "sqlite:///review/feedback.db"
    audit: Path = Path("review/audit.jsonl")
    manifest: Path | None = None
    index: Path | None = None
    prompts: str = "default"
    max_upload_mb: float = 512.0

    def __post_init__(self) -> None:
        if self.prompts not in PROMPT_SETS:
            raise ValueError(f"{ENV_PREFIX}PROMPTS={self.prompts!r}: choose one of {', '.join(PROMPT_SETS)}")
        if not self.max_upload_mb > 0:
            raise ValueError(f"{ENV_PREFIX}MAX_UPLOAD_MB={self.max_upload_mb}: must be a positive number of MB")

    @property
    def models(self) -> tuple[str, ...]:
        """The models an administrator approved for review: the default first, without repeats."""
        return tuple(dict.fromkeys((self.model, *self.approved_models)))

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    def as_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings (for launching streamlit)."""
        values = {
            "MODEL": self.model, "APPROVED_MODELS": ",".join(self.approved_models) or None,
            "MODEL_ROOTS": os.pathsep.join(map(str, self.model_roots)) or None, "TRACKING_URI": self.tracking_uri,
            "USERS": self.users, "DB": self.db_url,
            "AUDIT": self.audit, "MANIFEST": self.manifest, "INDEX": self.index, "PROMPTS": self.prompts,
            "MAX_UPLOAD_MB": self.max_upload_mb,
        }  # fmt: skip
        return {ENV_PREFIX + k: str(v) for k, v in values.items() if v is not None}


def settings_from_env(environ: dict[str, str] | None = None) -> AppSettings:
    """Settings from ``MEDVL_REVIEW_*`` variables (defaults for those unset).

    Raises:
        ValueError: a variable holds an impossible value (the message names it).
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(ENV_PREFIX + name, "").strip()
        return value or None

    defaults = AppSettings()
    limit = get("MAX_UPLOAD_MB")
    try:
        max_upload_mb = float(limit) if limit else defaults.max_upload_mb
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}MAX_UPLOAD_MB={limit!r}: not a number of MB") from exc
    return AppSettings(
        model=get("MODEL") or defaults.model,
        approved_models=tuple(m.strip() for m in (get("APPROVED_MODELS") or "").split(",") if m.strip()),
        model_roots=tuple(Path(r) for r in (get("MODEL_ROOTS") or "").split(os.pathsep) if r.strip()),
        tracking_uri=get("TRACKING_URI"),
        users=Path(get("USERS") or defaults.users),
        db_url=get("DB") or defaults.db_url,
        audit=Path(get("AUDIT") or defaults.audit),
        manifest=Path(m) if (m := get("MANIFEST")) else None,
        index=Path(i) if (i := get("INDEX")) else None,
        prompts=get("PROMPTS") or defaults.prompts,
        max_upload_mb=max_upload_mb,
    )
