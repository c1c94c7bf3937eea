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
from relay.transcode.plan import Codec, DirectionPlan
from rtpvault.ctl.commands import run
from rtpvault.daemon import Daemon
from tests.integration.recording.media import sdp
from tests.support.tone import dominant_hz, ulaw_tone
from tests.unit.ops.conftest import ng
from tests.unit.ops.test_prometheus import _pump, scrape, value

pytest.importorskip("relay.transcode.chain", reason="relay.transcode's chain")
LABEL = "PCMU/8000 -> PCMA/8000"
TO_PCMA = DirectionPlan(inputs={0: Codec("PCMU", 8000)}, outputs={8: Codec("PCMA", 8000)},
                        encode_pt=8)  # fmt: skip
TO_PCMA_20 = DirectionPlan(inputs={0: Codec("PCMU", 8000)}, outputs={8: Codec("PCMA", 8000)},
                           encode_pt=8, ptime=20)  # fmt: skip


def _sock() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.0)
    return s


def _offer(d: Daemon, port: int, plan: DirectionPlan | None, session: int = 1) -> int:
    r = ng(d, {"command": "offer", "call-id": "tc", "from-tag": "ft", "sdp": sdp(port, session)})
    d.registry.calls["tc"].parties["ft"].medias[0].codec_plan = plan  # as negotiation sets it
    return int(r["sdp"].split("m=audio ")[1].split()[0])


def _answer(d: Daemon, port: int, session: int = 1) -> int:
    r = ng(d, {"command": "answer", "call-id": "tc", "from-tag": "ft", "to-tag": "tt",
               "sdp": sdp(port, session + 1)})  # fmt: skip
    return int(r["sdp"].split("m=audio ")[1].split()[0])


def _side(d: Daemon):  # type: ignore[no-untyped-def]
    return d.registry.calls["tc"].parties["ft"].medias[0]


def test_a_plan_gets_a_chain_that_transcodes_and_is_counted(daemon: Daemon) -> None:
    a, b = _sock(), _sock()
    try:
        _offer(daemon, a.getsockname()[1], TO_PCMA)
        from_a = _answer(daemon, b.getsockname()[1])  # the port A sends to
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
        assert stats["currentstatistics"]["transcodedmedia"] == 1
        (entry,) = stats["transcoders"]
        assert entry["chain"] == LABEL and entry["num"] == 1
        assert (entry["packets"], entry["bytes"], entry["samples"]) == (20, 3200, 3200)
        _, types, samples = scrape(daemon)
        assert types["rtpengine_transcoders"] == "gauge"
        assert value(samples, "rtpengine_transcoded_media") == 1
        assert value(samples, "rtpengine_transcode_packets_total", chain=LABEL) == 20
        assert value(samples, "rtpengine_transcode_samples_total", chain=LABEL) == 3200
        assert run(daemon, "list transcoders") == f"{LABEL}: 1 transcoders\n"
        assert "Current transcoded media: 1\n" in run(daemon, "list numsessions")
        assert json.loads(run(daemon, "list jsonstats"))["transcoders"][0]["packets"] == 20

        # re-offer, same plan: the same chain (output SSRC and sequence go on)
        _offer(daemon, a.getsockname()[1], TO_PCMA, 2)
        _answer(daemon, b.getsockname()[1], 2)
        assert side.transcoder is t
        # another plan: a new chain; the old one stops counting
        _offer(daemon, a.getsockname()[1], TO_PCMA_20, 3)
        _answer(daemon, b.getsockname()[1], 3)
        assert side.transcoder is not t and side.transcoder is not None and t.closed
        # no plan: no chain, the plain reader again
        _offer(daemon, a.getsockname()[1], None, 4)
        _answer(daemon, b.getsockname()[1], 4)
        assert side.transcoder is None and side.rtp.transcoder is None
        assert side.rtp not in daemon.plane._secure  # type: ignore[attr-defined]
        stats = ng(daemon, {"command": "statistics"})["statistics"]
        assert stats["currentstatistics"]["transcodedmedia"] == 0
        assert stats["transcoders"][0]["num"] == 0  # stays listed, as rtpengine's do
    finally:
        a.close()
        b.close()


def test_a_chain_ends_with_its_call(daemon: Daemon) -> None:
    _offer(daemon, 40000, TO_PCMA)
    _answer(daemon, 40100)
    t = _side(daemon).transcoder
    assert t is not None
    ng(daemon, {"command": "delete", "call-id": "tc"})
    _pump(daemon, lambda: "tc" not in daemon.registry.calls)
    assert t.closed
    assert run(daemon, "list transcoders") == f"{LABEL}: 0 transcoders\n"
