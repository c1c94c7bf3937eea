"""The WebRTC leg: aiortc's RTCIceTransport + RTCDtlsTransport (aioice, OpenSSL and libsrtp of an
independent stack, as a browser would run them) against one plane stream with our ICE agent and
DTLS session (`ICE=force DTLS=passive` towards the browser), and a plain party A on the other
leg. ICE first, DTLS over the selected pair, then SRTP/SRTCP both ways; the tap sees plaintext."""

from __future__ import annotations

import asyncio
import contextlib

import aioice.ice
import pytest
from aiortc import (
    RTCCertificate,
    RTCDtlsFingerprint,
    RTCDtlsParameters,
    RTCDtlsTransport,
    RTCIceGatherer,
    RTCIceParameters,
    RTCIceTransport,
)
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

from relay.dtls.cert import DtlsCertificate, generate_certificate, parse_fingerprint
from relay.dtls.session import DtlsSession, Role
from relay.ice import IceAgent, IceState, LocalSocket
from relay.ice.sdp import Candidate, parse_attribute, render_candidate
from relay.media.secure import attach_dtls, attach_ice
from tests.unit.relay.dtls.conftest import NOW
from tests.unit.relay.media.secure_rig import BOUND, SecureRig, rtcp_rr, rtp, transport

UFRAG, PWD = "rtpvWRTC", "webrtcpassword0123456789"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice gathers every address but 127.0.0.1; keep both agents on loopback."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def browser_call(ours: DtlsCertificate) -> SecureRig:
    loop = asyncio.get_running_loop()
    rig = SecureRig(loop)
    gatherer = RTCIceGatherer(iceServers=[])
    await gatherer.gather()
    ice = RTCIceTransport(gatherer)
    ice._connection.ice_controlling = True  # the browser offered: it controls
    theirs = RTCCertificate.generateCertificate()
    fp = theirs.getFingerprints()[0]
    dtls = RTCDtlsTransport(ice, [theirs])
    dtls._set_role("client")  # we are DTLS=passive
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def rtp_in(data: bytes, arrival_time_ms: int) -> None:
        received.put_nowait(data)

    async def rtcp_in(data: bytes) -> None:
        received.put_nowait(data)

    dtls._handle_rtp_data = rtp_in  # type: ignore[method-assign]  # aiortc unprotected it
    dtls._handle_rtcp_data = rtcp_in  # type: ignore[method-assign]

    port = rig.y.local_port
    agent = IceAgent(ufrag=UFRAG, pwd=PWD, controlling=False, tie_breaker=1,
                     sockets=[LocalSocket(1, ("127.0.0.1", port), 1, 2130706431)])  # fmt: skip
    params = gatherer.getLocalParameters()
    for c in gatherer.getLocalCandidates():
        parsed = parse_attribute("a=candidate:" + candidate_to_sdp(c))
        assert isinstance(parsed, Candidate)
        agent.add_remote_candidate(parsed)
    assert params.usernameFragment is not None and params.password is not None
    agent.set_remote(params.usernameFragment, params.password)
    agent.end_of_candidates()
    attach_ice(rig.y, agent, 1)
    session = DtlsSession(ours, Role.SERVER, parse_fingerprint(f"{fp.algorithm} {fp.value}"))
    attach_dtls(rig.y, session)
    rig.start()
    ours_c = Candidate("rtpvault1", 1, "UDP", 2130706431, "127.0.0.1", port, "host")
    await ice.addRemoteCandidate(candidate_from_sdp(render_candidate(ours_c)))
    await ice.addRemoteCandidate(None)
    our_fp = ours.fingerprint().render().split(" ")
    try:
        await asyncio.wait_for(ice.start(RTCIceParameters(UFRAG, PWD)), BOUND)
        await asyncio.wait_for(
            dtls.start(RTCDtlsParameters(fingerprints=[RTCDtlsFingerprint(*our_fp)])), BOUND
        )
        assert dtls.state == "connected"
        t = transport(rig.y)
        await rig.until(lambda: t.srtp_out is not None)
        assert agent.state is IceState.CONNECTED and t.dtls_state == "connected"
        for seq in range(1, 4):
            rig.a.sendto(rtp(seq, b"sip to browser"), rig.addr(rig.x.sock))
            assert await asyncio.wait_for(received.get(), BOUND) == rtp(seq, b"sip to browser")
            await dtls._send_rtp(rtp(seq, b"browser to sip", ssrc=0xB0B))
            assert await rig.recv(rig.a) == rtp(seq, b"browser to sip", ssrc=0xB0B)
        rig.a.sendto(rtcp_rr(), rig.addr(rig.x.sock))
        assert await asyncio.wait_for(received.get(), BOUND) == rtcp_rr()
        assert rig.taps["y"] == [rtp(s, b"browser to sip", ssrc=0xB0B) for s in range(1, 4)]
        assert (t.srtp_auth_failures, t.dtls_errors, t.no_keys) == (0, 0, 0)
        return rig
    finally:
        with contextlib.suppress(Exception):
            await dtls.stop()
            await ice.stop()
        rig.close()


def test_webrtc_leg_ice_then_dtls_then_srtp_both_ways() -> None:
    cert = generate_certificate(NOW, 0x5555, "rtpvault-webrtc-test")
    rig = asyncio.run(browser_call(cert))
    assert rig.x.packets == 4 and rig.y.packets == 3
