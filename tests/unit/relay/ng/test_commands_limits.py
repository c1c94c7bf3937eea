"""Offers against the daemon-wide limits (relay.limits): the refusal replies of rtpengine 10.5
(docs/spec/ng-protocol.md §2.2, load limit), and the shared session count equal to this worker's
calls after every way a call starts or ends (delete, delete-delay, timeout, terminate, failed
offers)."""

from __future__ import annotations

from typing import Any

import pytest

from relay.limits import DaemonLimits, Limits
from relay.ng.commands import Commands
from relay.ng.errors import NgError
from tests.unit.relay.test_calls import registry

SDP = ("v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
       "m=audio 49170 RTP/AVP 0\r\n")  # fmt: skip
NO_MEDIA = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
SOURCE = ("127.0.0.1", 5060)
LOAD_LIMIT = ["load limit"]


def ng(commands: Commands, command: str, call_id: str, **extra: Any) -> dict[str, Any]:
    body = {"command": command, "call-id": call_id, "from-tag": "a", **extra}
    try:
        return commands.dispatch(body, SOURCE)
    except NgError as exc:
        return {"result": "error", "error-reason": exc.reason}


def offer(commands: Commands, call_id: str, sdp: str = SDP, **extra: Any) -> dict[str, Any]:
    return ng(commands, "offer", call_id, sdp=sdp, **extra)


def make(max_sessions: int = -1, port_max: int = 43999, **limits: Any) -> Commands:
    reg, _ = registry(port_max)
    shared = DaemonLimits(1, Limits(max_sessions=max_sessions, **limits))
    return Commands(reg, limits=shared.worker(0))


def counted(commands: Commands) -> int:
    """The count every worker sees for this one, checked against its calls."""
    sessions = commands.limits.daemon.sessions()
    assert sessions == len(commands.registry.calls)
    return sessions


def test_the_last_session_refused_as_rtpengine() -> None:
    commands = make(max_sessions=2)
    assert offer(commands, "c1")["result"] == "ok"
    assert offer(commands, "c2", supports=LOAD_LIMIT)["result"] == "ok"
    assert offer(commands, "c3", supports=LOAD_LIMIT) == {
        "result": "load limit", "message": "Parallel session limit reached"}  # fmt: skip
    assert offer(commands, "c3") == {
        "result": "error", "error-reason": "Parallel session limit reached"}  # fmt: skip
    assert offer(commands, "c1")["result"] == "ok"  # a re-offer is no new call
    assert ng(commands, "answer", "c1", sdp=SDP, **{"to-tag": "b"})["result"] == "ok"
    assert commands.registry.totals.rejected == 2
    assert counted(commands) == 2


def test_every_way_a_call_ends_gives_its_session_back() -> None:
    commands = make(max_sessions=3)
    reg = commands.registry
    clock = reg.wallclock
    for call_id in ("deleted", "delayed", "timed-out"):
        assert offer(commands, call_id)["result"] == "ok"
    assert counted(commands) == 3 and offer(commands, "x")["result"] == "error"
    assert ng(commands, "delete", "deleted", **{"delete-delay": 0})["result"] == "ok"
    assert counted(commands) == 2
    assert ng(commands, "delete", "delayed")["result"] == "ok"  # delete-delay 30: kept
    assert counted(commands) == 2
    clock.t += 31  # type: ignore[attr-defined]
    reg.sweep(3600, 3600, 0, 3600)
    assert counted(commands) == 1
    clock.t += 11  # type: ignore[attr-defined]
    reg.sweep(3600, 3600, 10, 3600)  # final-timeout
    assert "timed-out" not in reg.calls and counted(commands) == 0
    assert offer(commands, "forced")["result"] == "ok"
    assert reg.terminate("forced") and counted(commands) == 0


def test_failed_offers_hold_no_session() -> None:
    commands = make(max_sessions=1, port_max=43501)  # two ports: an offer needs four
    assert offer(commands, "c1") == {"result": "error", "error-reason": "Ran out of ports"}
    assert counted(commands) == 0
    assert offer(commands, "c2", sdp="hello world")["result"] == "error"
    assert counted(commands) == 0
    assert ng(commands, "answer", "c9", sdp=SDP, **{"to-tag": "b"})["result"] == "error"
    assert counted(commands) == len(commands.registry.calls)


def test_an_offer_without_media_keeps_its_call_and_its_session() -> None:
    commands = make(max_sessions=1)
    # rtpengine keeps the call of an offer it could not rewrite: it stays counted
    assert offer(commands, "c1", sdp=NO_MEDIA)["error-reason"] == "Error rewriting SDP"
    assert counted(commands) == 1
    assert offer(commands, "c2")["error-reason"] == "Parallel session limit reached"


@pytest.mark.parametrize("limits, reason", [
    ({"max_bandwidth": 1}, "Bandwidth limit exceeded"),
])  # fmt: skip
def test_other_limits_answer_their_own_message(limits: dict[str, Any], reason: str) -> None:
    commands = make(**limits)
    commands.limits.publish_bandwidth(1)
    assert offer(commands, "c1", supports=LOAD_LIMIT) == {"result": "load limit",
                                                          "message": reason}  # fmt: skip
    # without `supports: load limit`, only the session text exists (legacy protocol)
    assert offer(commands, "c1")["error-reason"] == "Parallel session limit reached"
    assert commands.registry.totals.rejected == 0  # rtpengine counts sessions only
    assert counted(commands) == 0


def test_the_sweep_publishes_this_workers_bandwidth() -> None:
    commands = make(max_bandwidth=10**9)
    reg = commands.registry
    assert offer(commands, "c1")["result"] == "ok"
    reg.sweep(3600, 3600, 0, 3600)
    stream = next(iter(reg.calls["c1"].streams()))
    stream.bytes += 10**6
    reg.sweep(3600, 3600, 0, 3600)
    assert commands.limits.daemon.bandwidth() > 0
