"""Where benchx keeps generated data, split manifests, caches of images, features and results."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def default_data_dir() -> Path:
    """``$BENCHX_DATA``, else ``$MEDVL_CACHE/benchx``, else ``~/.cache/medvl/benchx``."""
    if os.environ.get("BENCHX_DATA"):
        return Path(os.environ["BENCHX_DATA"])
    return Path(os.environ.get("MEDVL_CACHE") or Path.home() / ".cache" / "medvl") / "benchx"


def digest(*parts: Any) -> str:
    """SHA-256 of the canonical JSON of ``parts`` (the key of every benchx cache entry)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
