"""The daemon-wide limits against the real rtpengine 10.5, reply bytes compared: `max-sessions`
and `set maxsessions` (through the real rtpengine-ctl), `max-load` set below the machine's load
average, `max-cpu`, and `max-bandwidth` with real RTP relayed (docs/spec/ng-protocol.md §2.2,
load limit; rtpengine's call_offer_session_limit checks sessions, load, CPU, bandwidth in that
order). The offers carry Kamailio's `supports: ["load limit"]`, and OpenSIPS's form without it."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.recording.media import Call
from tests.support import daemons
from tests.support.rtp_party import party_sdp
from tests.support.tools import free_port, require

pytestmark = pytest.mark.integration

KINDS = ("rtpengine", "rtpvault")
SESSIONS = b"d6:result10:load limit7:message30:Parallel session limit reachede"
LEGACY = b"d6:result5:error12:error-reason30:Parallel session limit reachede"
LOAD = b"d6:result10:load limit7:message19:Load limit exceedede"
CPU = b"d6:result10:load limit7:message24:CPU usage limit exceedede"
BANDWIDTH = b"d6:result10:load limit7:message24:Bandwidth limit exceedede"
DEADLINE = 60.0  # a guard against a hang, never a measure
_ids = itertools.count()


@contextmanager
def both(tmp: Path, extra: list[str]) -> Iterator[dict[str, daemons.Daemon]]:
    started: dict[str, daemons.Daemon] = {}
    try:
        for kind in KINDS:
            cli = free_port()
            d = daemons.start(kind, tmp / kind, extra=[*extra, f"--listen-cli=127.0.0.1:{cli}",
                                                       "--delete-delay=0"])  # fmt: skip
            d.cli_port = cli  # type: ignore[attr-defined]
            started[kind] = d
        yield started
    finally:
        for d in started.values():
            d.stop()


def offer(d: daemons.Daemon, call_id: str, supports: bool = True) -> bytes:
    body = {"supports": ["load limit"]} if supports else {}
    body.update({"command": "offer", "call-id": call_id, "from-tag": "ft",
                 "sdp": party_sdp(40000)})  # fmt: skip
    c = d.client()
    try:
        return c.call_raw(body)
    finally:
        c.close()


def delete(d: daemons.Daemon, call_id: str) -> None:
    c = d.client()
    try:
        assert c.call({"command": "delete", "call-id": call_id})["result"] == "ok"
    finally:
        c.close()


def ok(reply: bytes) -> bool:
    return reply.endswith(b"6:result2:oke")


def rtpengine_ctl(d: daemons.Daemon, line: str) -> str:
    out = subprocess.run([require("rtpengine-ctl"), "-ip", "127.0.0.1", "-port",
                          str(d.cli_port), *line.split()],  # type: ignore[attr-defined]
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return str(out.stdout)


def until(d: daemons.Daemon, wanted: Callable[[bytes], bool],
          between: Callable[[], None] = lambda: time.sleep(0.1)) -> bytes:  # fmt: skip
    """Offer new calls until a reply is `wanted` (the daemon's figures catch up once a
    second); the calls accepted on the way are deleted."""
    deadline = time.monotonic() + DEADLINE
    while True:
        call_id = f"probe-{next(_ids)}"
        reply = offer(d, call_id)
        if wanted(reply):
            return reply
        if ok(reply):
            delete(d, call_id)
        assert time.monotonic() < deadline, (d.name, reply)
        between()


@pytest.fixture
def busy() -> Iterator[None]:
    """One core kept busy by another process until the load average is at least 0.02 (it
    stays above 0.01 for the test: a 1-minute average falls slowly)."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 120
        while os.getloadavg()[0] < 0.02:
            assert time.monotonic() < deadline, "load average never rose"
            time.sleep(0.5)
        yield
    finally:
        burner.kill()
        burner.wait()


def test_max_sessions_and_set_maxsessions(tmp_path: Path) -> None:
    with both(tmp_path, ["--max-sessions=1"]) as ds:
        seen: dict[str, list[bytes | str]] = {}
        for kind, d in ds.items():
            r: list[bytes | str] = []
            r.append(offer(d, "c1"))
            r += [offer(d, "c2"), offer(d, "c2", supports=False)]
            r.append(offer(d, "c1"))  # a re-offer is no new session
            r.append(rtpengine_ctl(d, "set maxsessions 2"))
            r.append(rtpengine_ctl(d, "list maxsessions"))
            r += [offer(d, "c2"), offer(d, "c3")]
            delete(d, "c1")  # its session is free again
            r.append(offer(d, "c3"))
            r.append(rtpengine_ctl(d, "set maxsessions 0"))
            r.append(offer(d, "c4"))
            r.append(rtpengine_ctl(d, "params diff"))
            r.append(rtpengine_ctl(d, "set maxsessions -1"))
            r.append(offer(d, "c4"))
            seen[kind] = [b"ok" if isinstance(x, bytes) and ok(x) else x for x in r]
        assert seen["rtpvault"] == seen["rtpengine"]
        assert seen["rtpvault"][:4] == [b"ok", SESSIONS, LEGACY, b"ok"]
        assert seen["rtpvault"][6:9] == [b"ok", SESSIONS, b"ok"]
        assert seen["rtpvault"][-1] == b"ok"


def test_max_load_below_the_load_average(tmp_path: Path, busy: None) -> None:
    with both(tmp_path, ["--max-load=0.01"]) as ds:
        seen = {kind: [until(d, lambda r: not ok(r)), offer(d, "legacy", supports=False)]
                for kind, d in ds.items()}  # fmt: skip
        assert seen["rtpvault"] == seen["rtpengine"] == [LOAD, LEGACY]
    with both(tmp_path, ["--max-load=0.01", "--max-cpu=0.01", "--max-sessions=5"]) as ds:
        seen = {kind: [until(d, lambda r: not ok(r))] for kind, d in ds.items()}
        assert seen["rtpvault"] == seen["rtpengine"] == [LOAD]  # load is checked before CPU
    with both(tmp_path, ["--max-load=1000"]) as ds:
        assert all(ok(offer(d, "fine")) for d in ds.values())


def test_max_cpu(tmp_path: Path, busy: None) -> None:
    with both(tmp_path, ["--max-cpu=0.1"]) as ds:
        seen = {kind: until(d, lambda r: not ok(r)) for kind, d in ds.items()}
        assert seen["rtpvault"] == seen["rtpengine"] == CPU


def test_max_bandwidth_with_rtp_relayed(tmp_path: Path) -> None:
    # 2 x 25 packets of 172 bytes per 0.1 s: about 86 KB/s relayed, the limit 2 KB/s
    with both(tmp_path, ["--max-bandwidth=2000"]) as ds:
        for kind, d in ds.items():
            assert ok(offer(d, "quiet")), kind  # no traffic, no refusal
            talk(d, kind)


def talk(d: daemons.Daemon, kind: str) -> None:
    call = Call(d, "talking")
    call.offer()
    call.answer()
    sent = itertools.count(0, 25)
    refused = until(d, lambda r: not ok(r),
                    lambda: call.media(25, start=next(sent), interval=0.004))  # fmt: skip
    assert refused == BANDWIDTH, kind
    assert call.received(call.callee, 25) > 0
    assert offer(d, "legacy", supports=False) == LEGACY
    # silence: the next per-second figure is 0 and new calls are accepted again
    assert ok(until(d, ok, lambda: time.sleep(0.2)))
    call.ng.close()
