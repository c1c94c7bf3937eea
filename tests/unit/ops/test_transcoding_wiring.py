"""Transcoding wired from the call model to the plane and the figures, in a real in-process
Daemon (userspace plane on loopback, relay.transcode's real chain): a `codec_plan` on a media
side when the answer passes gives that side's streams a chain (relay.call.transcode_media), kept
by a re-offer with the same plan, replaced by another plan, removed with the plan; packets
through it come out PCMA at the tone's pitch; `statistics`, /metrics and rtpengine-ctl show
the chain (docs/spec/metrics.md §1.3); a call without a plan keeps the plain reader."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from recorder.g711 import ALAW_TO_LINEAR
from rtpvault.ctl.commands import run
from rtpvault.daemon import Daemon
from tests.support.tone import dominant_hz, ulaw_tone
from tests.unit.ops.conftest import ng
from tests.unit.ops.test_prometheus import _pump, scrape, value

pytest.importorskip("relay.transcode.chain", reason="relay.transcode's chain")
LABEL = "PCMU/8000 -> PCMA/8000"
HEAD = "v=0\r\no=- {v} {v} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"


def _sdp(port: int, version: int, pt: int, rtpmap: str) -> str:
    return (HEAD.format(v=version) + f"m=audio {port} RTP/AVP {pt}\r\n"
            f"a=rtpmap:{pt} {rtpmap}\r\na=sendrecv\r\n")  # fmt: skip


def _sock() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.0)
    return s


def _call(d: Daemon, a: int, b: int, version: int, codec: str | None) -> int:
    """Offer from PCMU-only A (with `codec: {transcode: [codec]}`), answer from B with `codec`
    only (PCMU without one); the port A sends to."""
    body = {"command": "offer", "call-id": "tc", "from-tag": "ft", "sdp": _sdp(a, version, 0,
            "PCMU/8000")}  # fmt: skip
    if codec is not None:
        body["codec"] = {"transcode": [codec]}
    assert ng(d, body)["result"] == "ok"
    pt, rtpmap = {None: (0, "PCMU/8000"), "PCMA": (8, "PCMA/8000"),
                  "opus": (96, "opus/48000/2")}[codec]  # fmt: skip
    r = ng(d, {"command": "answer", "call-id": "tc", "from-tag": "ft", "to-tag": "tt",
               "sdp": _sdp(b, version + 1, pt, rtpmap)})  # fmt: skip
    assert r["result"] == "ok", r
    return int(r["sdp"].split("m=audio ")[1].split()[0])


def _side(d: Daemon):  # type: ignore[no-untyped-def]
    return d.registry.calls["tc"].parties["ft"].medias[0]


def test_a_plan_gets_a_chain_that_transcodes_and_is_counted(daemon: Daemon) -> None:
    a, b = _sock(), _sock()
    try:
        from_a = _call(daemon, a.getsockname()[1], b.getsockname()[1], 1, "PCMA")
        side = _side(daemon)
        t = side.transcoder
        assert t is not None and side.rtp.transcoder is t
        assert side.rtp in daemon.plane._secure  # type: ignore[attr-defined]
        for n in range(20):
            pkt = struct.pack("!BBHII", 0x80, 0, n, 160 * n, 0xA1) + ulaw_tone(440, 160 * n)
            a.sendto(pkt, ("127.0.0.1", from_a))
        got: list[bytes] = []

        def more() -> bool:
            try:
                while True:
                    got.append(b.recv(2048))
            except BlockingIOError:
                return len(got) >= 18

        _pump(daemon, more)
        assert {p[1] & 0x7F for p in got} == {8}
        assert abs(dominant_hz([ALAW_TO_LINEAR[x] for p in got[2:] for x in p[12:]]) - 440) <= 20

        stats = ng(daemon, {"command": "statistics"})["statistics"]
        assert stats["currentstatistics"]["transcodedmedia"] == 2  # one per direction
        entry = next(e for e in stats["transcoders"] if e["chain"] == LABEL)
        assert entry["num"] == 1
        assert (entry["packets"], entry["bytes"], entry["samples"]) == (20, 3200, 3200)
        _, types, samples = scrape(daemon)
        assert types["rtpengine_transcoders"] == "gauge"
        assert value(samples, "rtpengine_transcoded_media") == 2
        assert value(samples, "rtpengine_transcode_packets_total", chain=LABEL) == 20
        assert value(samples, "rtpengine_transcode_samples_total", chain=LABEL) == 3200
        assert set(run(daemon, "list transcoders").splitlines()) == {  # any order (a hash's)
            f"{LABEL}: 1 transcoders", "PCMA/8000 -> PCMU/8000: 1 transcoders"}
        assert "Current transcoded media: 2\n" in run(daemon, "list numsessions")
        listed = json.loads(run(daemon, "list jsonstats"))["transcoders"]
        assert {e["chain"]: e["packets"] for e in listed}[LABEL] == 20

        # RTP whose header claims more CSRCs than it has: dropped by the chain, counted by cause
        a.sendto(struct.pack("!BBHII", 0x8F, 0, 20, 3200, 0xA1) + bytes(8), ("127.0.0.1", from_a))
        _pump(daemon, lambda: side.rtp.packets == 21)
        drops = scrape(daemon)[2]
        assert value(drops, "rtpvault_transcode_packets_dropped_total", cause="malformed") == 1
        assert value(drops, "rtpvault_transcode_packets_dropped_total", cause="chain_error") == 0

        # re-offer, same plan: the same chain (output SSRC and sequence go on)
        _call(daemon, a.getsockname()[1], b.getsockname()[1], 3, "PCMA")
        assert side.transcoder is t
        # another plan (Opus towards B): a new chain; the old one stops counting
        _call(daemon, a.getsockname()[1], b.getsockname()[1], 5, "opus")
        assert side.transcoder is not None and side.transcoder is not t and t.closed
        assert side.transcoder.plan.outputs[96].name == "opus"
        chain, was = side.transcoder.chain, t.chain
        assert (chain.ssrc, chain.seq) == (was.ssrc, was.seq)  # one stream: it goes on from there
        assert side.transcoder.sent is t.sent  # the output's RTCP counts go on
        stats = ng(daemon, {"command": "statistics"})["statistics"]
        nums = {e["chain"]: e["num"] for e in stats["transcoders"]}
        assert nums[LABEL] == 0 and nums["PCMU/8000 -> opus/48000/2"] == 1  # PCMA one stays
    finally:
        a.close()
        b.close()


def test_a_plain_call_has_no_chain(daemon: Daemon) -> None:
    _call(daemon, 40000, 40100, 1, None)
    for party in daemon.registry.calls["tc"].parties.values():
        side = party.medias[0]
        assert side.codec_plan is None and side.transcoder is None
        assert side.rtp not in daemon.plane._secure  # type: ignore[attr-defined]
    assert ng(daemon, {"command": "statistics"})["statistics"]["transcoders"] == []


def test_a_chain_ends_with_its_call(daemon: Daemon) -> None:
    _call(daemon, 40000, 40100, 1, "PCMA")
    t = _side(daemon).transcoder
    assert t is not None
    ng(daemon, {"command": "delete", "call-id": "tc"})
    _pump(daemon, lambda: "tc" not in daemon.registry.calls)
    assert t.closed
    _, _, samples = scrape(daemon)  # the ended chain's drops stay counted
    assert value(samples, "rtpvault_transcode_packets_dropped_total", cause="late") == 0
    assert set(run(daemon, "list transcoders").splitlines()) == {
        f"{LABEL}: 0 transcoders", "PCMA/8000 -> PCMU/8000: 0 transcoders"}


def test_a_side_whose_ports_are_released_loses_its_chain(daemon: Daemon) -> None:
    """A party destroyed while the call goes on (a forked branch) releases its sides' ports;
    their chains stop counting."""
    _call(daemon, 40000, 40100, 1, "PCMA")
    side = _side(daemon)
    t = side.transcoder
    assert t is not None
    daemon.registry.streams.release(side)
    assert side.transcoder is None and t.closed
    nums = {e["chain"]: e["num"] for e in ng(daemon, {"command": "statistics"})["statistics"][
        "transcoders"]}  # fmt: skip
    assert nums == {LABEL: 0, "PCMA/8000 -> PCMU/8000": 1}

