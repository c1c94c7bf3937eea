"""relay.limits across real forked processes: the last session goes to exactly one worker,
`set maxsessions` reaches every worker, a dead worker's slot is reset and its lock released, and
the machine-wide load/CPU figures are sampled once for all (docs/spec/ng-protocol.md §2.2)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from relay.limits import (
    BANDWIDTH,
    CPU,
    LOAD,
    SAMPLE_INTERVAL,
    SESSIONS,
    DaemonLimits,
    Limits,
    cpu_times,
    load_x100,
)


def in_child(fn: Callable[[], int]) -> int:
    """Run `fn` in a forked process; its exit status is what `fn` returned."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = fn()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_workers_racing_for_the_last_sessions_get_exactly_max_sessions() -> None:
    workers, rounds = 4, 20
    for limit in (1, 3):
        for _ in range(rounds):
            limits = DaemonLimits(workers, Limits(max_sessions=limit))
            go_r, go_w = os.pipe()
            pids = []
            for index in range(workers):
                pid = os.fork()
                if pid == 0:  # a worker: wait for the start, then take every session it can
                    code = 99
                    try:
                        os.close(go_w)
                        os.read(go_r, 1)
                        mine = limits.worker(index)
                        code = sum(mine.admit_new_call() is None for _ in range(limit + 2))
                    finally:
                        os._exit(code)
                pids.append(pid)
            os.close(go_r)
            os.close(go_w)  # EOF: every worker starts at once
            admitted = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
            assert sum(admitted) == limit, admitted
            assert limits.sessions() == limit
            assert limits.worker(0).admit_new_call() == SESSIONS


def test_set_max_sessions_is_seen_by_every_process() -> None:
    limits = DaemonLimits(2, Limits(max_sessions=-1))
    assert in_child(lambda: limits.worker(1).max_sessions + 1) == 0  # -1 in the child
    limits.set_max_sessions(0)  # the supervisor (or worker 0's ctl) sets it
    assert in_child(lambda: 0 if limits.worker(1).admit_new_call() == SESSIONS else 1) == 0

    def child_sets() -> int:
        limits.worker(1).set_max_sessions(7)
        return 0

    assert in_child(child_sets) == 0
    assert limits.max_sessions == limits.worker(0).max_sessions == 7
    with pytest.raises(ValueError, match="either positive or -1"):
        limits.set_max_sessions(-2)


def test_reset_frees_a_dead_workers_sessions_and_its_lock() -> None:
    limits = DaemonLimits(2, Limits(max_sessions=2))

    def admit_two_and_die_holding_the_lock() -> int:
        w = limits.worker(1)
        assert w.admit_new_call() is None and w.admit_new_call() is None
        w.publish_bandwidth(1234)
        with limits._locked():
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 inside the lock
        return 1

    assert in_child(admit_two_and_die_holding_the_lock) == -signal.SIGKILL
    # the kernel dropped the dead worker's record lock: this does not hang
    assert limits.worker(0).admit_new_call() == SESSIONS
    assert (limits.sessions(), limits.bandwidth()) == (2, 1234)
    limits.reset(1)  # the supervisor, before forking its replacement
    assert (limits.sessions(), limits.bandwidth()) == (0, 0)
    assert limits.worker(0).admit_new_call() is None


def test_sessions_published_by_a_worker_replace_its_count() -> None:
    limits = DaemonLimits(2, Limits(max_sessions=3))
    w0, w1 = limits.worker(0), limits.worker(1)
    assert w0.admit_new_call() is None and w1.admit_new_call() is None
    w0.publish_sessions(0)  # the offer failed: no call, the reservation goes
    assert limits.sessions() == 1
    assert w0.admit_new_call() is None and w0.admit_new_call() is None
    assert w1.admit_new_call() == SESSIONS
    w0.call_ended()
    assert w1.admit_new_call() is None
    with pytest.raises(ValueError, match="expected 0..1"):
        limits.worker(2)


def test_bandwidth_of_all_workers_counts() -> None:
    limits = DaemonLimits(2, Limits(max_bandwidth=1000))
    w0, w1 = limits.worker(0), limits.worker(1)
    assert w0.measures_bandwidth
    w0.tick(10.0, 0)
    w0.tick(12.0, 1200)  # 600 B/s
    assert limits.bandwidth() == 600 and w1.admit_new_call() is None
    w1.publish_bandwidth(400)
    assert w1.admit_new_call() == BANDWIDTH  # rtpengine: refused at bw >= limit
    w0.tick(13.0, 1200)  # silence
    assert w1.admit_new_call() is None
    assert not DaemonLimits(1).worker(0).measures_bandwidth


def burn_until(done: Callable[[], bool], seconds: float = 120.0) -> None:
    """Keep one core busy until `done()` (the machine's own figures, not a clock threshold)."""
    deadline = time.monotonic() + seconds
    while not done():
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            pass
        assert time.monotonic() < deadline, "the machine's figure never rose"


def test_load_limit_below_the_current_load_refuses() -> None:
    burn_until(lambda: (load_x100() or 0) >= 2)
    limits = DaemonLimits(2, Limits(max_load=0.01, max_sessions=5))
    assert limits.worker(1).admit_new_call() == LOAD
    assert limits.sessions() == 0  # nothing reserved for a refused call
    high = DaemonLimits(1, Limits(max_load=1e6))
    assert high.worker(0).admit_new_call() is None


def test_sessions_are_checked_before_load() -> None:
    burn_until(lambda: (load_x100() or 0) >= 2)
    limits = DaemonLimits(1, Limits(max_load=0.01, max_sessions=0))
    assert limits.worker(0).admit_new_call() == SESSIONS


def test_cpu_usage_is_sampled_once_for_all_workers() -> None:
    assert cpu_times() is not None
    limits = DaemonLimits(2, Limits(max_cpu=0.01))  # 0.01 %: any work at all
    w0, w1 = limits.worker(0), limits.worker(1)
    assert w0.admit_new_call() is None  # one sample so far: no usage figure yet, as rtpengine
    start = time.monotonic()
    before = cpu_times()
    assert before is not None
    burn_until(lambda: (cpu_times() or before)[0] > before[0])
    now = max(time.monotonic(), start + SAMPLE_INTERVAL)
    w1.tick(now, None)  # worker 1 samples for both
    assert w0.admit_new_call() == CPU
    sampled = bytes(limits._q)
    w0.tick(now + SAMPLE_INTERVAL / 2, None)  # too soon after worker 1's: no second sample
    assert bytes(limits._q) == sampled


def test_load_is_checked_before_cpu() -> None:
    burn_until(lambda: (load_x100() or 0) >= 2)
    limits = DaemonLimits(1, Limits(max_load=0.01, max_cpu=0.01))
    before = cpu_times()
    assert before is not None
    burn_until(lambda: (cpu_times() or before)[0] > before[0])
    w = limits.worker(0)
    w.tick(time.monotonic() + SAMPLE_INTERVAL, None)
    assert w.admit_new_call() == LOAD


def test_limits_are_truncated_as_rtpengine_converts_them() -> None:
    # main.c: rtpe_config.load_limit = max_load * 100 (double to int)
    limits = DaemonLimits(1, Limits(max_load=0.019, max_cpu=0.019))
    assert limits._q[1] == 1 and limits._q[2] == 1


def test_worker_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DaemonLimits(0)

