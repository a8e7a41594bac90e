"""Where the shared real-data bundle lives (never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

_DEFAULT_CANDIDATES = (Path("../shared/data"), Path(__file__).resolve().parents[3] / "shared" / "data")


def realdata_root() -> Path | None:
    """``$MEDVL_REALDATA`` if set and present, else ``../shared/data`` when it exists, else None."""
    env = os.environ.get("MEDVL_REALDATA")
    candidates = (Path(env),) if env else _DEFAULT_CANDIDATES
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None
