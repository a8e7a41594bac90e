"""Stopping long commands cleanly: SIGTERM (a scheduler, ``kill``, ``timeout``) is turned into the same
``KeyboardInterrupt`` as Ctrl-C, so one handler ends MLflow runs as KILLED and prints one line.

Exit status :data:`INTERRUPTED_EXIT` (128 + SIGINT) follows the shell's convention for an interrupted command.
"""

from __future__ import annotations

import _thread
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

INTERRUPTED_EXIT = 130

_deferral_depth = 0
_pending_signals: list[int] = []
_swallowed_signals: list[int] = []
REDELIVERY_DELAY_S = 0.05
UnraisableHook = Callable[["sys.UnraisableHookArgs"], object]


class SignalInterrupt(KeyboardInterrupt):
    """The ``KeyboardInterrupt`` a SIGTERM or Ctrl-C raised through :func:`sigterm_as_interrupt`."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signal.Signals(signum).name}")
        self.signum = signum


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    if _deferral_depth:
        _pending_signals.append(signum)
        return
    _swallowed_signals.clear()
    raise SignalInterrupt(signum)


def _deliver_again(signum: int) -> None:
    if _swallowed_signals:
        _thread.interrupt_main(signum)


def _redeliver_swallowed(previous_hook: UnraisableHook) -> UnraisableHook:
    """An ``unraisablehook`` that delivers again an interrupt Python could not propagate.

    A signal's handler runs wherever the main thread is, a garbage-collection or weakref callback included (an
    sqlalchemy registry cleanup, say); an exception raised there is printed as "Exception ignored" and dropped,
    and the command went on to finish with exit 0. The signal arrives again a moment later instead (from a timer
    thread: set from inside the callback, its handler would run inside it again), and at the end of
    :func:`sigterm_as_interrupt` at the latest.
    """

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, SignalInterrupt):
            _swallowed_signals.append(unraisable.exc_value.signum)
            threading.Timer(REDELIVERY_DELAY_S, _deliver_again, (unraisable.exc_value.signum,)).start()
        else:
            previous_hook(unraisable)

    return hook


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
        raise SignalInterrupt(signum)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and Ctrl-C raise ``KeyboardInterrupt`` in the main thread, held back inside
    :func:`interrupts_deferred` and delivered again where a callback swallowed them (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is signal.default_int_handler else [])
    previous = {signum: signal.signal(signum, _raise_interrupt) for signum in held}
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _redeliver_swallowed(previous_hook)
    _swallowed_signals.clear()
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if _swallowed_signals:  # the block ended before the signal arrived again
        signum = _swallowed_signals[0]
        _swallowed_signals.clear()
        raise SignalInterrupt(signum)


def interruptible_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders, so that an interrupted parent alone reports the interrupt.

    A worker dies at once on SIGTERM instead of inheriting the parent's interrupt handler (whose teardown printed
    a thread traceback), and hands its batches over in shared-memory files rather than file descriptors: a
    parent interrupted while fetching a descriptor left the worker's descriptor server printing a traceback.
    """
    import torch.multiprocessing

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.multiprocessing.set_sharing_strategy("file_system")
