"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real-data bundle (``MEDVL_REALDATA``, default ``../shared/data``); skips when absent."""
    from medvl.data.realdata import realdata_root

    root = realdata_root()
    if root is None:
        pytest.skip("real-data bundle not found: set MEDVL_REALDATA to the shared/data folder")
    return root
