"""Media through the real daemons: `rtpvault run` and rtpengine 10.5 side by side in one test.

Hosts a, b, c and the relay are network namespaces joined by veth links (netns.Topology); both
daemons run in the relay namespace on the same address with their own port ranges, get the same
ng commands and the same packets, and the test asserts what arrives (bytes, source address, TOS
byte) and what `query` / `list` / `statistics` report — for rtpvault exactly, and against what
rtpengine does wherever rtpvault is meant to behave the same.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.tools import require, unavailable

from .daemon_rig import Host, Relay, rtcp_sr, rtp, rtp_stream, wait_counted, wait_until_gone
from .netns import Topology

pytestmark = pytest.mark.integration

KINDS = ("rtpvault", "rtpengine")
Start = Callable[..., dict[str, Relay]]


@pytest.fixture
def topo() -> Iterator[Topology]:
    require("ip")
    if os.geteuid() != 0:
        unavailable("network namespaces need root (CI=true fails here)")
    t = Topology(f"rvd{os.getpid() % 100000}")
    try:
        t.build()
        yield t
    finally:
        t.destroy()


@pytest.fixture
def start(topo: Topology, tmp_path: Path) -> Iterator[Start]:
    """start(*options) -> {"rtpvault": Relay, "rtpengine": Relay}, stopped after the test."""
    require("rtpengine")
    running: list[Relay] = []

    def go(*extra: str) -> dict[str, Relay]:
        out = {}
        for kind in KINDS:
            r = Relay(kind, topo, tmp_path, ["--log-level=6", *extra])
            running.append(r)
            out[kind] = r
        return out

    yield go
    for r in running:
        r.stop()


@pytest.fixture
def hosts(topo: Topology) -> Iterator[dict[str, Host]]:
    hs = {name: Host(topo, name) for name in ("a", "b", "c")}
    hs.update({f"{name}-rtcp": Host(topo, name, 40001) for name in ("a", "b")})
    yield hs
    for h in hs.values():
        h.close()


def test_rtp_and_rtcp_cross_both_ways_intact_with_rewritten_addresses(
    start: Start, hosts: dict[str, Host]
) -> None:
    a, b = hosts["a"], hosts["b"]
    seen: dict[str, dict] = {}
    relays = start()
    for kind, relay in relays.items():
        to_a, to_b = relay.call(f"intact-{kind}")
        for seq in range(20):
            a.send(to_a, rtp(seq, bytes([seq]) * 160, ssrc=0xA))
            data, src, _ = b.recv()
            assert (data, src) == (rtp(seq, bytes([seq]) * 160, ssrc=0xA), (relay.address, to_b))
        for seq in range(7):
            b.send(to_b, rtp(1000 + seq, b"\xbb" * 160, ssrc=0xB))
            data, src, _ = a.recv()
            assert (data, src) == (rtp(1000 + seq, b"\xbb" * 160, ssrc=0xB), (relay.address, to_a))
        a_rtcp, b_rtcp = hosts["a-rtcp"], hosts["b-rtcp"]
        a_rtcp.send(to_a + 1, rtcp_sr(0xA))
        assert b_rtcp.recv()[:2] == (rtcp_sr(0xA), (relay.address, to_b + 1))
        b_rtcp.send(to_b + 1, rtcp_sr(0xB))
        assert a_rtcp.recv()[:2] == (rtcp_sr(0xB), (relay.address, to_a + 1))
        q = relay.query(f"intact-{kind}")
        seen[kind] = q
        ra, rb = rtp_stream(q, "ta"), rtp_stream(q, "tb")
        assert ra["stats"] == {"packets": 20, "bytes": 20 * 172, "errors": 0}, kind
        assert rb["stats"] == {"packets": 7, "bytes": 7 * 172, "errors": 0}, kind
        assert rtp_stream(q, "ta", rtcp=True)["stats"] == {"packets": 1, "bytes": 28, "errors": 0}
        assert ra["endpoint"] == {"family": "IPv4", "address": "10.99.1.2", "port": 40000}
        assert rb["endpoint"] == {"family": "IPv4", "address": "10.99.2.2", "port": 40000}
        assert (ra["local port"], rb["local port"]) == (to_a, to_b)
        assert (ra["SSRC"], rb["SSRC"]) == (0xA, 0xB)
        assert q["totals"]["RTP"] == {"packets": 27, "bytes": 27 * 172, "errors": 0}
        assert q["totals"]["RTCP"] == {"packets": 2, "bytes": 56, "errors": 0}
    # the same keys as rtpengine's, per stream and per call
    v, e = seen["rtpvault"], seen["rtpengine"]
    assert sorted(rtp_stream(v, "ta")) == sorted(rtp_stream(e, "ta"))
    assert sorted(rtp_stream(v, "ta")["stats"]) == sorted(rtp_stream(e, "ta")["stats"])
    assert sorted(v["totals"]) == sorted(e["totals"])
    tv, te = relays["rtpvault"].totals(), relays["rtpengine"].totals()
    assert sorted(tv) == sorted(te)
    assert (tv["relayedpackets"], tv["relayedbytes"]) == (29, 27 * 172 + 56)
    assert tv["relayedpacketerrors"] == 0


def test_third_host_injecting_after_latching_is_dropped_and_counted(
    start: Start, hosts: dict[str, Host]
) -> None:
    """rtpvault drops and counts; rtpengine 10.5 relays the injected packets (documented
    difference, docs/media.md). Both keep sending B's replies to A."""
    a, b, c = hosts["a"], hosts["b"], hosts["c"]
    for kind, relay in start("--endpoint-learning=immediate").items():
        cid = f"inject-{kind}"
        to_a, to_b = relay.call(cid)
        before = relay.totals()
        a.send(to_a, rtp(1))
        assert b.recv()[0] == rtp(1)  # latched on A
        for seq in range(3):
            c.send(to_a, rtp(900 + seq, b"evil" * 40, ssrc=0xE))
        a.send(to_a, rtp(2))
        got = b.drain()
        b.send(to_b, rtp(3))
        assert a.recv()[0] == rtp(3)  # replies still go to A, not to the injector
        assert c.drain(0.2) == []
        stream = rtp_stream(relay.query(cid), "ta")
        assert stream["endpoint"]["address"] == "10.99.1.2"
        if kind == "rtpvault":
            assert got == [rtp(2)]
            assert stream["stats"] == {"packets": 2, "bytes": 2 * 172, "errors": 3}
            after = relay.totals()
            assert after["relayedpacketerrors"] - before["relayedpacketerrors"] == 3
            assert after["relayedpackets"] - before["relayedpackets"] == 3
        else:
            # rtpengine's worker threads may reorder: compare as a set
            want = [rtp(900 + s, b"evil" * 40, ssrc=0xE) for s in range(3)] + [rtp(2)]
            assert sorted(got) == sorted(want)
            assert stream["stats"]["errors"] == 0


def test_strict_source_drops_alike_in_both(start: Start, hosts: dict[str, Host]) -> None:
    a, b, c = hosts["a"], hosts["b"], hosts["c"]
    for kind, relay in start("--endpoint-learning=immediate").items():
        to_a, _ = relay.call(f"strict-{kind}", flags=["strict-source"])
        a.send(to_a, rtp(1))
        assert b.recv()[0] == rtp(1)
        c.send(to_a, rtp(2))
        a.send(to_a, rtp(3))
        assert b.drain() == [rtp(3)], kind
        stream = rtp_stream(relay.query(f"strict-{kind}"), "ta")
        assert stream["stats"]["errors"] == 1, kind
        assert "strict source address" in stream["flags"], kind


@pytest.mark.parametrize(
    "learning, first, expect",
    [
        # delayed (default): inside the learning window the latest source takes over
        ("delayed", ("a", "c"), "c"),
        # immediate: the first source confirms at once
        ("immediate", ("c", "a"), "c"),
        ("immediate", ("a", "c"), "a"),
        # off: replies always go to the SDP address
        ("off", ("c",), "a"),
    ],
)
def test_before_latching_the_learning_rules_decide_as_in_rtpengine(
    start: Start, hosts: dict[str, Host], learning: str, first: tuple[str, ...], expect: str
) -> None:
    b = hosts["b"]
    for kind, relay in start(f"--endpoint-learning={learning}").items():
        to_a, to_b = relay.call(f"learn-{kind}")
        for seq, name in enumerate(first):
            hosts[name].send(to_a, rtp(seq))
        # b's packet must come after the relay has read the others (on a loaded machine they
        # may still wait in the socket when b sends); a relay that latched on the first source
        # does not count the second, so wait for the first: both arrived together
        wait_counted(relay, f"learn-{kind}", "ta", 1)
        b.drain(0.3)
        b.send(to_b, rtp(77))
        assert hosts[expect].recv()[0] == rtp(77), kind
        others = [hosts[n] for n in ("a", "c") if n != expect]
        assert all(h.drain(0.2) == [] for h in others), kind


def test_tos_byte_184_on_packets_leaving_both_relays(start: Start, hosts: dict[str, Host]) -> None:
    a, b = hosts["a"], hosts["b"]
    for kind, relay in start("--tos=184").items():
        to_a, to_b = relay.call(f"tos-{kind}")
        a.send(to_a, rtp(1))
        assert b.recv()[::2] == (rtp(1), 184), kind
        b.send(to_b, rtp(2))
        assert a.recv()[::2] == (rtp(2), 184), kind
        hosts["a-rtcp"].send(to_a + 1, rtcp_sr())
        assert hosts["b-rtcp"].recv()[::2] == (rtcp_sr(), 184), kind


def test_without_tos_packets_leave_unmarked(start: Start, hosts: dict[str, Host]) -> None:
    for kind, relay in start().items():
        to_a, _ = relay.call(f"notos-{kind}")
        hosts["a"].send(to_a, rtp(1))
        assert hosts["b"].recv()[2] == 0, kind


def test_timeout_and_silent_timeout_delete_idle_calls(start: Start, hosts: dict[str, Host]) -> None:
    """timeout=3, silent-timeout=5: idle, held, inactive and zero-address calls are deleted and
    counted under rtpengine's reasons, while a call that keeps receiving media is not deleted.

    rtpengine gives each media its own limit (silent-timeout where it does not receive) and
    counts the call under the LAST media's reason: A sendonly / B recvonly ends as "timeout",
    both inactive as "silent-timeout"; a zero address counts only in the answer."""
    relays = start("--timeout=3", "--silent-timeout=5")
    for kind, relay in relays.items():
        relay.call(f"idle-{kind}")
        relay.call(f"held-{kind}", a="sendonly", b="recvonly")
        relay.call(f"inactive-{kind}", a="inactive", b="inactive")
        relay.call(f"zero-offer-{kind}", zero="a")
        relay.call(f"zero-answer-{kind}", zero="b")
    live = {kind: relay.call(f"live-{kind}")[0] for kind, relay in relays.items()}
    stop = threading.Event()

    def feed() -> None:
        seq = 0
        while not stop.wait(0.05):
            for port in live.values():
                hosts["a"].send(port, rtp(seq))
            seq += 1

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        for kind, relay in relays.items():
            wait_until_gone(relay, f"idle-{kind}")
            wait_until_gone(relay, f"held-{kind}")
            for name in ("inactive", "zero-offer", "zero-answer"):
                wait_until_gone(relay, f"{name}-{kind}")
            assert f"live-{kind}" in relay.calls(), kind
    finally:
        stop.set()
        feeder.join()
    for kind, relay in relays.items():
        wait_until_gone(relay, f"live-{kind}")
        t = relay.totals()
        # timeout: idle, held, zero-offer, live; silent-timeout: inactive, zero-answer
        assert (t["timeoutsessions"], t["silenttimeoutsessions"]) == (4, 2), (kind, t)
        assert (t["managedsessions"], t["finaltimeoutsessions"]) == (6, 0), kind
        assert relay.calls() == []


def test_final_timeout_deletes_a_call_with_media(start: Start, hosts: dict[str, Host]) -> None:
    relays = start("--timeout=60", "--final-timeout=2")
    live = {kind: relay.call(f"final-{kind}")[0] for kind, relay in relays.items()}
    stop = threading.Event()

    def feed() -> None:
        seq = 0
        while not stop.wait(0.05):
            for port in live.values():
                hosts["a"].send(port, rtp(seq))
            seq += 1

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        for kind, relay in relays.items():
            wait_until_gone(relay, f"final-{kind}")
            t = relay.totals()
            assert (t["finaltimeoutsessions"], t["timeoutsessions"]) == (1, 0), (kind, t)
            assert t["relayedpackets"] > 0, kind
    finally:
        stop.set()
        feeder.join()


@pytest.mark.parametrize("hold", ["sendonly", "zero-address"])
def test_hold_forwards_like_rtpengine(start: Start, hosts: dict[str, Host], hold: str) -> None:
    """A re-offers on hold (a=sendonly, or c=0.0.0.0); what arrives where must match rtpengine."""
    a, b = hosts["a"], hosts["b"]
    outcome = {}
    for kind, relay in start("--endpoint-learning=immediate").items():
        cid = f"hold-{kind}"
        to_a, to_b = relay.call(cid)
        a.send(to_a, rtp(1))
        b.send(to_b, rtp(2))
        assert b.recv()[0] == rtp(1) and a.recv()[0] == rtp(2)
        addr = "0.0.0.0" if hold == "zero-address" else "10.99.1.2"
        direction = "sendonly" if hold == "sendonly" else "sendrecv"
        from .daemon_rig import media_port, sdp

        offer = relay.ng(
            {
                "command": "offer",
                "call-id": cid,
                "from-tag": "ta",
                "sdp": sdp(addr, 40000, direction, ver=2),
            }
        )
        assert media_port(offer) == to_b, kind
        held_sdp = offer["sdp"]
        answer = relay.ng(
            {
                "command": "answer",
                "call-id": cid,
                "from-tag": "ta",
                "to-tag": "tb",
                "sdp": sdp(
                    "10.99.2.2", 40000, "recvonly" if hold == "sendonly" else "sendrecv", ver=2
                ),
            }
        )
        assert media_port(answer) == to_a, kind
        a.send(to_a, rtp(3))
        b.send(to_b, rtp(4))
        outcome[kind] = (
            [p[2:4] for p in b.drain(0.4)],
            [p[2:4] for p in a.drain(0.4)],
            "a=sendonly" in held_sdp,
            "c=IN IP4 0.0.0.0" in held_sdp,
        )
    assert outcome["rtpvault"] == outcome["rtpengine"], outcome
