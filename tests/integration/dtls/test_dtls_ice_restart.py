"""An ICE restart under DTLS-SRTP, on rtpengine 10.5 and on rtpvault alike (docs/spec/sdp.md
§1.12b "ICE restart").

A is a lite ICE agent (media-level `a=ice-lite`, so the relay controls and nominates) and a DTLS
server (`relay.dtls`); it answers the relay's STUN checks with aioice's STUN codec. After the
handshake A re-offers with a new ufrag/pwd and the same fingerprint. 10.5 answers with new
ufrag/pwd of its own, runs ICE again (checks under A's new ufrag) and does **not** restart DTLS:
no new ClientHello, and SRTP under the first keys still reaches B.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioice import stun

from relay.dtls.cert import DtlsCertificate, Setup, generate_certificate, parse_fingerprint
from relay.dtls.demux import Kind, classify
from relay.dtls.session import DtlsSession, Role, State
from tests.integration.dtls.test_dtls_vs_rtpengine import attr, media_port, rtp, srtp, udp
from tests.support import daemons
from tests.support.daemons import Daemon

pytestmark = pytest.mark.integration

BOUND = 10.0
"""Seconds before a handshake that never ends fails the test (no timing assertion)."""


@pytest.fixture(params=["rtpengine", "rtpvault"])
def relay(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Daemon]:
    d = daemons.start(str(request.param), tmp_path, interface="127.0.0.1", ports=20)
    try:
        yield d
    finally:
        d.stop()


class LitePeer:
    """A's socket: STUN checks answered under the current credentials, DTLS fed to `session`,
    and a log of what came ("stun:<ufrag>", "ClientHello", "dtls", "rtp")."""

    def __init__(self, cert: DtlsCertificate) -> None:
        self.sock = udp()
        self.port = self.sock.getsockname()[1]
        self.cert = cert
        self.ufrag, self.pwd = "Aa11", "pwdpwdpwdpwdpwdpwdpwd01"
        self.session: DtlsSession | None = None
        self.log: list[str] = []

    def sdp(self, version: int) -> str:
        return ("v=0\r\n" f"o=- 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                f"t=0 0\r\nm=audio {self.port} UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n"
                f"a=rtcp-mux\r\na=ice-lite\r\na=ice-ufrag:{self.ufrag}\r\na=ice-pwd:{self.pwd}\r\n"
                f"a=candidate:1 1 UDP 2130706431 127.0.0.1 {self.port} typ host\r\n"
                f"a=setup:actpass\r\na=fingerprint:{self.cert.fingerprint().render()}\r\n")

    def pump(self, seconds: float, done: bool = False) -> None:
        """Serve the socket for `seconds` (or until the DTLS session is connected: `done`)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if done and self.session is not None and self.session.state is State.CONNECTED:
                return
            self.sock.settimeout(left)
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                return
            kind = classify(data)
            if kind is Kind.STUN:
                self._stun(data, source)
            elif kind is Kind.DTLS:
                hello = data[0] == 22 and data[3:5] == b"\0\0" and data[13] == 1
                self.log.append("ClientHello" if hello else "dtls")
                s = self.session
                if s is not None and s.state in (State.NEW, State.CONNECTING):
                    for out in s.receive(data, time.monotonic()):
                        self.sock.sendto(out, source)
            else:
                self.log.append("rtp")

    def _stun(self, data: bytes, source: tuple[str, int]) -> None:
        msg = stun.parse_message(data)
        if msg.message_class != stun.Class.REQUEST:
            return
        ufrag = str(msg.attributes.get("USERNAME", "")).split(":")[0]
        self.log.append(f"stun:{ufrag}")
        if ufrag != self.ufrag:
            return
        resp = stun.Message(message_method=stun.Method.BINDING,
                            message_class=stun.Class.RESPONSE,
                            transaction_id=msg.transaction_id)  # fmt: skip
        resp.attributes["XOR-MAPPED-ADDRESS"] = source
        resp.add_message_integrity(self.pwd.encode())
        resp.add_fingerprint()
        self.sock.sendto(bytes(resp), source)


def _plain(port: int, version: int) -> str:
    return (f"v=0\r\no=- 2 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")  # fmt: skip


def test_ice_restart_keeps_dtls(relay: Daemon) -> None:
    cert = generate_certificate(datetime.datetime.now(datetime.UTC), 0x0D, "ice-restart")
    peer, b = LitePeer(cert), udp()
    ng = relay.client()
    base = {"call-id": "ice-restart", "from-tag": "a"}

    def exchange(version: int) -> str:
        offer = ng.call({**base, "command": "offer", "sdp": peer.sdp(version),
                         "transport-protocol": "RTP/AVP", "ICE": "remove"})  # fmt: skip
        answer = ng.call({**base, "command": "answer", "to-tag": "b", "ICE": "force",
                          "sdp": _plain(b.getsockname()[1], version)})  # fmt: skip
        assert offer["result"] == answer["result"] == "ok", (offer, answer)
        return str(answer["sdp"])

    try:
        first = exchange(1)
        assert Setup(attr(first, "a=setup:")) is Setup.ACTIVE
        fp = parse_fingerprint(attr(first, "a=fingerprint:"))
        peer.session = DtlsSession(cert, Role.SERVER, fp, handshake_timeout=BOUND)
        peer.pump(BOUND, done=True)
        keys = peer.session.keys
        assert keys is not None, peer.log
        out = srtp(keys.local(Role.SERVER), keys.profile.openssl_name, True)
        to_relay = ("127.0.0.1", media_port(first))
        seq = 0

        def carries() -> bool:
            nonlocal seq
            b.settimeout(0.3)
            for _ in range(10):
                seq += 1
                peer.sock.sendto(out.protect(rtp(seq, b"m")), to_relay)
                try:
                    if b.recv(2000) == rtp(seq, b"m"):
                        return True
                except TimeoutError:
                    peer.pump(0.05)
            return False

        assert carries()
        peer.ufrag, peer.pwd = "Bb22", "pwdpwdpwdpwdpwdpwdpwd02"
        peer.log.clear()
        second = exchange(2)
        assert attr(second, "a=ice-ufrag:") != attr(first, "a=ice-ufrag:")  # new ones back
        assert attr(second, "a=ice-pwd:") != attr(first, "a=ice-pwd:")
        assert attr(second, "a=setup:") == "active"
        peer.pump(3.0)
        assert "stun:Bb22" in peer.log and "ClientHello" not in peer.log, peer.log
        assert carries()  # the first handshake's keys still carry SRTP
    finally:
        ng.call({**base, "command": "delete"})
        ng.close()
        peer.sock.close()
        b.close()
