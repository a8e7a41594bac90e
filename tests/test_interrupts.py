"""SIGTERM and Ctrl-C become one KeyboardInterrupt, held back while a write must finish."""

from __future__ import annotations

import os
import signal
import time

import pytest

from medvl.interrupts import interrupts_deferred, sigterm_as_interrupt


@pytest.fixture(autouse=True)
def python_ctrl_c_handler():
    """Ctrl-C as a fresh ``python`` handles it (a library loaded by an earlier test may have installed its own)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_sigterm_raises_keyboard_interrupt_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_interrupt_inside_a_deferred_block_waits_for_the_block_to_end():
    finished = []
    with pytest.raises(KeyboardInterrupt, match="SIGINT"), sigterm_as_interrupt():
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            with interrupts_deferred():  # nested: still held until the outer block ends
                pass
            finished.append("write")
        finished.append("after")
    assert finished == ["write"]


def test_a_deferred_block_without_a_signal_raises_nothing():
    with sigterm_as_interrupt(), interrupts_deferred():
        pass


def test_an_interrupt_swallowed_by_a_garbage_collection_callback_is_delivered_again(capsys):
    import weakref

    class Registered:
        pass

    def cleanup(_ref) -> None:  # runs inside garbage collection, where a raised exception is only printed
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(10_000))  # the handler runs here and raises into the callback

    finished = []
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), sigterm_as_interrupt():
        obj = Registered()
        ref = weakref.ref(obj, cleanup)
        del obj
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the interrupt reaches the code that runs after the callback
            sum(range(100))
        finished.append("went on")
    assert ref() is None and finished == []
    assert "Exception ignored" not in capsys.readouterr().err


def test_a_swallowed_interrupt_is_raised_at_the_end_of_the_block_at_the_latest():
    import weakref

    class Registered:
        pass

    def cleanup(_ref) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(10_000))

    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), sigterm_as_interrupt():
        obj = Registered()
        ref = weakref.ref(obj, cleanup)
        del obj  # the block ends before the signal arrives again
    assert ref() is None
    time.sleep(0.2)  # the late redelivery finds nothing left to deliver
