"""A WebRTC party that speaks Opus only (aiortc: ICE, DTLS-SRTP, its own libopus through PyAV,
setCodecPreferences to audio/opus) and a PCMU-only phone (tests.integration.webrtc.peer)
call each other through one relay, which must transcode (issue 19).

Signalling as Kamailio does it for a WebRTC ↔ SIP gateway (the flags of
tests/integration/test_webrtc_media.py, docs/spec/sdp.md §1.9a, §1.12b) plus the codec flag
that lets the relay offer the other side's codec: `codec-transcode-PCMU` towards the phone when
the browser offers, `codec-transcode-opus` towards the browser when the phone offers. Each
party then answers with its only codec, so the relay must turn Opus into PCMU and back.
The phone must hear aiortc's 1 kHz tone at its pitch, aiortc the phone's 500 Hz tone.
rtpengine 10.5 runs the same call first: the harness's own check.
"""

from __future__ import annotations

import array
import asyncio
import re
from collections.abc import Iterator
from typing import Any

import av
import pytest
from aiortc import RTCPeerConnection, RTCRtpCodecCapability, RTCSessionDescription

from tests.integration.test_webrtc_media import (
    BOUND,
    SIP_ANSWER,
    SIP_TO_WEBRTC,
    TONE_PLAIN,
    TONE_WEBRTC,
    WEBRTC_ANSWER,
    WEBRTC_TO_SIP,
    ToneTrack,
    _ng,
    _port,
    loopback_only,  # noqa: F401 - the autouse fixture, applied to this module too
    peer,
)
from tests.integration.webrtc.peer import PlainPeer
from tests.support.daemons import Daemon, per_module
from tests.support.tone import dominant_hz, snr_db, ulaw_samples

pytestmark = pytest.mark.integration

OPUS = RTCRtpCodecCapability(mimeType="audio/opus", clockRate=48000, channels=2)
PHONE_ANSWER = {k: v for k, v in SIP_ANSWER.items() if k != "DTLS"}
"""The phone's answer as Kamailio passes it, but the relay keeps the DTLS role it took on the
offer (active): rtpengine 10.5, told `DTLS=passive` there, has already begun its handshake
as client towards aiortc and then fails it ("sslv3 alert unexpected message")."""
ENOUGH = 50
"""Packets (1 s) of tone each party must receive before its audio is analysed."""


@pytest.fixture(scope="module", params=["rtpengine", "rtpvault"])
def relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Daemon]:  # fmt: skip
    yield from per_module(request, tmp_path_factory, "webrtc-opus", interface="lo/127.0.0.1",
                          ports=20)  # fmt: skip


def _rtpmaps(sdp: str) -> list[str]:
    return re.findall(r"^a=rtpmap:\d+ (\S+)", sdp, re.M)


def _opus_only(pc: RTCPeerConnection) -> None:
    pc.getTransceivers()[0].setCodecPreferences([OPUS])


async def _heard_by_browser(frames: asyncio.Queue[av.AudioFrame]) -> list[int]:
    """1.5 s of what aiortc decoded, as 8 kHz mono s16 samples (PyAV's resampler)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
    got: list[int] = []
    while len(got) < 12000:
        frame = await asyncio.wait_for(frames.get(), BOUND)
        for out in resampler.resample(frame):
            got += array.array("h", bytes(out.planes[0]))[: out.samples]
    return got


async def _audio_both_ways(phone: PlainPeer, frames: asyncio.Queue[av.AudioFrame]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while len(phone.payloads()) < ENOUGH + 25 and loop.time() < deadline:
        await asyncio.sleep(0.05)
    payloads = phone.payloads()
    assert len(payloads) >= ENOUGH + 25, f"{len(payloads)} PCMU packets reached the phone"
    at_phone = ulaw_samples(b"".join(payloads[-ENOUGH:]))
    at_browser = (await _heard_by_browser(frames))[4000:]  # past aiortc's jitter start-up
    assert dominant_hz(at_phone) == TONE_WEBRTC
    assert dominant_hz(at_browser) == TONE_PLAIN
    # Not a pitch by accident: most of the power is the tone (a loose floor; the chain test
    # compares SNR with rtpengine's).
    assert snr_db(at_phone, TONE_WEBRTC) > 10
    assert snr_db(at_browser, TONE_PLAIN) > 10


async def browser_calls_phone(d: Daemon) -> None:
    phone = PlainPeer(TONE_PLAIN, lifetime=3 * BOUND)
    async with peer() as (pc, frames):
        pc.addTransceiver(ToneTrack(), direction="sendrecv")
        _opus_only(pc)
        await pc.setLocalDescription(await pc.createOffer())
        assert _rtpmaps(pc.localDescription.sdp) == ["opus/48000/2"]
        base: dict[str, Any] = {"call-id": "opus-to-pcmu", "from-tag": "browser"}
        offer = await _ng(d, {**base, "command": "offer", "sdp": pc.localDescription.sdp,
                              "codec": {"transcode": ["PCMU"]}, **WEBRTC_TO_SIP})  # fmt: skip
        assert "PCMU/8000" in _rtpmaps(offer["sdp"]), offer["sdp"]
        answer = await _ng(d, {**base, "command": "answer", "to-tag": "phone",
                               "sdp": phone.answer(offer["sdp"]), **PHONE_ANSWER})  # fmt: skip
        assert _rtpmaps(answer["sdp"]) == ["opus/48000/2"], answer["sdp"]
        phone.start(("127.0.0.1", _port(offer["sdp"])))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            await _audio_both_ways(phone, frames)
        finally:
            phone.stop()
            await _ng(d, {**base, "command": "delete"})


async def phone_calls_browser(d: Daemon) -> None:
    phone = PlainPeer(TONE_PLAIN, lifetime=3 * BOUND)
    async with peer() as (pc, frames):
        base: dict[str, Any] = {"call-id": "pcmu-to-opus", "from-tag": "phone"}
        offer = await _ng(d, {**base, "command": "offer", "sdp": phone.answer(""),
                              "codec": {"transcode": ["opus"]}, **SIP_TO_WEBRTC})  # fmt: skip
        assert "opus/48000/2" in _rtpmaps(offer["sdp"]), offer["sdp"]
        pc.addTransceiver(ToneTrack(), direction="sendrecv")
        _opus_only(pc)  # before the offer: aiortc picks its answer's codecs as it reads it
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        assert _rtpmaps(pc.localDescription.sdp) == ["opus/48000/2"]
        answer = await _ng(d, {**base, "command": "answer", "to-tag": "browser",
                               "sdp": pc.localDescription.sdp, **WEBRTC_ANSWER})  # fmt: skip
        assert _rtpmaps(answer["sdp"]) == ["PCMU/8000"], answer["sdp"]
        phone.start(("127.0.0.1", _port(answer["sdp"])))
        try:
            await _audio_both_ways(phone, frames)
        finally:
            phone.stop()
            await _ng(d, {**base, "command": "delete"})


def test_opus_browser_calls_pcmu_phone(relay: Daemon) -> None:
    asyncio.run(asyncio.wait_for(browser_calls_phone(relay), 3 * BOUND))


def test_pcmu_phone_calls_opus_browser(relay: Daemon) -> None:
    asyncio.run(asyncio.wait_for(phone_calls_browser(relay), 3 * BOUND))
