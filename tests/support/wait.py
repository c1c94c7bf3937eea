"""Polling for a condition in integration tests.

The bound only stops a stuck daemon from hanging the run; it is never a timing assertion (the
machine is shared and noisy). The caller asserts on what `wait_for` returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T],
    bound: float = 30.0,
    interval: float = 0.1,
    retry_on: tuple[type[Exception], ...] = (),
) -> T | None:
    """Call `check` every `interval` seconds until it returns something truthy, and return
    that; after `bound` seconds return its last (falsy) value. Exceptions of the `retry_on`
    types count as "not yet" (a database or file that is still being created)."""
    deadline = time.monotonic() + bound
    while True:
        try:
            value: T | None = check()
        except retry_on:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
