"""Registry of dataset loaders: code that turns a dataset's files into a manifest with its published split.

A loader is a function ``(root, options) -> pandas.DataFrame`` returning a medvl cohort manifest
(:mod:`medvl.data.manifest`) whose ``split`` column follows the dataset's official or published rule.
Loaders register themselves by name with :func:`register_loader`; dataset cards name them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

Loader = Callable[[Path, Mapping[str, Any]], pd.DataFrame]
_LOADERS: dict[str, Loader] = {}


def register_loader(name: str) -> Callable[[Loader], Loader]:
    """Decorator registering a dataset loader under ``name`` (one name, one loader)."""

    def decorate(fn: Loader) -> Loader:
        if name in _LOADERS and _LOADERS[name] is not fn:
            raise ValueError(f"dataset loader {name!r} is registered twice")
        _LOADERS[name] = fn
        return fn

    return decorate


def get_loader(name: str) -> Loader:
    """The loader registered as ``name``; the error lists the registered names."""
    try:
        return _LOADERS[name]
    except KeyError:
        raise KeyError(f"unknown dataset loader {name!r}; registered: {', '.join(loader_names()) or 'none'}") from None


def loader_names() -> list[str]:
    """Registered loader names, sorted."""
    return sorted(_LOADERS)
