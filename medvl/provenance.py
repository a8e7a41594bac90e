"""Where a result came from: code version and software environment (for run params and lineage)."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_PACKAGES = ("torch", "monai", "transformers", "pydicom", "mlflow", "numpy")


def package_version() -> str:
    """Installed version of medvl."""
    try:
        return version("medvl")
    except PackageNotFoundError:
        return "0+unknown"


def git_revision(path: Path | None = None) -> str | None:
    """``<sha>`` or ``<sha>-dirty`` of the checkout holding the code, or None outside git."""
    where = path or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def code_version() -> str:
    """``medvl <version> (<git sha>)``, or just the version outside a checkout."""
    rev = git_revision()
    return f"medvl {package_version()}" + (f" ({rev})" if rev else "")


def environment() -> dict[str, str]:
    """Python, platform and key package versions."""
    env = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            env[name] = version(name)
        except PackageNotFoundError:
            continue
    return env
