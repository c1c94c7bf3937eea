"""Interop with an independent DTLS-SRTP stack: aiortc's RTCDtlsTransport on loopback UDP.

Our `DtlsSession` is driven by a tiny asyncio datagram edge (the call model's job later). aiortc
normally runs DTLS over its ICE transport; `UdpIce` stands in for that with a plain UDP socket
(aiortc's DTLS, OpenSSL and libsrtp are all real). Both sides must derive the same SRTP keys:
a packet protected by one side with pylibsrtp is unprotected by the other.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

import pylibsrtp
import pytest
from aiortc import RTCCertificate, RTCDtlsFingerprint, RTCDtlsParameters, RTCDtlsTransport

from relay.dtls import DtlsError
from relay.dtls.cert import DtlsCertificate, parse_fingerprint
from relay.dtls.demux import Kind, classify
from relay.dtls.session import DtlsSession, Role, SrtpKeys, State

LIBSRTP = {
    "SRTP_AES128_CM_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "SRTP_AES128_CM_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "SRTP_AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "SRTP_AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


class Datagrams(asyncio.DatagramProtocol):
    """Received datagrams on a queue; the transport for sending."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))


class UdpIce:
    """What RTCDtlsTransport uses of its RTCIceTransport (`role`, `_send`, `_recv`), over UDP.
    SRTP from the peer goes to `media`, so the test reads it instead of aiortc's RTP router."""

    def __init__(self, proto: Datagrams, peer: tuple[str, int], role: str) -> None:
        self.proto, self.peer, self.role, self.state = proto, peer, role, "completed"
        self.media: asyncio.Queue[bytes] = asyncio.Queue()

    async def _send(self, data: bytes) -> None:
        assert self.proto.transport is not None
        self.proto.transport.sendto(data, self.peer)

    async def _recv(self) -> bytes:
        while True:
            data, _ = await self.proto.queue.get()
            if classify(data) in (Kind.RTP, Kind.RTCP):
                self.media.put_nowait(data)
            else:
                return data


async def drive(session: DtlsSession, proto: Datagrams, peer: tuple[str, int]) -> list[bytes]:
    """The edge: feed DTLS datagrams to the session, send what it returns, run its timer.
    Returns the SRTP datagrams that arrived once the session is connected."""
    loop = asyncio.get_running_loop()
    assert proto.transport is not None
    send = proto.transport.sendto
    for d in session.start(loop.time()):
        send(d, peer)
    media: list[bytes] = []
    while session.state is State.CONNECTING or (session.state is State.CONNECTED and not media):
        due = session.next_timeout()
        wait = None if due is None else max(due - loop.time(), 0.0)
        try:
            data, _ = await asyncio.wait_for(proto.queue.get(), wait)
        except TimeoutError:
            for d in session.handle_timeout(loop.time()):
                send(d, peer)
            continue
        if classify(data) is Kind.DTLS:
            try:
                for d in session.receive(data, loop.time()):
                    send(d, peer)
            except DtlsError:
                continue
        elif session.state is State.CONNECTED:
            media.append(data)
    return media


def rtp(seq: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, 0x1234ABCD) + payload


def our_srtp(keys: SrtpKeys, role: Role, outbound: bool) -> pylibsrtp.Session:
    key = keys.local(role) if outbound else keys.remote(role)
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=kind,
                                              srtp_profile=LIBSRTP[keys.profile.openssl_name]))


async def exchange(ours: DtlsCertificate, our_role: Role) -> tuple[SrtpKeys, list[bytes], bytes]:
    loop = asyncio.get_running_loop()
    our_tr, our_proto = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
    their_tr, their_proto = await loop.create_datagram_endpoint(Datagrams,
                                                                local_addr=("127.0.0.1", 0))
    our_addr, their_addr = our_tr.get_extra_info("sockname"), their_tr.get_extra_info("sockname")
    theirs = RTCCertificate.generateCertificate()
    fp = theirs.getFingerprints()[0]
    session = DtlsSession(ours, our_role, parse_fingerprint(f"{fp.algorithm} {fp.value}"))
    ice = UdpIce(their_proto, our_addr, "controlled")
    dtls = RTCDtlsTransport(ice, [theirs])  # type: ignore[arg-type]
    dtls._set_role("server" if our_role is Role.CLIENT else "client")
    our_fp = ours.fingerprint().render().split(" ")
    params = RTCDtlsParameters(fingerprints=[RTCDtlsFingerprint(our_fp[0], our_fp[1])])
    try:
        edge = asyncio.ensure_future(drive(session, our_proto, their_addr))
        await asyncio.wait_for(dtls.start(params), 20)
        assert dtls.state == "connected"
        await dtls._send_rtp(rtp(1, b"from aiortc"))  # aiortc's own SRTP protect
        media = await asyncio.wait_for(edge, 20)
        assert session.state is State.CONNECTED and session.keys is not None
        protected = our_srtp(session.keys, our_role, outbound=True).protect(rtp(2, b"from us"))
        our_tr.sendto(protected, their_addr)
        arrived = await asyncio.wait_for(ice.media.get(), 20)
        return session.keys, media, dtls._rx_srtp.unprotect(arrived)
    finally:
        await dtls.stop()
        our_tr.close()
        their_tr.close()


@pytest.mark.parametrize("our_role", [Role.CLIENT, Role.SERVER])
def test_aiortc_and_our_session_derive_the_same_srtp_keys(
    cert_a: DtlsCertificate, our_role: Role
) -> None:
    keys, media, theirs_read = asyncio.run(exchange(cert_a, our_role))
    assert our_srtp(keys, our_role, outbound=False).unprotect(media[0]) == rtp(1, b"from aiortc")
    assert theirs_read == rtp(2, b"from us")
