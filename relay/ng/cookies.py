"""The ng retransmission cache (docs/spec/ng-protocol.md §1.4). No clock inside: callers pass `now`.

Like rtpengine's `cookie_cache.c` it keeps two generations and swaps them when a lookup happens
30 s or more after the last swap, so an entry answers retransmissions for 30 to 60 s, and the
stored bytes are resent verbatim (even to a retransmission in the other body encoding).

Deliberately better than rtpengine: the key is (source IP, cookie), not the cookie alone, so
two proxies that happen to use the same cookie (Kamailio's `<id>_<pid>_<seq>` repeats across
hosts) never receive each other's replies. The port is left out on purpose: a retransmission
from another socket of the same host (or a NAT rebinding) is still recognised, and cookies of
two processes on one host differ anyway because Kamailio puts its pid in them.
"""

from __future__ import annotations

CacheKey = tuple[str, bytes]

SWAP_INTERVAL = 30.0


class CookieCache:
    """Reply bytes by (source IP, cookie), aged out in two 30-second generations."""

    def __init__(self, now: float, swap_interval: float = SWAP_INTERVAL) -> None:
        self._current: dict[CacheKey, bytes] = {}
        self._old: dict[CacheKey, bytes] = {}
        self._swap_time = now
        self._interval = swap_interval

    def _check_swap(self, now: float) -> None:
        elapsed = now - self._swap_time
        if elapsed >= self._interval:
            # rtpengine swaps once per lookup however long it has been idle, so after a quiet
            # minute an entry could outlive 60 s; two missed swaps empty both generations.
            self._old = self._current if elapsed < 2 * self._interval else {}
            self._current = {}
            self._swap_time = now

    def lookup(self, source: str, cookie: bytes, now: float) -> bytes | None:
        """The stored reply for a retransmission, or None if this request is new."""
        self._check_swap(now)
        key = (source, cookie)
        found = self._current.get(key)
        return found if found is not None else self._old.get(key)

    def insert(self, source: str, cookie: bytes, reply: bytes, now: float) -> None:
        """Store the full reply datagram; a newer reply for the same key replaces the old."""
        self._check_swap(now)
        key = (source, cookie)
        self._old.pop(key, None)
        self._current[key] = reply

    def __len__(self) -> int:
        return len(self._current) + len(self._old)
