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

_deferral_depth = 0
_pending_signals: list[int] = []


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    if _deferral_depth:
        _pending_signals.append(signum)
        return
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a SIGTERM or Ctrl-C that arrives inside the block until the block ends, then raise it.

    For writes that must not stop halfway: MLflow's sqlite session rolls back on ``Exception`` only, so an interrupt
    in the middle of a write left the store locked and the run could not be ended as KILLED.
    """
    global _deferral_depth
    _deferral_depth += 1
    try:
        yield
    finally:
        _deferral_depth -= 1
    if not _deferral_depth and _pending_signals:
        signum = _pending_signals[0]
        _pending_signals.clear()
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and Ctrl-C raise ``KeyboardInterrupt`` in the main thread, held back inside
    :func:`interrupts_deferred` (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is signal.default_int_handler else [])
    previous = {signum: signal.signal(signum, _raise_interrupt) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def interruptible_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders, so that an interrupted parent alone reports the interrupt.

    A worker dies at once on SIGTERM instead of inheriting the parent's interrupt handler (whose teardown printed
    a thread traceback), and hands its batches over in shared-memory files rather than file descriptors: a
    parent interrupted while fetching a descriptor left the worker's descriptor server printing a traceback.
    """
    import torch.multiprocessing

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.multiprocessing.set_sharing_strategy("file_system")
