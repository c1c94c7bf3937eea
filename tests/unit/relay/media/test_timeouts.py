"""Timeout rules of the call model with a fake clock (rtpengine 10.5's call timer, docs/media.md).

Each media has its own limit: silent-timeout where it does not receive (sendonly, inactive,
a zero address in an answer), else timeout; the call ends when no media is within its limit,
and is counted under the last media's reason. final-timeout ends a call regardless of media.
The same rules are checked against the real rtpengine in
tests/integration/media/test_daemon_media.py.
"""

from __future__ import annotations

import pytest

from relay.call import Registry
from tests.unit.relay.test_calls import Clock, flags, registry, render, session

TIMEOUT, SILENT, FINAL, OFFER = 10, 100, 0, 1000


def call(reg: Registry, cid: str, a: dict[str, object], b: dict[str, object]) -> None:
    a_addr, b_addr = a.pop("address", "192.0.2.10"), b.pop("address", "192.0.2.20")
    reg.offer(cid, "a", None, session(str(a_addr), 49170, **a), flags(), render)
    reg.answer(cid, "a", "b", session(str(b_addr), 50000, **b), flags(), render)


def sweep_at(reg: Registry, clock: Clock, t: float, final: int = FINAL) -> None:
    clock.t = 1000.0 + t
    reg.sweep(TIMEOUT, SILENT, final, OFFER)


@pytest.mark.parametrize(
    "a, b, ends_after, reason",
    [
        ({}, {}, TIMEOUT, "timeout"),
        ({"direction": "sendonly"}, {"direction": "recvonly"}, SILENT, "timeout"),
        ({"direction": "recvonly"}, {"direction": "sendonly"}, SILENT, "silent_timeout"),
        ({"direction": "inactive"}, {"direction": "inactive"}, SILENT, "silent_timeout"),
        # a zero address counts in the answer only (10.5's answer resets the offerer's flags)
        ({"address": "0.0.0.0"}, {}, TIMEOUT, "timeout"),
        ({}, {"address": "0.0.0.0"}, SILENT, "silent_timeout"),
    ],
)
def test_idle_call_ends_at_the_longest_limit_counted_under_the_last_media(
    a: dict[str, object], b: dict[str, object], ends_after: int, reason: str
) -> None:
    reg, clock = registry()
    call(reg, "c", dict(a), dict(b))
    sweep_at(reg, clock, ends_after - 1)
    assert "c" in reg.calls
    sweep_at(reg, clock, ends_after)
    assert "c" not in reg.calls
    t = reg.totals
    counts = {"timeout": t.timeout, "silent_timeout": t.silent_timeout}
    assert counts == {"timeout": 0, "silent_timeout": 0, reason: 1}


def test_media_on_any_stream_keeps_the_call() -> None:
    reg, clock = registry()
    call(reg, "c", {}, {})
    stream = reg.calls["c"].parties["b"].medias[0].rtcp
    assert stream is not None
    for t in range(5, 50, 5):
        stream.last_packet = 1000.0 + t  # an RTCP packet from B every 5 s
        sweep_at(reg, clock, t + 1)
        assert "c" in reg.calls
    sweep_at(reg, clock, 45 + TIMEOUT)
    assert "c" not in reg.calls and reg.totals.timeout == 1


def test_a_packet_on_a_held_leg_counts_against_its_silent_limit() -> None:
    reg, clock = registry()
    call(reg, "c", {"direction": "sendonly"}, {"direction": "recvonly"})
    a_rtp = reg.calls["c"].parties["a"].medias[0].rtp
    assert a_rtp is not None
    a_rtp.last_packet = 1000.0 + 50
    sweep_at(reg, clock, 50 + SILENT - 1)
    assert "c" in reg.calls
    sweep_at(reg, clock, 50 + SILENT)
    assert "c" not in reg.calls


def test_final_timeout_ends_a_call_with_media() -> None:
    reg, clock = registry()
    call(reg, "c", {}, {})
    stream = reg.calls["c"].parties["a"].medias[0].rtp
    assert stream is not None
    stream.last_packet = 1000.0 + 29
    sweep_at(reg, clock, 29, final=30)
    assert "c" in reg.calls
    sweep_at(reg, clock, 30, final=30)
    assert "c" not in reg.calls
    assert (reg.totals.final_timeout, reg.totals.timeout) == (1, 0)


def test_a_new_signal_restarts_the_limits() -> None:
    reg, clock = registry()
    call(reg, "c", {}, {})
    clock.t = 1000.0 + TIMEOUT - 1
    reg.offer("c", "a", None, session(), flags(), render)  # re-INVITE
    sweep_at(reg, clock, TIMEOUT + 1)
    assert "c" in reg.calls
    sweep_at(reg, clock, 2 * TIMEOUT - 1)
    assert "c" not in reg.calls
