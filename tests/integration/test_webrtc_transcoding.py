"""A WebRTC party restricted to Opus (aiortc: ICE, DTLS-SRTP; codec flags on its leg) and a
PCMU-only plain SIP party through the real rtpvault daemon (two workers), which must
transcode (issue 19, Tests): the SIP party offers with the deployment guide's flags plus
`codec: {mask: [PCMU], transcode: [opus]}`, so aiortc is offered Opus only and answers it,
and a tone crosses both ways at its pitch: aiortc's 1 kHz arrives at the SIP party as PCMU,
the SIP party's 500 Hz arrives at aiortc as Opus, SRTP-protected by rtpvault, decrypted and
decoded by aiortc. No timing asserted."""

from __future__ import annotations

import array
import asyncio
from pathlib import Path

import av
import pytest
from aiortc import RTCSessionDescription

from tests.integration.test_webrtc_media import (
    BOUND,
    SIP_TO_WEBRTC,
    TONE_PLAIN,
    TONE_WEBRTC,
    WEBRTC_ANSWER,
    Plain,
    ToneTrack,
    _ng,
    _port,
    dominant,
    loopback_only,  # noqa: F401 - autouse: aiortc on loopback only
    peer,
    ulaw_decode,
)
from tests.support.daemons import Daemon, start
from tests.support.tone import dominant_hz

pytestmark = pytest.mark.integration


@pytest.fixture
def daemon(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = start("rtpvault", tmp_path, interface="lo/127.0.0.1", ports=20, num_threads=2,
              extra=["--delete-delay=0"])  # fmt: skip
    try:
        yield d
    finally:
        d.stop()


async def sip_offers_to_opus_browser(d: Daemon) -> None:
    plain = Plain()
    async with peer() as (pc, frames):
        base = {"call-id": "webrtc-tc", "from-tag": "plain"}
        offer = await _ng(d, {**base, "command": "offer", "sdp": plain.sdp(), **SIP_TO_WEBRTC,
                              "codec": {"mask": ["PCMU"], "transcode": ["opus"]}})  # fmt: skip
        assert "opus/48000/2" in offer["sdp"] and "PCMU" not in offer["sdp"]
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        pc.addTrack(ToneTrack())
        await pc.setLocalDescription(await pc.createAnswer())
        browser_sdp = str(pc.localDescription.sdp)
        assert "PCMU" not in browser_sdp and "opus/48000/2" in browser_sdp
        answer = await _ng(d, {**base, "command": "answer", "to-tag": "browser",
                               "sdp": browser_sdp, **WEBRTC_ANSWER})  # fmt: skip
        assert " RTP/AVP 0" in answer["sdp"]
        plain.relay_port = _port(answer["sdp"])
        sender = asyncio.ensure_future(plain.run())
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + BOUND
            while len(plain.rtp_payloads()) < 40 and loop.time() < deadline:
                await asyncio.sleep(0.05)
            payloads = plain.rtp_payloads()
            assert len(payloads) >= 40, f"{len(payloads)} PCMU packets from the Opus side"
            assert dominant(ulaw_decode(b"".join(payloads[-10:]))) == TONE_WEBRTC
            got: list[int] = []
            rate = 0
            while len(got) < 48000 // 2:
                frame: av.AudioFrame = await asyncio.wait_for(frames.get(), BOUND)
                rate = frame.sample_rate
                mono = array.array("h", bytes(frame.planes[0]))[:: len(frame.layout.channels)]
                got += mono[: frame.samples]
            assert abs(dominant_hz(got[-rate // 5 :], rate=rate) - TONE_PLAIN) <= 20
        finally:
            sender.cancel()
        stats = await _ng(d, {"command": "statistics"})
        chains = {t["chain"] for t in stats["statistics"]["transcoders"]}
        assert {"PCMU/8000 -> opus/48000/2", "opus/48000/2 -> PCMU/8000"} <= chains
        await _ng(d, {**base, "command": "delete"})


def test_plain_pcmu_calls_an_opus_only_browser(daemon: Daemon) -> None:
    asyncio.run(asyncio.wait_for(sip_offers_to_opus_browser(daemon), 3 * BOUND))
