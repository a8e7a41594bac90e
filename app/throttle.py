"""Throttling failed logins: an exponential delay per user name and per client address, and a lock after many.

After :attr:`LoginThrottle.free_attempts` consecutive failures for a key (``user:NAME`` or ``client:ADDRESS``),
each further attempt must wait ``base_delay_s * 2 ** (failures - free_attempts)`` seconds (at most
``max_delay_s``) after the last failure; attempts during the wait are refused without checking the password. A
success clears the user's and the client's counts. :attr:`LoginThrottle.lock_after` consecutive failures for a
listed user lock the account (:meth:`app.auth.UserStore.set_locked`) until an administrator unlocks it.

Counts live in memory, one throttle per users file and server process; at most ``max_keys`` keys are kept (the
least recently failed are forgotten first), so a flood of invented names cannot exhaust memory.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoginThrottle:
    """Failure counts and delays per key (see the module docstring)."""

    free_attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0
    lock_after: int = 10
    max_keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _failures: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def delay_s(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failures."""
        if failures < self.free_attempts:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2.0 ** (failures - self.free_attempts))

    def wait_s(self, *keys: str) -> float:
        """Seconds until the next attempt for all of ``keys`` is allowed (0 when it is allowed now)."""
        now = self.clock()
        with self._lock:
            waits = [self.delay_s(n) - (now - last) for n, last in (self._failures.get(k, (0, now)) for k in keys)]
        return max(0.0, *waits)

    def failed(self, *keys: str) -> int:
        """Count one failure for each of ``keys``; returns the count of the first key."""
        now = self.clock()
        with self._lock:
            counts = []
            for key in keys:
                count = self._failures.pop(key, (0, now))[0] + 1
                self._failures[key] = (count, now)
                counts.append(count)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        return counts[0]

    def clear(self, *keys: str) -> None:
        """Forget the counts of ``keys`` (after a successful login, or an unlock by an administrator)."""
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
