"""Our DTLS-SRTP session against rtpengine 10.5 itself (docs/spec/sdp.md §1.12b).

A plays the DTLS side with `relay.dtls`, B a plain RTP phone; rtpengine bridges them
(`transport-protocol=RTP/AVP` towards B). After the handshake, SRTP that A protects with the
exported keys must reach B decrypted, and B's plain RTP must reach A protected with rtpengine's
keys, which A unprotects: both sides derived the same keys. Both DTLS roles are tried: rtpengine
active (its default answer to `actpass`) and passive (`DTLS=passive` on the answer); in the
second, the ClientHello rtpengine sent right after the offer still waits in A's socket and our
client must drop it.
"""

from __future__ import annotations

import datetime
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pylibsrtp
import pytest

from relay.dtls import DtlsError
from relay.dtls.cert import DtlsCertificate, Setup, generate_certificate, parse_fingerprint
from relay.dtls.demux import Kind, classify
from relay.dtls.session import DtlsSession, Role, State
from tests.support import daemons
from tests.support.daemons import Daemon

pytestmark = pytest.mark.integration

LIBSRTP = {
    "SRTP_AES128_CM_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "SRTP_AES128_CM_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "SRTP_AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "SRTP_AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


@pytest.fixture
def rtpengine(tmp_path: Path) -> Iterator[Daemon]:
    d = daemons.start("rtpengine", tmp_path, interface="127.0.0.1", ports=50)
    try:
        yield d
    finally:
        d.stop()


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def sdp(port: int, proto: str, extra: str = "") -> str:
    return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\n{extra}")


def attr(body: str, name: str) -> str:
    return next(line.split(":", 1)[1] for line in body.split("\r\n") if line.startswith(name))


def media_port(body: str) -> int:
    return int(next(line for line in body.split("\r\n") if line.startswith("m=")).split()[1])


def handshake(sock: socket.socket, session: DtlsSession, peer: tuple[str, int]) -> None:
    """A minimal edge: the session's own handshake timeout ends a handshake that hangs."""
    for d in session.start(time.monotonic()):
        sock.sendto(d, peer)
    while session.state is State.CONNECTING:
        due = session.next_timeout()
        sock.settimeout(None if due is None else max(due - time.monotonic(), 0.001))
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            for d in session.handle_timeout(time.monotonic()):
                sock.sendto(d, peer)
            continue
        if classify(data) is Kind.DTLS:
            try:
                out = session.receive(data, time.monotonic())
            except DtlsError:
                continue
            for d in out:
                sock.sendto(d, peer)


def rtp(seq: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, 160 * seq, 0x5EC0DE01) + payload


def srtp(key: bytes, profile: str, outbound: bool) -> pylibsrtp.Session:
    kind = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
    return pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=kind,
                                              srtp_profile=LIBSRTP[profile]))


def recv_media(sock: socket.socket, timeout: float = 10.0) -> bytes | None:
    sock.settimeout(timeout)
    while True:
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            return None
        if classify(data) is Kind.RTP:
            return data


@pytest.mark.parametrize("answer_flags", [{}, {"DTLS": "passive"}], ids=["rtpe-active",
                                                                        "rtpe-passive"])
def test_srtp_keys_agree_with_rtpengine(rtpengine: Daemon, answer_flags: dict[str, str]) -> None:
    cert: DtlsCertificate = generate_certificate(
        datetime.datetime.now(datetime.UTC), 0x0A, "rtpvault-interop")
    a, b = udp(), udp()
    ng = rtpengine.client()
    fp = f"a=setup:actpass\r\na=fingerprint:{cert.fingerprint().render()}\r\n"
    offer = ng.call({"command": "offer", "call-id": "dtls-interop", "from-tag": "a",
                     "sdp": sdp(a.getsockname()[1], "UDP/TLS/RTP/SAVPF", fp),
                     "transport-protocol": "RTP/AVP"})
    answer = ng.call({"command": "answer", "call-id": "dtls-interop", "from-tag": "a",
                      "to-tag": "b", "sdp": sdp(b.getsockname()[1], "RTP/AVP"), **answer_flags})
    assert offer["result"] == answer["result"] == "ok"
    theirs = Setup(attr(answer["sdp"], "a=setup:"))
    role = Role.SERVER if theirs is Setup.ACTIVE else Role.CLIENT
    assert role is (Role.CLIENT if answer_flags else Role.SERVER)
    session = DtlsSession(cert, role, parse_fingerprint(attr(answer["sdp"], "a=fingerprint:")),
                          handshake_timeout=20.0)
    relay_a = ("127.0.0.1", media_port(answer["sdp"]))
    handshake(a, session, relay_a)
    assert session.keys is not None
    profile = session.keys.profile.openssl_name

    # rtpengine's threads may take the first SRTP packet before the one that handles our last
    # handshake flight has its keys (seen under load): send again until one crosses
    protect = srtp(session.keys.local(role), profile, True).protect
    got = None
    for seq in range(1, 50):
        a.sendto(protect(rtp(seq, b"A to B")), relay_a)
        got = recv_media(b, 0.2)
        if got is not None:
            break
    assert got is not None and got[12:] == b"A to B"  # rtpengine decrypted with our keys

    b.sendto(rtp(1, b"B to A"), ("127.0.0.1", media_port(offer["sdp"])))
    got = recv_media(a)
    assert got is not None
    assert srtp(session.keys.remote(role), profile, False).unprotect(got) == rtp(1, b"B to A")
    ng.call({"command": "delete", "call-id": "dtls-interop", "from-tag": "a"})
