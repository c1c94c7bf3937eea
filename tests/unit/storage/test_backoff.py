"""storage.backoff: the wait-and-double the index writer and the uploader retry with."""

from __future__ import annotations

import threading

from storage.backoff import Backoff


class _Clock(threading.Event):
    """An event whose waits return at once and are written down."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


def test_the_delay_doubles_from_half_a_second_up_to_thirty() -> None:
    stop = _Clock()
    backoff = Backoff(stop)
    assert [backoff.wait() for _ in range(9)] == [False] * 9
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.delay == 30.0
    backoff.reset()
    assert backoff.delay == 0.5


def test_a_stop_ends_the_wait_and_says_so() -> None:
    stop = _Clock()
    backoff = Backoff(stop)
    backoff.wait()
    stop.set()
    assert backoff.wait() is True
    assert stop.waits == [0.5, 1.0]
    assert backoff.delay == 1.0  # not doubled: nobody retries after a stop
