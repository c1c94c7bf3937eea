"""Writer threads of the call state (docs/design/redis-state.md): the loop hands over the newest
document of a call (or None: its key goes), a thread writes it with `SET key doc EX expires` /
`DEL key`, never on the loop.

* Coalescing: each thread (`redis-num-threads`, a call always on the same one by crc32 of its
  id, so one call's writes stay in order) keeps a dict call-id → newest bytes in arrival order;
  `put` replaces what is not written yet and never blocks (a lock held for a dict store).
* Redis down: the document stays (a newer one replaces it), the thread waits 0.5 s, 1 s, 2 s …
  up to 30 s (storage.backoff) and tries again; every failed attempt counts (`write_errors`).
  One ERROR line when the connection goes ("Lost connection to Redis …"), one INFO line when a
  write works again ("RE-Established connection to Redis …"), shared by the threads.
* `redis-allowed-errors` N >= 0: after more than N failed attempts in a row the writers pause
  `redis-disable-time` seconds ("Redis server … disabled for N seconds"), as rtpengine
  (docs/spec/config.md §2.10).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from typing import Protocol

from storage.backoff import Backoff

__all__ = ["KEY_PREFIX", "Health", "Writer", "call_key", "reason"]

logger = logging.getLogger("rtpvault.redis_state")

KEY_PREFIX = "rtpvault:call:"


def call_key(call_id: str) -> bytes:
    """`rtpvault:call:<call-id>`, the call-id's bytes as received."""
    return (KEY_PREFIX + call_id).encode("utf-8", "surrogateescape")


class Store(Protocol):
    """What a writer needs of a Redis client (redis.Redis)."""

    def set(self, name: bytes, value: bytes, ex: int | None = None) -> object: ...

    def delete(self, *names: bytes) -> object: ...


class Health:
    """Up/down of one Redis server as the writers see it: logs each change once, counts."""

    def __init__(self, address: str, allowed_errors: int, disable_time: int, up: bool) -> None:
        self.address = address
        self.allowed_errors = allowed_errors
        self.disable_time = disable_time
        self.up = up
        self.lock = threading.Lock()
        self.consecutive = 0
        self.write_errors = 0
        self.disabled = 0
        self.failed_since = 0.0 if up else time.monotonic()

    def failed(self, error: BaseException) -> bool:
        """One failed attempt; True when the writers are to pause `disable_time`."""
        with self.lock:
            self.write_errors += 1
            self.consecutive += 1
            if self.up:
                self.up = False
                self.failed_since = time.monotonic()
                logger.error("Lost connection to Redis %s (%s); call state is kept and "
                             "written when it is back", self.address, reason(error))  # fmt: skip
            if 0 <= self.allowed_errors < self.consecutive:
                self.consecutive = 0
                self.disabled += 1
                logger.warning("Redis server %s disabled for %d seconds", self.address,
                               self.disable_time)  # fmt: skip
                return True
            return False

    def succeeded(self, pending: int) -> None:
        with self.lock:
            self.consecutive = 0
            if not self.up:
                self.up = True
                logger.info("RE-Established connection to Redis %s after %.1f s; %d call "
                            "states still to write", self.address,
                            time.monotonic() - self.failed_since, pending)  # fmt: skip


def reason(error: BaseException) -> str:
    """What went wrong, as hiredis says it in rtpengine's lines: the system's text when an
    OSError is behind it ("Connection refused"), else redis-py's message's first line."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


class _Lane:
    """One writer thread and its calls."""

    def __init__(self, writer: Writer, index: int) -> None:
        self.writer = writer
        self.cond = threading.Condition()
        self.latest: dict[str, bytes | None] = {}
        self.thread = threading.Thread(target=self.run, name=f"redis-writer-{index}",
                                       daemon=True)  # fmt: skip

    def run(self) -> None:
        w = self.writer
        backoff = Backoff(w.stop)
        failed: set[str] = set()
        while True:
            with self.cond:
                while not self.latest and not w.draining:
                    self.cond.wait()
                if not self.latest:
                    return
                call_id = next(iter(self.latest))
                data = self.latest.pop(call_id)
            try:
                if data is None:
                    w.store.delete(call_key(call_id))
                else:
                    w.store.set(call_key(call_id), data, ex=w.expires)
            except Exception as exc:  # redis-py: ConnectionError, TimeoutError, ResponseError
                failed.add(call_id)
                with self.cond:
                    self.latest.setdefault(call_id, data)  # a newer document wins
                pause = w.health.failed(exc)
                stopped = w.stop.wait(w.health.disable_time) if pause else backoff.wait()
                if stopped:
                    return
                continue
            backoff.reset()
            with w.counts_lock:
                if data is None:
                    w.deletes += 1
                else:
                    w.writes += 1
                if call_id in failed:
                    failed.discard(call_id)
                    w.retried += 1
            if not w.health.up:
                w.health.succeeded(w.pending())


class Writer:
    """`threads` lanes writing to `store`; `put` is the journal's sink."""

    def __init__(self, store: Store, expires: int, threads: int, health: Health) -> None:
        self.store = store
        self.expires = expires
        self.health = health
        self.stop = threading.Event()
        self.draining = False
        self.counts_lock = threading.Lock()
        self.writes = 0
        self.deletes = 0
        self.retried = 0
        """Documents (and deletions) written after at least one failed attempt."""
        self.lanes = [_Lane(self, i) for i in range(max(1, threads))]

    def start(self) -> None:
        for lane in self.lanes:
            lane.thread.start()

    def put(self, call_id: str, data: bytes | None) -> None:
        """The newest state of `call_id` (None: delete its key). Never blocks."""
        lanes = self.lanes
        lane = lanes[zlib.crc32(call_id.encode("utf-8", "surrogateescape")) % len(lanes)]
        with lane.cond:
            lane.latest[call_id] = data
            lane.cond.notify()

    def pending(self) -> int:
        return sum(len(lane.latest) for lane in self.lanes)

    def close(self, grace: float) -> int:
        """Write what is queued (at most `grace` seconds), then stop; what is left unwritten."""
        self.draining = True
        for lane in self.lanes:
            with lane.cond:
                lane.cond.notify_all()
        deadline = time.monotonic() + grace
        for lane in self.lanes:
            if lane.thread.is_alive():
                lane.thread.join(max(0.0, deadline - time.monotonic()))
        self.stop.set()
        for lane in self.lanes:
            if lane.thread.is_alive():
                lane.thread.join(1.0)
        return self.pending()
