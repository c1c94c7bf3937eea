"""Wait-and-double between retries of a worker thread that a stop event can interrupt."""

from __future__ import annotations

import threading

FIRST = 0.5  # seconds before the first retry
LONGEST = 30.0  # the delay stops doubling here


class Backoff:
    """0.5 s, 1 s, 2 s … up to 30 s between attempts; `delay` is the next wait (for logs)."""

    __slots__ = ("_stop", "delay")

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self.delay = FIRST

    def reset(self) -> None:
        self.delay = FIRST

    def wait(self) -> bool:
        """Wait `delay`, then double it; True when the stop event was set meanwhile."""
        if self._stop.wait(self.delay):
            return True
        self.delay = min(self.delay * 2, LONGEST)
        return False
