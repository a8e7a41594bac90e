"""Stopping long commands cleanly: SIGTERM (a scheduler, ``kill``, ``timeout``) is turned into the same
``KeyboardInterrupt`` as Ctrl-C, so one handler ends MLflow runs as KILLED and prints one line.

Exit status :data:`INTERRUPTED_EXIT` (128 + SIGINT) follows the shell's convention for an interrupted command.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

INTERRUPTED_EXIT = 130


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interruptible_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders, so that an interrupted parent alone reports the interrupt.

    A worker dies at once on SIGTERM instead of inheriting the parent's interrupt handler (whose teardown printed
    a thread traceback), and hands its batches over in shared-memory files rather than file descriptors: a
    parent interrupted while fetching a descriptor left the worker's descriptor server printing a traceback.
    """
    import torch.multiprocessing

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.multiprocessing.set_sharing_strategy("file_system")
