"""ICE over every address of the logical interface, through a real rtpvault daemon
(`--interface=lo/127.0.0.1 --interface=lo/127.0.0.2 --interface=lo/::1`;
docs/spec/sdp.md §1.9a): a WebRTC party (aiortc: ICE, DTLS-SRTP, PCMU) that can only reach
127.0.0.2 — it gathers that address only and hears nothing from any other, as behind a firewall
— gets its ICE checks answered, its DTLS handshake done and audio both ways through our socket
on 127.0.0.2, both directions of signalling. Before, only 127.0.0.1 was a candidate and such a
party got no media at all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCSessionDescription

from tests.integration.test_webrtc_media import (
    BOUND,
    SIP_ANSWER,
    SIP_TO_WEBRTC,
    WEBRTC_ANSWER,
    WEBRTC_TO_SIP,
    Plain,
    _answer_pcmu,
    _audio_both_ways,
    _ng,
    _pcmu_only,
    _port,
    peer,
)
from tests.support.daemons import Daemon, start

pytestmark = pytest.mark.integration

SECOND = "127.0.0.2"


@pytest.fixture(autouse=True)
def only_second_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [SECOND])
    received = aioice.ice.StunProtocol.datagram_received

    def filtered(self: aioice.ice.StunProtocol, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if addr[0] == SECOND:  # STUN, DTLS and SRTP alike: only from our second address
            received(self, data, addr)

    monkeypatch.setattr(aioice.ice.StunProtocol, "datagram_received", filtered)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = start("rtpvault", tmp_path, interface="lo/127.0.0.1", ports=20, extra=[
        f"--interface=lo/{SECOND}", "--interface=lo/::1",
        "--delete-delay=0"])  # fmt: skip
    try:
        yield d
    finally:
        d.stop()


def _candidate_addresses(sdp: str) -> list[str]:
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def webrtc_offers(d: Daemon, dtls: str) -> None:
    plain = Plain()
    async with peer() as (pc, frames):
        _pcmu_only(pc)
        await pc.setLocalDescription(await pc.createOffer())
        base = {"call-id": "multi-1", "from-tag": "browser"}
        offer = await _ng(d, {**base, "command": "offer", "sdp": pc.localDescription.sdp,
                              **WEBRTC_TO_SIP})  # fmt: skip
        plain.relay_port = _port(offer["sdp"])
        answer = await _ng(d, {**base, "command": "answer", "to-tag": "plain",
                               "sdp": plain.sdp(), **SIP_ANSWER, "DTLS": dtls})  # fmt: skip
        sdp = answer["sdp"]
        assert f"a=setup:{dtls}" in sdp  # active: our DTLS client starts on the selected pair
        assert _candidate_addresses(sdp) == ["127.0.0.1", SECOND, "::1"]  # rtcp-mux: one each
        sender = asyncio.ensure_future(plain.run())
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
            await _audio_both_ways(plain, frames)
        finally:
            sender.cancel()
        await _ng(d, {**base, "command": "delete"})


async def sip_offers(d: Daemon) -> None:
    plain = Plain()
    async with peer() as (pc, frames):
        base = {"call-id": "multi-2", "from-tag": "plain"}
        offer = await _ng(d, {**base, "command": "offer", "sdp": plain.sdp(), **SIP_TO_WEBRTC})
        assert _candidate_addresses(offer["sdp"]) == ["127.0.0.1", SECOND, "::1"] * 2
        answer = await _ng(d, {**base, "command": "answer", "to-tag": "browser",
                               "sdp": await _answer_pcmu(pc, offer["sdp"]),
                               **WEBRTC_ANSWER})  # fmt: skip
        plain.relay_port = _port(answer["sdp"])
        sender = asyncio.ensure_future(plain.run())
        try:
            await _audio_both_ways(plain, frames)
        finally:
            sender.cancel()
        await _ng(d, {**base, "command": "delete"})


@pytest.mark.parametrize("dtls", ["passive", "active"])
def test_webrtc_offer_media_through_the_second_address(daemon: Daemon, dtls: str) -> None:
    asyncio.run(asyncio.wait_for(webrtc_offers(daemon, dtls), 3 * BOUND))
    assert daemon.log().count("DTLS-SRTP established") == 1


def test_sip_offer_to_webrtc_media_through_the_second_address(daemon: Daemon) -> None:
    asyncio.run(asyncio.wait_for(sip_offers(daemon), 3 * BOUND))
    assert daemon.log().count("DTLS-SRTP established") == 1
