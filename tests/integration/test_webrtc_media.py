"""A WebRTC party (aiortc's RTCPeerConnection: ICE, DTLS-SRTP, SRTP, PCMU) calls a plain RTP
party through a real rtpvault daemon, with the deployment guide's flags
(docs/spec/sdp.md §1.9a, §1.12b; tests/integration/differential/scenarios/secure_sdp.json
`sec_webrtc_to_sip`, `sec_sip_to_webrtc`), both directions of signalling. Audio must cross both
ways: the plain party receives aiortc's 1 kHz tone decrypted, aiortc decodes the plain party's
500 Hz tone, and the recording holds the tone in the clear."""

from __future__ import annotations

import array
import asyncio
import audioop  # deprecated since 3.11, but the only G.711 codec here without numpy
import base64
import contextlib
import fractions
import math
import re
import socket
import struct
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioice.ice
import av
import pylibsrtp
import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecCapability, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from tests.support.daemons import Daemon, start
from tests.support.tools import require
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

RATE = 8000
SAMPLES = 160
BOUND = 20.0
"""Seconds before a stuck call fails the test (never a timing assertion)."""
TONE_WEBRTC, TONE_PLAIN = 1000, 500

WEBRTC_TO_SIP = {"ICE": "remove", "DTLS": "off", "SDES": ["off"],
                 "transport-protocol": "RTP/AVP", "rtcp-mux": ["demux"]}  # fmt: skip
SIP_ANSWER = {"flags": ["trust-address"], "ICE": "force", "DTLS": "passive", "SDES": ["off"]}
SIP_TO_WEBRTC = {"flags": ["trust-address", "generate-mid"], "ICE": "force", "DTLS": "passive",
                 "SDES": ["off"], "transport-protocol": "UDP/TLS/RTP/SAVPF",
                 "rtcp-mux": ["offer"]}  # fmt: skip
WEBRTC_ANSWER = WEBRTC_TO_SIP


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice gathers every address but 127.0.0.1; keep aiortc on loopback."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = start("rtpvault", tmp_path, interface="lo/127.0.0.1", ports=20, extra=[
        f"--recording-dir={tmp_path / 'spool'}",
        "--recording-format=raw", "--delete-delay=0"])  # fmt: skip
    try:
        yield d
    finally:
        d.stop()


def tone(freq: int, n: int, start: int = 0) -> list[int]:
    return [int(8000 * math.sin(2 * math.pi * freq * (start + i) / RATE)) for i in range(n)]


def dominant(samples: list[int]) -> int:
    """The 100 Hz step between 100 and 3500 Hz with the most energy (Goertzel)."""

    def power(f: int) -> float:
        w = 2 * math.cos(2 * math.pi * f / RATE)
        s1 = s2 = 0.0
        for x in samples:
            s1, s2 = x + w * s1 - s2, s1
        return s1 * s1 + s2 * s2 - w * s1 * s2

    return max(range(100, 3600, 100), key=power)


def ulaw_decode(payload: bytes) -> list[int]:
    return list(array.array("h", audioop.ulaw2lin(payload, 2)))


class ToneTrack(MediaStreamTrack):
    """An aiortc audio track: a 1 kHz sine, 20 ms frames of s16 mono 8 kHz, paced."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._n = 0

    async def recv(self) -> av.AudioFrame:
        await asyncio.sleep(SAMPLES / RATE)
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(array.array("h", tone(TONE_WEBRTC, SAMPLES, self._n)).tobytes())
        frame.sample_rate, frame.pts = RATE, self._n
        frame.time_base = fractions.Fraction(1, RATE)
        self._n += SAMPLES
        return frame


class Plain:
    """The SIP side: a UDP socket that sends PCMU with a 500 Hz tone and collects RTP."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.relay_port = 0
        self.received: list[bytes] = []

    def sdp(self, version: int = 1) -> str:
        return (
            f"v=0\r\no=- 7 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        seq = 0
        while True:
            seq += 1
            payload = audioop.lin2ulaw(array.array("h", tone(TONE_PLAIN, SAMPLES,
                                                             seq * SAMPLES)).tobytes(), 2)
            pkt = struct.pack("!BBHII", 0x80, 0, seq, seq * SAMPLES, 0x5151) + payload
            self.send(pkt)
            with contextlib.suppress(BlockingIOError):
                while True:
                    data, _ = self.sock.recvfrom(2048)
                    self.received.append(data)
            await asyncio.sleep(SAMPLES / RATE)
            _ = loop

    def send(self, pkt: bytes) -> None:
        self.sock.sendto(pkt, ("127.0.0.1", self.relay_port))

    def rtp_payloads(self) -> list[bytes]:
        return [d[12:] for d in self.received if len(d) > 12 and d[1] & 0x7F == 0]


def _port(sdp: str) -> int:
    m = re.search(r"^m=audio (\d+) ", sdp, re.M)
    assert m is not None, sdp
    return int(m.group(1))


async def _ng(d: Daemon, body: dict[str, Any]) -> dict[str, Any]:
    def call() -> dict[str, Any]:
        c = d.client()
        try:
            return c.call(body)
        finally:
            c.close()

    reply = await asyncio.to_thread(call)
    assert reply["result"] == "ok", reply
    return reply


@contextlib.asynccontextmanager
async def peer() -> AsyncIterator[tuple[RTCPeerConnection, asyncio.Queue[av.AudioFrame]]]:
    pc = RTCPeerConnection()
    frames: asyncio.Queue[av.AudioFrame] = asyncio.Queue()
    tasks: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def pull() -> None:
            while True:
                frames.put_nowait(await track.recv())

        tasks.append(asyncio.ensure_future(pull()))

    try:
        yield pc, frames
    finally:
        for t in tasks:
            t.cancel()
        await pc.close()


def _pcmu_only(pc: RTCPeerConnection) -> None:
    tr = pc.addTransceiver(ToneTrack(), direction="sendrecv")
    tr.setCodecPreferences([RTCRtpCodecCapability(mimeType="audio/PCMU", clockRate=8000,
                                                  channels=1)])  # fmt: skip


async def _answer_pcmu(pc: RTCPeerConnection, offer_sdp: str) -> str:
    """aiortc answers `offer_sdp` sending the 1 kHz tone, PCMU only; returns its answer SDP."""
    await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
    pc.addTrack(ToneTrack())
    pc.getTransceivers()[0].setCodecPreferences(
        [RTCRtpCodecCapability(mimeType="audio/PCMU", clockRate=8000, channels=1)])
    await pc.setLocalDescription(await pc.createAnswer())
    return str(pc.localDescription.sdp)


async def _audio_both_ways(plain: Plain, frames: asyncio.Queue[av.AudioFrame]) -> None:
    """aiortc's tone arrives at the plain party in the clear, the plain tone at aiortc."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while len(plain.rtp_payloads()) < 25 and loop.time() < deadline:
        await asyncio.sleep(0.05)
    payloads = plain.rtp_payloads()
    assert len(payloads) >= 25, f"{len(payloads)} RTP packets from aiortc "
    assert dominant(ulaw_decode(b"".join(payloads[-10:]))) == TONE_WEBRTC
    got: list[int] = []
    while len(got) < SAMPLES * 10:
        frame = await asyncio.wait_for(frames.get(), BOUND)
        assert frame.sample_rate == RATE
        got += array.array("h", bytes(frame.planes[0]))[: frame.samples]
    assert dominant(got[-SAMPLES * 5 :]) == TONE_PLAIN


def _recorded_tone(spool: Path, port: int) -> int:
    """The dominant frequency of the PCMU payloads recorded arriving on relay port `port`."""
    tshark = require("tshark")
    pcaps = list((spool / "pcaps").glob("*.pcap"))
    assert len(pcaps) == 1, pcaps
    out = subprocess.run(
        [tshark, "-r", str(pcaps[0]), "-d", f"udp.port=={port},rtp", "-Y",
         f"rtp && udp.dstport=={port}", "-T", "fields", "-e", "rtp.payload"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(out) >= 10, out
    payload = b"".join(bytes.fromhex(p.replace(":", "")) for p in out[-10:])
    return dominant(ulaw_decode(payload))


async def webrtc_offers(d: Daemon, spool: Path) -> None:
    plain = Plain()
    async with peer() as (pc, frames):
        _pcmu_only(pc)
        await pc.setLocalDescription(await pc.createOffer())
        base = {"call-id": "webrtc-1", "from-tag": "browser"}
        offer = await _ng(d, {**base, "command": "offer", "sdp": pc.localDescription.sdp,
                              "record-call": "yes", **WEBRTC_TO_SIP})  # fmt: skip
        assert " RTP/AVP " in offer["sdp"] and "a=candidate" not in offer["sdp"]
        plain.relay_port = _port(offer["sdp"])
        answer = await _ng(d, {**base, "command": "answer", "to-tag": "plain",
                               "sdp": plain.sdp(), **SIP_ANSWER})  # fmt: skip
        sdp = answer["sdp"]
        assert "UDP/TLS/RTP/SAVPF" in sdp and "a=setup:passive" in sdp and "a=ice-ufrag" in sdp
        sender = asyncio.ensure_future(plain.run())
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
            await _audio_both_ways(plain, frames)
            # a re-offer (same SDP, next o= version) and its answer keep ICE and DTLS running
            again = re.sub(r"^(o=\S+ \S+ )(\d+)", lambda m: f"{m[1]}{int(m[2]) + 1}",
                           pc.localDescription.sdp, flags=re.M)  # fmt: skip
            reoffer = await _ng(d, {**base, "command": "offer", "to-tag": "plain", "sdp": again,
                                    **WEBRTC_TO_SIP})  # fmt: skip
            assert _port(reoffer["sdp"]) == plain.relay_port
            reanswer = await _ng(d, {**base, "command": "answer", "to-tag": "plain",
                                     "sdp": plain.sdp(2), **SIP_ANSWER})  # fmt: skip
            assert _port(reanswer["sdp"]) == _port(sdp)
            plain.received.clear()
            while not frames.empty():
                frames.get_nowait()
            await _audio_both_ways(plain, frames)
        finally:
            sender.cancel()
        await _ng(d, {**base, "command": "delete"})
    assert d.log().count("DTLS-SRTP established") == 1  # the re-offer kept the session
    assert wait_for(lambda: list((spool / "sidecars").glob("*.json")), 10)
    assert await asyncio.to_thread(_recorded_tone, spool, _port(sdp)) == TONE_WEBRTC
    assert await asyncio.to_thread(_recorded_tone, spool, plain.relay_port) == TONE_PLAIN


async def sip_offers(d: Daemon) -> None:
    plain = Plain()
    async with peer() as (pc, frames):
        base = {"call-id": "webrtc-2", "from-tag": "plain"}
        offer = await _ng(d, {**base, "command": "offer", "sdp": plain.sdp(), **SIP_TO_WEBRTC})
        assert "a=setup:actpass" in offer["sdp"] and "a=ice-ufrag" in offer["sdp"]
        answer = await _ng(d, {**base, "command": "answer", "to-tag": "browser",
                               "sdp": await _answer_pcmu(pc, offer["sdp"]),
                               **WEBRTC_ANSWER})  # fmt: skip
        assert " RTP/AVP " in answer["sdp"] and "a=candidate" not in answer["sdp"]
        plain.relay_port = _port(answer["sdp"])
        sender = asyncio.ensure_future(plain.run())
        try:
            await _audio_both_ways(plain, frames)
        finally:
            sender.cancel()


def test_webrtc_offers_to_plain_sip(daemon: Daemon, tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(webrtc_offers(daemon, tmp_path / "spool"), 3 * BOUND))


def test_plain_sip_offers_to_webrtc(daemon: Daemon) -> None:
    asyncio.run(asyncio.wait_for(sip_offers(daemon), 3 * BOUND))


class SdesPhone(Plain):
    """The SIP side as an SDES phone: answers the relay's AES_CM_128_HMAC_SHA1_80 line with its
    own key; what it sends is SRTP under that key, what it gets is SRTP under the relay's."""

    OURS = bytes(range(1, 31))

    def __init__(self) -> None:
        super().__init__()
        self._seen = 0
        self._plain: list[bytes] = []

    def answer(self, offer_sdp: str) -> str:
        m = re.search(r"a=crypto:(\d+) AES_CM_128_HMAC_SHA1_80 inline:(\S+)", offer_sdp)
        assert m is not None, offer_sdp
        profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        self.tx = pylibsrtp.Session(pylibsrtp.Policy(
            key=self.OURS, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        self.rx = pylibsrtp.Session(pylibsrtp.Policy(
            key=base64.b64decode(m.group(2)), ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=profile))  # fmt: skip
        key = base64.b64encode(self.OURS).decode()
        return (
            f"v=0\r\no=- 8 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a=crypto:{m.group(1)} AES_CM_128_HMAC_SHA1_80 inline:{key}\r\na=sendrecv\r\n"
        )

    def send(self, pkt: bytes) -> None:
        self.sock.sendto(self.tx.protect(pkt), ("127.0.0.1", self.relay_port))

    def rtp_payloads(self) -> list[bytes]:
        """Each datagram unprotected once (a second time would be a replay)."""
        if len(self.received) < self._seen:  # cleared
            self._seen, self._plain = 0, []
        for d in self.received[self._seen :]:
            if len(d) > 12 and d[1] & 0x7F == 0:
                with contextlib.suppress(pylibsrtp.Error):
                    self._plain.append(self.rx.unprotect(d)[12:])
        self._seen = len(self.received)
        return list(self._plain)


async def webrtc_offers_to_sdes(d: Daemon) -> None:
    """DTLS-SRTP + ICE on one leg, SDES on the other: each leg with its own keys (item 4)."""
    phone = SdesPhone()
    async with peer() as (pc, frames):
        _pcmu_only(pc)
        await pc.setLocalDescription(await pc.createOffer())
        base = {"call-id": "webrtc-sdes", "from-tag": "browser"}
        offer = await _ng(d, {**base, "command": "offer", "sdp": pc.localDescription.sdp,
                              **WEBRTC_TO_SDES})  # fmt: skip
        assert " RTP/SAVP " in offer["sdp"] and "a=fingerprint" not in offer["sdp"]
        phone.relay_port = _port(offer["sdp"])
        answer = await _ng(d, {**base, "command": "answer", "to-tag": "phone",
                               "sdp": phone.answer(offer["sdp"]), **SIP_ANSWER})  # fmt: skip
        assert "UDP/TLS/RTP/SAVPF" in answer["sdp"] and "a=crypto" not in answer["sdp"]
        sender = asyncio.ensure_future(phone.run())
        try:
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            await _audio_both_ways(phone, frames)
        finally:
            sender.cancel()
        await _ng(d, {**base, "command": "delete"})


WEBRTC_TO_SDES = {"ICE": "remove", "DTLS": "off", "transport-protocol": "RTP/SAVP",
                  "rtcp-mux": ["demux"]}  # fmt: skip


def test_webrtc_offers_to_an_sdes_phone(daemon: Daemon) -> None:
    asyncio.run(asyncio.wait_for(webrtc_offers_to_sdes(daemon), 3 * BOUND))
