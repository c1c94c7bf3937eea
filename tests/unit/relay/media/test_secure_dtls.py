"""Plain party A ↔ plane ↔ DTLS-SRTP party B, B being aiortc's RTCDtlsTransport (OpenSSL and
libsrtp of an independent stack) over loopback UDP: handshake through the stream's socket, then
SRTP and SRTCP both ways; the tap sees plaintext only."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCCertificate, RTCDtlsFingerprint, RTCDtlsParameters, RTCDtlsTransport

from relay.dtls.cert import DtlsCertificate, generate_certificate, parse_fingerprint
from relay.dtls.session import DtlsSession, Role
from relay.media.secure import attach_dtls, drop_counts
from relay.media.stream import Stream
from relay.srtp import Suite
from tests.unit.relay.dtls.conftest import NOW
from tests.unit.relay.dtls.test_interop_aiortc import Datagrams, UdpIce
from tests.unit.relay.media.secure_rig import BOUND, SecureRig, rtcp_rr, rtp, transport


@pytest.fixture(scope="module")
def cert_a() -> DtlsCertificate:
    return generate_certificate(NOW, 0x4444, "rtpvault-media-test")


async def scenario(ours: DtlsCertificate, our_role: Role, bad_fingerprint: bool) -> SecureRig:
    loop = asyncio.get_running_loop()
    rig = SecureRig(loop)
    their_tr, their_proto = await loop.create_datagram_endpoint(
        Datagrams, local_addr=("127.0.0.1", 0)
    )
    theirs = RTCCertificate.generateCertificate()
    fp = theirs.getFingerprints()[0]
    expected = "sha-256 " + "00:" * 31 + "00" if bad_fingerprint else f"{fp.algorithm} {fp.value}"
    session = DtlsSession(ours, our_role, parse_fingerprint(expected))
    keyed: list[tuple[Stream, Suite]] = []
    attach_dtls(rig.y, session, on_keys=lambda st, suite: keyed.append((st, suite)))
    rig.y.peer = rig.y.sdp_peer = their_tr.get_extra_info("sockname")
    ice = UdpIce(their_proto, rig.addr(rig.y.sock), "controlled")
    dtls = RTCDtlsTransport(ice, [theirs])  # type: ignore[arg-type]
    dtls._set_role("server" if our_role is Role.CLIENT else "client")
    our_fp = ours.fingerprint().render().split(" ")
    params = RTCDtlsParameters(fingerprints=[RTCDtlsFingerprint(our_fp[0], our_fp[1])])
    rig.start()
    try:
        if bad_fingerprint:
            try:
                await asyncio.wait_for(dtls.start(params), BOUND)
            except Exception:  # noqa: BLE001 - aiortc may raise or just end up failed
                pass
            assert dtls.state != "connected"
            t = transport(rig.y)
            await rig.until(lambda: t.dtls_errors >= 1)
            assert t.srtp_out is None and t.dtls_state == "failed" and keyed == []
            assert dict(drop_counts(rig.y))["dtls_fingerprint"] == 1  # docs/spec/metrics.md §4.1
            rig.a.sendto(rtp(1, b"no keys, no send"), rig.addr(rig.x.sock))
            await rig.until(lambda: t.no_keys == 1)
            return rig
        await asyncio.wait_for(dtls.start(params), BOUND)
        assert dtls.state == "connected"
        t = transport(rig.y)
        await rig.until(lambda: t.srtp_out is not None)
        assert keyed and keyed[0][0] is rig.y and t.dtls_state == "connected"
        for seq in range(1, 4):
            rig.a.sendto(rtp(seq, b"to the browser"), rig.addr(rig.x.sock))
            wire = await asyncio.wait_for(ice.media.get(), BOUND)
            assert b"to the browser" not in wire
            assert dtls._rx_srtp.unprotect(wire) == rtp(seq, b"to the browser")
            await dtls._send_rtp(rtp(seq, b"from the browser", ssrc=0xB0B))
            assert await rig.recv(rig.a) == rtp(seq, b"from the browser", ssrc=0xB0B)
        rig.a.sendto(rtcp_rr(), rig.addr(rig.x.sock))
        assert dtls._rx_srtp.unprotect_rtcp(await asyncio.wait_for(ice.media.get(), BOUND)) \
            == rtcp_rr()  # fmt: skip
        await dtls._send_rtp(rtcp_rr(0xB0B))
        assert await rig.recv(rig.a) == rtcp_rr(0xB0B)
        assert rig.taps["y"] == [rtp(s, b"from the browser", ssrc=0xB0B) for s in range(1, 4)] \
            + [rtcp_rr(0xB0B)]  # fmt: skip
        return rig
    finally:
        await dtls.stop()
        their_tr.close()
        rig.close()


@pytest.mark.parametrize("our_role", [Role.CLIENT, Role.SERVER], ids=["active", "passive"])
def test_dtls_srtp_peer_through_the_plane(cert_a: DtlsCertificate, our_role: Role) -> None:
    rig = asyncio.run(scenario(cert_a, our_role, bad_fingerprint=False))
    t = rig.y.transport
    assert t is not None and t.dtls_errors == 0 and t.srtp_auth_failures == 0


def test_a_certificate_not_matching_the_fingerprint_gives_no_keys(cert_a: DtlsCertificate) -> None:
    rig = asyncio.run(scenario(cert_a, Role.SERVER, bad_fingerprint=True))
    assert rig.x.packets == 1 and rig.y.packets == 0


def test_a_handshake_that_never_completes_is_retransmitted_then_fails(
    cert_a: DtlsCertificate,
) -> None:
    """An active session towards a peer that never answers: the loop's timer retransmits the
    ClientHello to the SDP peer, then gives up; counted, logged once, no keys, no media."""

    async def scenario() -> SecureRig:
        rig = SecureRig(asyncio.get_running_loop())
        session = DtlsSession(cert_a, Role.CLIENT, parse_fingerprint(
            cert_a.fingerprint().render()), handshake_timeout=1.5)  # fmt: skip
        attach_dtls(rig.y, session)
        rig.start()  # y.peer is B's SDP address: the ClientHello goes there at once
        try:
            first = await rig.recv(rig.b)
            again = await rig.recv(rig.b)  # the retransmission timer (1 s) fired on the loop
            assert first[0] == again[0] == 22  # DTLS handshake records
            t = transport(rig.y)
            await rig.until(lambda: t.dtls_errors == 1)
            assert t.dtls_state == "failed" and t.srtp_out is None
            assert dict(drop_counts(rig.y))["dtls_timeout"] == 1  # docs/spec/metrics.md §4.1
            return rig
        finally:
            rig.close()

    rig = asyncio.run(scenario())
    assert transport(rig.y)._dtls_timer is None  # nothing left armed
