"""Daemon-wide admission limits, shared by every worker process: `max-sessions` (and its run-time
setter), `max-load`, `max-cpu` and `max-bandwidth` (docs/spec/ng-protocol.md §2.2, load limit).

rtpengine 10.5 checks them in `call_offer_session_limit`, on an offer for a call it does not
have, in this order: sessions (calls in its table), load average, CPU usage, bandwidth (bytes per
second relayed, user and kernel). The first one over its limit names the refusal. Load and CPU
come from its "load monitor" thread: `getloadavg` ×100 and the whole machine's
`/proc/stat` `cpu` line (user+nice+system against idle) between two samples 0.5 s apart, kept
as integers (×100) and compared with the limits ×100, both truncated as C does.

rtpvault runs `num-threads` worker processes, each with its own calls, so these figures live in
one anonymous shared memory file made once by the supervisor before it forks (`DaemonLimits`):
a header with the limits and the machine samples, and one slot per worker index with the
sessions it owns and the bandwidth it relays. Each worker holds a `WorkerLimits` for its index.

Every value is one aligned 8-byte word, read and written whole (a memoryview cast to `q`), and
each slot has one writer: its worker (or the supervisor's `reset` once that worker is dead), so
counts move without a lock. The lock serves what must be atomic across workers: with a session
limit set, checking the total and reserving the session (two workers racing for the last
session cannot both get it), and the load/CPU sample. It is a POSIX record lock (`lockf`) on
the memfd: it excludes processes, and the kernel drops it when its holder dies, so a worker
killed with -9 inside it cannot stall the others (a semaphore would stay taken). Within one
process a thread lock is taken first, as record locks do not exclude one process's threads.

Load and CPU are machine-wide: whichever worker ticks first after 0.5 s samples them for all,
so N workers cost one sample per 0.5 s, not N, and all read the same figure.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "BANDWIDTH", "CPU", "LOAD", "NO_LIMITS", "SESSIONS", "DaemonLimits", "LimitSettings",
    "Limits", "WorkerLimits", "cpu_times", "load_x100",
]  # fmt: skip

# rtpengine 10.5's magic_load_limit_strings (control_ng.c), in its check order.
SESSIONS = "Parallel session limit reached"
LOAD = "Load limit exceeded"
CPU = "CPU usage limit exceeded"
BANDWIDTH = "Bandwidth limit exceeded"

SAMPLE_INTERVAL = 0.5
"""Seconds between two load/CPU samples (rtpengine's load_thread sleeps 500 ms)."""

_PROC_STAT = "/proc/stat"

# The shared words: the header, then two per worker (sessions owned, counting one while an
# offer for a new call is handled; bytes per second relayed). _SAMPLED is a double.
(_MAX_SESSIONS, _LOAD_LIMIT, _CPU_LIMIT, _BW_LIMIT, _LOAD, _CPU, _USED, _IDLE, _SAMPLED) = range(9)
_HEADER_WORDS = 9


class LimitSettings(Protocol):
    """The four keys (relay.config.Settings has them)."""

    @property
    def max_sessions(self) -> int: ...
    @property
    def max_load(self) -> float: ...
    @property
    def max_cpu(self) -> float: ...
    @property
    def max_bandwidth(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Limits:
    max_sessions: int = -1
    max_load: float = 0.0
    max_cpu: float = 0.0
    max_bandwidth: int = 0


NO_LIMITS = Limits()


def load_x100() -> int | None:
    """The 1-minute load average ×100, truncated (rtpengine's `load_average`)."""
    try:
        return int(os.getloadavg()[0] * 100.0)
    except OSError:
        return None


def cpu_times() -> tuple[int, int] | None:
    """(user+nice+system, idle) ticks of the whole machine, from /proc/stat's `cpu` line."""
    try:
        with open(_PROC_STAT, "rb") as f:
            fields = f.readline().split()
        user, nice, system, idle = (int(x) for x in fields[1:5])
    except (OSError, ValueError):
        return None
    return user + nice + system, idle


class DaemonLimits:
    """The shared limits of one daemon; make it before forking the workers."""

    def __init__(self, workers: int, settings: LimitSettings = NO_LIMITS) -> None:
        if workers < 1:
            raise ValueError(f"workers: {workers}, expected at least 1")
        self.workers = workers
        self._fd = os.memfd_create("rtpvault-limits", os.MFD_CLOEXEC)
        size = 8 * (_HEADER_WORDS + 2 * workers)
        os.ftruncate(self._fd, size)  # zero-filled
        mem = mmap.mmap(self._fd, size)  # MAP_SHARED: every forked worker sees one copy
        weakref.finalize(self, os.close, self._fd)
        self._q = memoryview(mem).cast("q")
        self._d = memoryview(mem).cast("d")
        self._thread_lock = threading.Lock()
        q = self._q
        q[_MAX_SESSIONS] = max(-1, settings.max_sessions)
        # C converts the configured doubles to its int fields by truncation (main.c)
        q[_LOAD_LIMIT] = int(settings.max_load * 100)
        q[_CPU_LIMIT] = int(settings.max_cpu * 100)
        q[_BW_LIMIT] = max(0, settings.max_bandwidth)
        with self._locked():
            self._sample(time.monotonic())  # the first sample: CPU usage needs two

    # -- used by the supervisor ----------------------------------------------------------------
    def worker(self, index: int) -> WorkerLimits:
        if not 0 <= index < self.workers:
            raise ValueError(f"worker index {index}, expected 0..{self.workers - 1}")
        return WorkerLimits(self, index)

    def reset(self, index: int) -> None:
        """Worker `index` died: its calls are gone, and so is its traffic. Call it before
        forking the replacement (the slot has one writer at a time)."""
        base = _HEADER_WORDS + 2 * index
        self._q[base] = self._q[base + 1] = 0

    # -- shared values ---------------------------------------------------------------------
    @property
    def max_sessions(self) -> int:
        return self._q[_MAX_SESSIONS]

    def set_max_sessions(self, value: int) -> None:
        """`set maxsessions N` (-1: no limit), for every worker at once."""
        if value < -1:
            raise ValueError(f"max-sessions {value}: either positive or -1")
        self._q[_MAX_SESSIONS] = value

    def sessions(self) -> int:
        """Sessions of all workers (reservations of offers being handled included)."""
        return sum(self._q[_HEADER_WORDS::2])

    def bandwidth(self) -> int:
        """Bytes per second relayed by all workers, as last published."""
        return sum(self._q[_HEADER_WORDS + 1 :: 2])

    # -- internals -------------------------------------------------------------------------
    def _lock(self) -> None:
        self._thread_lock.acquire()
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def _unlock(self) -> None:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._lock()
        try:
            yield
        finally:
            self._unlock()

    def _sample(self, now: float) -> None:
        """Refresh the machine's load and CPU figures (under the lock), as rtpengine's
        load_thread: only those with a limit, CPU from the ticks since the previous sample."""
        q = self._q
        self._d[_SAMPLED] = now
        if q[_LOAD_LIMIT]:
            load = load_x100()
            if load is not None:
                q[_LOAD] = load
        if q[_CPU_LIMIT]:
            times = cpu_times()
            if times is None:
                return
            used, idle = times
            used_last, idle_last = q[_USED], q[_IDLE]
            total = (used - used_last) + (idle - idle_last)
            if total > 0 and used_last and idle_last:
                q[_CPU] = (used - used_last) * 10000 // total
            q[_USED], q[_IDLE] = used, idle

    def _machine_refusal(self) -> str | None:
        """Load, CPU, bandwidth: figures sampled or published, read as they stand."""
        q = self._q
        if q[_LOAD_LIMIT] and q[_LOAD] >= q[_LOAD_LIMIT]:
            return LOAD
        if q[_CPU_LIMIT] and q[_CPU] >= q[_CPU_LIMIT]:
            return CPU
        if q[_BW_LIMIT] and self.bandwidth() >= q[_BW_LIMIT]:
            return BANDWIDTH
        return None


class WorkerLimits:
    """One worker's view of the daemon's limits (its slot is `index`). Single-threaded use."""

    def __init__(self, daemon: DaemonLimits, index: int) -> None:
        self.daemon = daemon
        self.index = index
        self._sessions = _HEADER_WORDS + 2 * index
        self._last_bytes: tuple[float, int] | None = None

    def admit_new_call(self) -> str | None:
        """None: a new call may start, and one session is reserved for it (this worker's count
        goes up by one until `publish_sessions` sets it again). Otherwise the refusal, in
        rtpengine's order: sessions, load, CPU, bandwidth."""
        d, q, mine = self.daemon, self.daemon._q, self._sessions
        if q[_MAX_SESSIONS] < 0:  # no total to keep: nothing to do atomically
            refusal = d._machine_refusal()
            if refusal is None:
                q[mine] += 1
            return refusal
        # (a worker that read "no limit" just before `set maxsessions` may still add its call:
        # the set then came after that admission, as with an offer already being handled)
        d._lock()
        try:
            limit = q[_MAX_SESSIONS]
            if limit >= 0 and d.sessions() >= limit:
                return SESSIONS
            refusal = d._machine_refusal()
            if refusal is None:
                q[mine] += 1
            return refusal
        finally:
            d._unlock()

    def publish_sessions(self, count: int) -> None:
        """This worker now owns `count` calls (after each call ends, and after an offer)."""
        self.daemon._q[self._sessions] = count

    def call_ended(self) -> None:
        """One call of this worker is gone (for callers that count instead of publishing)."""
        q = self.daemon._q
        q[self._sessions] = max(0, q[self._sessions] - 1)

    def publish_bandwidth(self, bps: int) -> None:
        self.daemon._q[self._sessions + 1] = max(0, bps)

    @property
    def max_sessions(self) -> int:
        return self.daemon.max_sessions

    def set_max_sessions(self, value: int) -> None:
        self.daemon.set_max_sessions(value)

    @property
    def measures_bandwidth(self) -> bool:
        return self.daemon._q[_BW_LIMIT] > 0

    def tick(self, now: float, relayed_bytes: int | None) -> None:
        """Once a second or so: publish this worker's bytes per second since the previous tick
        (None: not measured, no bandwidth limit), and sample load and CPU for the whole daemon
        if the last sample of any worker is SAMPLE_INTERVAL old."""
        if relayed_bytes is None:
            self._last_bytes = None
        else:
            if self._last_bytes is not None:
                then, before = self._last_bytes
                if now > then:
                    self.publish_bandwidth(int(max(0, relayed_bytes - before) / (now - then)))
            self._last_bytes = (now, relayed_bytes)
        d = self.daemon
        if not (d._q[_LOAD_LIMIT] or d._q[_CPU_LIMIT]):
            return
        with d._locked():
            if now - d._d[_SAMPLED] >= SAMPLE_INTERVAL:
                d._sample(now)
