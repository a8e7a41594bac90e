"""SIGTERM and Ctrl-C become one KeyboardInterrupt, held back while a write must finish."""

from __future__ import annotations

import os
import signal

import pytest

from medvl.interrupts import interrupts_deferred, sigterm_as_interrupt


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
