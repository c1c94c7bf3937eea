"""RTCP between a WebRTC party (aiortc: ICE, DTLS-SRTP, RTCP muxed on its one port) and a plain
phone (RTP on P, RTCP on P+1) through a real rtpvault daemon with the deployment guide's flags
(`rtcp-mux` demux towards the phone, offer towards the browser; docs/spec/sdp.md §4.1).

aiortc sends its SR and RR muxed and SRTCP-protected: the phone's RTCP port must receive them
decrypted, from the relay's RTCP port. The phone's SRs from its RTCP port must reach aiortc,
which shows them as `remote-outbound-rtp` in getStats with the phone's packet count.

With `homer=` and `record-call` (WebRTC offering): Homer gets aiortc's RTCP as JSON (type 5,
decoded from the decrypted SRTCP) and QoS reports of both streams (type 34), and
`rtpvault export --wav` of the recording gives both tones.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtcpPacket, RtcpRrPacket, RtcpSrPacket
from click.testing import CliRunner

from rtpvault.cli import cli
from tests.integration.test_webrtc_media import (
    BOUND,
    SIP_ANSWER,
    SIP_TO_WEBRTC,
    TONE_PLAIN,
    TONE_WEBRTC,
    WEBRTC_ANSWER,
    WEBRTC_TO_SIP,
    Plain,
    _answer_pcmu,
    _ng,
    _pcmu_only,
    _port,
    dominant,
    loopback_only,  # noqa: F401 - the autouse fixture, applied to this module too
    peer,
)
from tests.support import hep_receiver
from tests.support.daemons import Daemon, start
from tests.support.hep_receiver import HepReceiver
from tests.support.rtp_party import Party
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

PHONE_SSRC = 0x5151
PHONE_COUNT = 424242
"""The packet count the phone's SRs carry; aiortc's stats must show it."""


receiver = hep_receiver.receiver  # the HEP capture server fixture


@pytest.fixture
def daemon(tmp_path: Path, receiver: HepReceiver) -> Iterator[Daemon]:
    d = start("rtpvault", tmp_path, interface="lo/127.0.0.1", ports=20, extra=[
        "--delete-delay=0", f"--recording-dir={tmp_path / 'spool'}", "--recording-format=raw",
        f"--homer=127.0.0.1:{receiver.port}", "--homer-qos-interval=1"])  # fmt: skip
    try:
        yield d
    finally:
        d.stop()


class Phone(Plain):
    """The plain party with its RTCP socket on RTP port + 1: sends SRs from there and keeps
    every datagram that arrives on it, with its source port."""

    def __init__(self) -> None:
        pair = Party()
        self.sock, self.rtcp = pair.rtp, pair.rtcp
        for s in (self.sock, self.rtcp):
            s.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.relay_port = 0
        self.received: list[bytes] = []
        self.rtcp_received: list[tuple[int, bytes]] = []

    def sdp(self, version: int = 1) -> str:
        return super().sdp(version) + f"a=rtcp:{self.port + 1}\r\n"

    async def run_rtcp(self) -> None:
        n = 0
        while True:
            n += 1
            info = struct.pack("!IIIII", 0xE0000000 + n, 0, n * 160, PHONE_COUNT, n * 160)
            sr = struct.pack("!BBHI", 0x80, 200, 6, PHONE_SSRC) + info
            self.rtcp.sendto(sr, ("127.0.0.1", self.relay_port + 1))
            with contextlib.suppress(BlockingIOError):
                while True:
                    data, src = self.rtcp.recvfrom(2048)
                    self.rtcp_received.append((src[1], data))
            await asyncio.sleep(0.2)


def _remote_outbound(stats: dict[str, object]) -> list[object]:
    return [s for s in stats.values() if getattr(s, "type", "") == "remote-outbound-rtp"]


async def _rtcp_both_ways(pc: RTCPeerConnection, phone: Phone) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    kinds: set[type] = set()
    while loop.time() < deadline:
        kinds = set()
        for src, data in phone.rtcp_received:
            assert src == phone.relay_port + 1, "RTCP must leave from the relay's RTCP port"
            kinds |= {type(p) for p in RtcpPacket.parse(data)}  # raises on SRTCP
        got = _remote_outbound(await pc.getStats())
        if {RtcpSrPacket, RtcpRrPacket} <= kinds and got:
            break
        await asyncio.sleep(0.2)
    assert {RtcpSrPacket, RtcpRrPacket} <= kinds, f"RTCP at the phone: {phone.rtcp_received}"
    senders = {p.ssrc for _, d in phone.rtcp_received for p in RtcpPacket.parse(d)
               if isinstance(p, RtcpSrPacket)}  # fmt: skip
    rtp_ssrcs = {struct.unpack("!I", d[8:12])[0] for d in phone.received if len(d) > 12}
    assert senders and senders <= rtp_ssrcs, "the SRs describe aiortc's RTP stream"
    (remote,) = _remote_outbound(await pc.getStats())
    assert (remote.ssrc, remote.packetsSent) == (PHONE_SSRC, PHONE_COUNT)  # type: ignore[attr-defined]


async def webrtc_offers(d: Daemon, aiortc_ssrcs: set[int]) -> None:
    phone = Phone()
    async with peer() as (pc, _frames):
        _pcmu_only(pc)
        await pc.setLocalDescription(await pc.createOffer())
        base = {"call-id": "webrtc-rtcp-1", "from-tag": "browser"}
        offer = await _ng(d, {**base, "command": "offer", "sdp": pc.localDescription.sdp,
                              "record-call": "yes", **WEBRTC_TO_SIP})  # fmt: skip
        assert "a=rtcp-mux" not in offer["sdp"]
        phone.relay_port = _port(offer["sdp"])
        answer = await _ng(d, {**base, "command": "answer", "to-tag": "plain",
                               "sdp": phone.sdp(), **SIP_ANSWER})  # fmt: skip
        assert "a=rtcp-mux" in answer["sdp"]
        tasks = [asyncio.ensure_future(phone.run()), asyncio.ensure_future(phone.run_rtcp())]
        try:
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            await _rtcp_both_ways(pc, phone)
            aiortc_ssrcs |= {struct.unpack("!I", x[8:12])[0] for x in phone.received
                             if len(x) > 12 and x[1] & 0x7F == 0}  # fmt: skip
        finally:
            for t in tasks:
                t.cancel()
        await _ng(d, {**base, "command": "delete"})


async def sip_offers(d: Daemon) -> None:
    phone = Phone()
    async with peer() as (pc, _frames):
        base = {"call-id": "webrtc-rtcp-2", "from-tag": "plain"}
        offer = await _ng(d, {**base, "command": "offer", "sdp": phone.sdp(), **SIP_TO_WEBRTC})
        assert "a=rtcp-mux" in offer["sdp"]
        answer = await _ng(d, {**base, "command": "answer", "to-tag": "browser",
                               "sdp": await _answer_pcmu(pc, offer["sdp"]),
                               **WEBRTC_ANSWER})  # fmt: skip
        assert "a=rtcp-mux" not in answer["sdp"]
        phone.relay_port = _port(answer["sdp"])
        tasks = [asyncio.ensure_future(phone.run()), asyncio.ensure_future(phone.run_rtcp())]
        try:
            await _rtcp_both_ways(pc, phone)
        finally:
            for t in tasks:
                t.cancel()


def _homer_saw_webrtc(receiver: HepReceiver, aiortc_ssrcs: set[int]) -> None:
    assert receiver.wait(lambda rs: sum(r.proto_type == 34 and b'"HANGUP"' in r.payload
                                        for r in rs) >= 2)  # fmt: skip
    records = [r for r in receiver.records if r.correlation_id == "webrtc-rtcp-1"]
    reports = [json.loads(r.payload) for r in records if r.proto_type == 5]
    assert {j["ssrc"] for j in reports if j.get("type") == 200} & aiortc_ssrcs  # decrypted SR
    assert {j["ssrc"] for j in reports} >= {PHONE_SSRC}
    hangup = {j["SSRC"]: j for j in (json.loads(r.payload) for r in records
                                      if r.proto_type == 34 and b'"HANGUP"' in r.payload)}
    assert PHONE_SSRC in hangup and set(hangup) & aiortc_ssrcs
    for h in hangup.values():
        assert h["CODEC_PT"] == 0 and h["TOTAL_PK"] > 25


def _wav_tones(conf: Path, out: Path) -> tuple[int, int]:
    def exported() -> bool:
        r = CliRunner().invoke(cli, ["export", "--config-file", str(conf), "webrtc-rtcp-1",
                                     "--wav", "-o", str(out)])  # fmt: skip
        return r.exit_code == 0

    assert wait_for(exported, 20)
    with wave.open(str(out)) as w:
        frames = array.array("h", w.readframes(w.getnframes()))
    left, right = list(frames[0::2]), list(frames[1::2])
    return dominant(left[-1600:]), dominant(right[-1600:])


def test_webrtc_offers_rtcp_both_ways(daemon: Daemon, receiver: HepReceiver,
                                      tmp_path: Path) -> None:  # fmt: skip
    ssrcs: set[int] = set()
    asyncio.run(asyncio.wait_for(webrtc_offers(daemon, ssrcs), 3 * BOUND))
    _homer_saw_webrtc(receiver, ssrcs)
    conf = tmp_path / "rtpengine.conf"
    conf.write_text(f"[rtpengine]\ninterface = lo/127.0.0.1\nrecording-dir = {tmp_path}/spool\n")
    # left the offerer (the browser), right the phone: both decrypted/plain in the recording
    assert _wav_tones(conf, tmp_path / "call.wav") == (TONE_WEBRTC, TONE_PLAIN)


def test_plain_sip_offers_rtcp_both_ways(daemon: Daemon) -> None:
    asyncio.run(asyncio.wait_for(sip_offers(daemon), 3 * BOUND))


