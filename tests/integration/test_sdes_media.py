"""SDES SRTP on the wire through a real rtpvault daemon (issue 17): a
plain party and an SDES party; the SDES party is its own SRTP stack (pylibsrtp, keyed only from
the SDP), so every payload must cross the relay decrypted one way and encrypted the other."""

from __future__ import annotations

import base64
import os
import re
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pylibsrtp
import pytest

from tests.support.daemons import Daemon, start

pytestmark = pytest.mark.integration

SUITE = "AES_CM_128_HMAC_SHA1_80"
SSRC = {"a": 0x0A0A0A0A, "b": 0x0B0B0B0B}


def _sdp(port: int, protocol: str, crypto: str = "") -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} {protocol} 0\r\na=rtpmap:0 PCMU/8000\r\n{crypto}a=sendrecv\r\n"
    )


def _rtp(seq: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def _session(key_salt: bytes, inbound: bool) -> pylibsrtp.Session:
    ssrc = pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound else pylibsrtp.Policy.SSRC_ANY_OUTBOUND
    return pylibsrtp.Session(pylibsrtp.Policy(
        key=key_salt, ssrc_type=ssrc, srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    ))


def _port(reply: dict[str, Any]) -> int:
    assert reply["result"] == "ok", reply
    return int(str(reply["sdp"]).split("m=audio ")[1].split()[0])


def _relay_crypto(reply: dict[str, Any]) -> tuple[int, bytes]:
    """Tag and key||salt of the relay's AES_CM_128_HMAC_SHA1_80 line in its SDP."""
    m = re.search(rf"a=crypto:(\d+) {SUITE} inline:([A-Za-z0-9+/=]+)", str(reply["sdp"]))
    assert m is not None, reply["sdp"]
    return int(m.group(1)), base64.b64decode(m.group(2))


class Party:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.relay_port = 0

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.relay_port))

    def recv(self) -> bytes:
        data, _ = self.sock.recvfrom(2048)
        return data


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = start("rtpvault", tmp_path, ports=20)
    try:
        yield d
    finally:
        d.stop()


def _ng(d: Daemon, body: dict[str, Any]) -> dict[str, Any]:
    c = d.client()
    try:
        return c.call(body)
    finally:
        c.close()


def _both_ways(a: Party, b: Party, b_in: pylibsrtp.Session, b_out: pylibsrtp.Session) -> None:
    """A's plain RTP reaches B as SRTP B decrypts; B's SRTP reaches A as plain RTP."""
    for seq in range(1, 4):
        payload_a, payload_b = os.urandom(160), os.urandom(160)
        plain_a = _rtp(seq, SSRC["a"], payload_a)
        a.send(plain_a)
        got = b.recv()
        assert got != plain_a  # encrypted on B's leg
        assert b_in.unprotect(got) == plain_a
        plain_b = _rtp(seq, SSRC["b"], payload_b)
        b.send(b_out.protect(plain_b))
        assert a.recv() == plain_b


def test_plain_offerer_sdes_answerer(daemon: Daemon) -> None:
    a, b = Party(), Party()
    offer = _ng(daemon, {"command": "offer", "call-id": "sdes-1", "from-tag": "ta",
                         "sdp": _sdp(a.port, "RTP/AVP"),
                         "transport-protocol": "RTP/SAVP"})
    b.relay_port = _port(offer)
    assert " RTP/SAVP " in offer["sdp"]
    tag, relay_key = _relay_crypto(offer)
    b_key = os.urandom(30)
    line = f"a=crypto:{tag} {SUITE} inline:{base64.b64encode(b_key).decode()}\r\n"
    answer = _ng(daemon, {"command": "answer", "call-id": "sdes-1", "from-tag": "ta",
                          "to-tag": "tb", "sdp": _sdp(b.port, "RTP/SAVP", line)})
    a.relay_port = _port(answer)
    assert "a=crypto" not in answer["sdp"] and " RTP/AVP " in answer["sdp"]
    _both_ways(a, b, _session(relay_key, inbound=True), _session(b_key, inbound=False))


def test_reoffer_to_plain_detaches(daemon: Daemon) -> None:
    """A re-offer/answer that makes B's leg plain again: B then gets A's RTP unchanged."""
    a, b = Party(), Party()
    base = {"call-id": "sdes-3", "from-tag": "ta"}
    offer = _ng(daemon, {**base, "command": "offer", "sdp": _sdp(a.port, "RTP/AVP"),
                         "transport-protocol": "RTP/SAVP"})
    b.relay_port = _port(offer)
    tag, relay_key = _relay_crypto(offer)
    b_key = os.urandom(30)
    line = f"a=crypto:{tag} {SUITE} inline:{base64.b64encode(b_key).decode()}\r\n"
    a.relay_port = _port(_ng(daemon, {**base, "command": "answer", "to-tag": "tb",
                                      "sdp": _sdp(b.port, "RTP/SAVP", line)}))
    _both_ways(a, b, _session(relay_key, inbound=True), _session(b_key, inbound=False))
    reoffer = _ng(daemon, {**base, "command": "offer", "to-tag": "tb",
                           "sdp": _sdp(a.port, "RTP/AVP").replace(" 1 1 ", " 1 2 "),
                           "transport-protocol": "RTP/AVP"})
    assert _port(reoffer) == b.relay_port and "a=crypto" not in reoffer["sdp"]
    assert _port(_ng(daemon, {**base, "command": "answer", "to-tag": "tb",
                              "sdp": _sdp(b.port, "RTP/AVP").replace(" 1 1 ", " 1 2 ")}))
    plain_a, plain_b = _rtp(9, SSRC["a"], os.urandom(160)), _rtp(9, SSRC["b"], os.urandom(160))
    a.send(plain_a)
    assert b.recv() == plain_a
    b.send(plain_b)
    assert a.recv() == plain_b


def test_sdes_offerer_plain_answerer(daemon: Daemon) -> None:
    a, b = Party(), Party()
    b_key = os.urandom(30)
    line = f"a=crypto:1 {SUITE} inline:{base64.b64encode(b_key).decode()}\r\n"
    offer = _ng(daemon, {"command": "offer", "call-id": "sdes-2", "from-tag": "tb",
                         "sdp": _sdp(b.port, "RTP/SAVP", line),
                         "transport-protocol": "RTP/AVP"})
    a.relay_port = _port(offer)
    assert "a=crypto" not in offer["sdp"] and " RTP/AVP " in offer["sdp"]
    answer = _ng(daemon, {"command": "answer", "call-id": "sdes-2", "from-tag": "tb",
                          "to-tag": "ta", "sdp": _sdp(a.port, "RTP/AVP")})
    b.relay_port = _port(answer)
    tag, relay_key = _relay_crypto(answer)
    assert tag == 1 and relay_key != b_key
    _both_ways(a, b, _session(relay_key, inbound=True), _session(b_key, inbound=False))
