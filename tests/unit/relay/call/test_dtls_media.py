"""DTLS-SRTP wired by the call model (relay.call.dtls_media) over real sockets and the userspace
plane: plain A offers, we offer `actpass` to B (docs/spec/sdp.md §1.12b), and B, a DTLS client
(our own relay.dtls session with its own certificate), sends its ClientHello *before* its
answer reaches us, as a browser does. Our role is open until the answer: the ClientHello waits
(no ServerHello goes out: a peer the answer makes server would take it as an unexpected
message, as rtpengine 10.5 does), and the handshake runs once the answer made us server. The
answer's a=fingerprint then decides: a match gives SRTP both ways, a mismatch gives no media at
all (dropped, counted, logged once)."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import struct

import pytest

from relay.call import Registry
from relay.call.secure import SecureContext
from relay.config.interfaces import Interface
from relay.dtls import DtlsError
from relay.dtls.cert import DtlsCertificate, generate_certificate
from relay.dtls.session import DtlsSession, Role, State
from relay.media.secure import Transport
from relay.media.userspace import UserspacePlane
from relay.ng.commands import Commands
from relay.srtp import open_context
from relay.srtp.suites import suite as suite_named
from tests.unit.relay.dtls.conftest import NOW
from tests.unit.relay.media.secure_rig import BOUND, transport

SOURCE = ("127.0.0.1", 5060)
DTLS_SUITE = {"SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM"}


LOOPBACK = Interface("default", "127.0.0.1", "127.0.0.1", "IP4")


def _sdp(port: int, protocol: str = "RTP/AVP", extra: str = "") -> str:
    return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} {protocol} 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}"
            "a=sendrecv\r\n")  # fmt: skip


def _rtp(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes([seq]) * 160


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def _port(sdp: str) -> int:
    m = re.search(r"^m=audio (\d+) ", sdp, re.M)
    assert m is not None, sdp
    return int(m.group(1))


async def _recv(sock: socket.socket, bound: float = BOUND) -> bytes:
    data, _ = await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(sock, 4096), bound)
    return data


async def _next(sock: socket.socket) -> bytes | None:
    """What arrived while the loop ran the readers a few rounds (loopback is immediate)."""
    for _ in range(10):
        await asyncio.sleep(0.01)
    try:
        return sock.recvfrom(4096)[0]
    except BlockingIOError:
        return None


async def call(ours: DtlsCertificate, b_cert: DtlsCertificate, answered: DtlsCertificate,
               ) -> Transport:  # fmt: skip
    """B's leg's transport after three packets each way; `answered`: whose fingerprint B's
    answer names (b_cert: the true one, then every packet must cross; else none may)."""
    expect = answered is b_cert
    loop = asyncio.get_running_loop()
    plane = UserspacePlane(loop)
    ctx = SecureContext(fingerprint=lambda h: ours.fingerprint(h).render(),
                        interfaces=[("f1", "127.0.0.1")], rng=random.Random(7),
                        certificate=ours)  # fmt: skip
    reg = Registry([LOOPBACK], 42000, 42999, plane, secure=ctx)
    commands = Commands(reg)
    a, b = _udp(), _udp()
    try:
        offer = commands.dispatch({
            "command": "offer", "call-id": "d1", "from-tag": "a",
            "sdp": _sdp(a.getsockname()[1]), "ICE": "remove", "SDES": ["off"],
            "transport-protocol": "UDP/TLS/RTP/SAVP"}, SOURCE)  # fmt: skip
        assert "a=setup:actpass" in offer["sdp"]
        to_b = ("127.0.0.1", _port(offer["sdp"]))
        client = DtlsSession(b_cert, Role.CLIENT, ours.fingerprint())
        for d in client.start(loop.time()):
            b.sendto(d, to_b)
        assert await _next(b) is None  # our role is open: the ClientHello waits
        stream = reg.calls["d1"].parties[""].medias[0].rtp if "" in reg.calls["d1"].parties \
            else reg.calls["d1"].untagged[0].medias[0].rtp  # fmt: skip
        assert stream is not None and transport(stream).srtp_out is None
        fp = answered.fingerprint().render()
        answer = commands.dispatch({
            "command": "answer", "call-id": "d1", "from-tag": "a", "to-tag": "b",
            "sdp": _sdp(b.getsockname()[1], "UDP/TLS/RTP/SAVP",
                        f"a=setup:active\r\na=fingerprint:{fp}\r\n")}, SOURCE)  # fmt: skip
        to_a = ("127.0.0.1", _port(answer["sdp"]))
        while client.state is State.CONNECTING:  # the answer made us server: now we answer
            reply = await _recv(b) if expect else await _next(b)
            if reply is None:
                break  # a mismatch: our server gave up
            try:
                out = client.receive(reply, loop.time())
            except DtlsError:
                break
            for d in out:
                b.sendto(d, to_b)
        if not expect:
            for seq in range(1, 4):
                a.sendto(_rtp(seq, 0xA), to_a)
                assert await _next(b) is None  # not SRTP, and not the plaintext either
                b.sendto(_rtp(seq, 0xB), to_b)
                assert await _next(a) is None
            return transport(stream)
        assert client.state is State.CONNECTED and client.keys is not None
        suite = suite_named(DTLS_SUITE[client.keys.profile.openssl_name])
        b_out = open_context(suite, client.keys.local(Role.CLIENT), outbound=True)
        b_in = open_context(suite, client.keys.remote(Role.CLIENT), outbound=False)
        for seq in range(1, 4):
            a.sendto(_rtp(seq, 0xA), to_a)
            if expect:
                got = await _recv(b)
                assert got != _rtp(seq, 0xA) and b_in.unprotect_rtp(got) == _rtp(seq, 0xA)
            else:
                assert await _next(b) is None  # not SRTP, and not the plaintext either
            b.sendto(b_out.protect_rtp(_rtp(seq, 0xB)), to_b)
            if expect:
                assert await _recv(a) == _rtp(seq, 0xB)
            else:
                assert await _next(a) is None
        return transport(stream)
    finally:
        for party in list(reg.calls):
            reg.terminate(party)
        plane.close()
        a.close()
        b.close()


@pytest.fixture(scope="module")
def ours() -> DtlsCertificate:
    return generate_certificate(NOW, 0x7777, "rtpvault-call-test")


@pytest.fixture(scope="module")
def cert_a() -> DtlsCertificate:
    return generate_certificate(NOW, 0x7778, "party-b-true")


@pytest.fixture(scope="module")
def cert_b() -> DtlsCertificate:
    return generate_certificate(NOW, 0x7779, "party-b-claimed")


def test_handshake_before_the_answer_then_srtp_both_ways(
    ours: DtlsCertificate, cert_a: DtlsCertificate
) -> None:
    t = asyncio.run(call(ours, cert_a, cert_a))
    assert t.dtls_state == "connected" and t.suite == "AEAD_AES_256_GCM"
    assert (t.dtls_errors, t.dtls_mismatches, t.srtp_auth_failures) == (0, 0, 0)


def test_an_answer_naming_another_certificate_stops_all_media(
    ours: DtlsCertificate, cert_a: DtlsCertificate, cert_b: DtlsCertificate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        t = asyncio.run(call(ours, cert_a, cert_b))
    assert t.dtls_state == "failed" and t.srtp_out is None
    assert (t.dtls_mismatches, t.dtls_errors) == (1, 1)
    assert t.no_keys >= 3  # A's three packets: none went to B, in the clear or otherwise
    lines = [r for r in caplog.records if "does not match a=fingerprint" in r.getMessage()]
    assert len(lines) == 1
