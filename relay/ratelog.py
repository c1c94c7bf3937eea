"""Log lines that a remote peer or a resource shortage could repeat thousands of times a second
(refused control requests, failed accepts): at most one line per key and interval, and the next
line says how many were left out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """`log(key, msg, *args)` writes at most once per `interval` seconds per key (lazy `%` args);
    `suppressed` counts the lines left out since the last one written, per key."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.level = level
        self.interval = interval
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self.suppressed: dict[Hashable, int] = {}

    def log(self, key: Hashable, msg: str, *args: object) -> bool:
        """True when the line was written, False when it was counted and left out."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        if len(self._last) > 1024:  # keys are a handful of kinds; bounded all the same
            self._last.clear()
        self._last[key] = now
        left_out = self.suppressed.pop(key, 0)
        if left_out:
            msg += " (%d more like this in the last %.0f s not logged)"
            args = (*args, left_out, self.interval)
        self.logger.log(self.level, msg, *args)
        return True
