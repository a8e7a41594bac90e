"""Worker process pools for ingestion and cache building.

Pools use the ``forkserver`` start method: workers are forked from a clean server process that has
imported the given modules once, so they start fast (no re-import of torch per worker, as with ``spawn``)
and inherit no threads or locks from the caller (the hazard of plain ``fork``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def process_pool(
    workers: int,
    preload: Sequence[str],
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes whose server has imported the ``preload`` modules."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
