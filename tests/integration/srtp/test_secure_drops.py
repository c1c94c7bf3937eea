"""Bad secure media on an SDES leg through a real rtpvault daemon (issue 17 item 7): SRTP with
bad authentication tags, replays, STUN with a bad MESSAGE-INTEGRITY and DTLS garbage are
dropped (nothing reaches the plain party), counted in the stream's errors as rtpengine 10.5
counts them (docs/spec/ng-protocol.md §4.4), in /metrics by cause (docs/spec/metrics.md §4.1,
kept after the call ends), and logged once per call and cause."""

from __future__ import annotations

import base64
import os
import re
import socket
import struct
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pylibsrtp
import pytest

from tests.integration.test_sdes_media import SSRC, SUITE, Party, _port, _relay_crypto, _rtp, _sdp
from tests.support.daemons import Daemon, start
from tests.support.tools import free_port

pytestmark = pytest.mark.integration

"""The test switch that lets SRTP/DTLS/ICE SDP through (to go when the switch goes)."""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, int]]:
    http = free_port(socket.SOCK_STREAM)
    d = start("rtpvault", tmp_path, ports=20,
              extra=[f"--listen-http=127.0.0.1:{http}"])  # fmt: skip
    try:
        yield d, http
    finally:
        d.stop()


def _ng(d: Daemon, body: dict[str, Any]) -> dict[str, Any]:
    c = d.client()
    try:
        return c.call(body)
    finally:
        c.close()


def _metrics(http: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=5).read().decode()
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _outbound(key_salt: bytes) -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(
        key=key_salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    ))  # fmt: skip


def _call(d: Daemon, call_id: str) -> tuple[Party, Party, pylibsrtp.Session]:
    """A plain offerer A and an SDES answerer B; B's outbound SRTP session."""
    a, b = Party(), Party()
    offer = _ng(d, {"command": "offer", "call-id": call_id, "from-tag": "ta",
                    "sdp": _sdp(a.port, "RTP/AVP"), "transport-protocol": "RTP/SAVP"})  # fmt: skip
    b.relay_port = _port(offer)
    tag, _ = _relay_crypto(offer)
    b_key = os.urandom(30)
    line = f"a=crypto:{tag} {SUITE} inline:{base64.b64encode(b_key).decode()}\r\n"
    a.relay_port = _port(_ng(d, {"command": "answer", "call-id": call_id, "from-tag": "ta",
                                 "to-tag": "tb", "sdp": _sdp(b.port, "RTP/SAVP", line)}))
    return a, b, _outbound(b_key)


def _stun_bad_integrity() -> bytes:
    """A Binding request with USERNAME, a MESSAGE-INTEGRITY of random bytes and a correct
    FINGERPRINT (RFC 8489 §14.5, §14.7): well formed, so only its integrity is wrong."""
    user = b"abcd:efgh"
    attrs = struct.pack("!HH", 0x0006, len(user)) + user + b"\0" * (-len(user) % 4)
    attrs += struct.pack("!HH", 0x0008, 20) + os.urandom(20)
    head = struct.pack("!HHI", 0x0001, len(attrs) + 8, 0x2112A442) + os.urandom(12)
    crc = (zlib.crc32(head + attrs) ^ 0x5354554E) & 0xFFFFFFFF
    return head + attrs + struct.pack("!HHI", 0x8028, 4, crc)


def _bad_tag(packet: bytes) -> bytes:
    return packet[:-1] + bytes([packet[-1] ^ 0xFF])


def _send_rtcp(b: Party, data: bytes) -> None:
    b.sock.sendto(data, ("127.0.0.1", b.relay_port + 1))


def _stream(reply: dict[str, Any], tag: str, rtcp: bool) -> dict[str, Any]:
    streams = reply["tags"][tag]["medias"][0]["streams"]
    return next(s for s in streams if ("RTCP" if rtcp else "RTP") == s["flags"][0])


def test_bad_secure_media_dropped_counted_logged_once_per_call(
    daemon: tuple[Daemon, int],
) -> None:
    d, http = daemon
    a, b, out = _call(d, "drops-1")
    seq = iter(range(1, 1000))

    def good() -> bytes:
        plain = _rtp(next(seq), SSRC["b"], os.urandom(160))
        b.send(out.protect(plain))
        assert a.recv() == plain  # the next thing A gets: nothing before it was forwarded
        return plain

    good()
    replayed = out.protect(_rtp(next(seq), SSRC["b"], os.urandom(160)))
    b.send(replayed)
    a.recv()
    for _ in range(3):
        b.send(_bad_tag(out.protect(_rtp(next(seq), SSRC["b"], os.urandom(160)))))
    # a bad SRTCP packet on the RTCP port: same call and cause, so no second log line
    sr = struct.pack("!BBHI", 0x80, 200, 6, SSRC["b"]) + os.urandom(20)
    _send_rtcp(b, _bad_tag(out.protect_rtcp(sr)))
    for _ in range(2):
        b.send(replayed)
    for _ in range(2):
        b.send(_stun_bad_integrity())
    for _ in range(2):
        b.send(bytes([22, 254, 253]) + os.urandom(40))  # a DTLS content type, then garbage
    good()

    q = _ng(d, {"command": "query", "call-id": "drops-1"})
    rtp = _stream(q, "tb", rtcp=False)
    assert rtp["crypto suite"] == SUITE
    # rtpengine counts every dropped received datagram as an error, and the decrypted bytes
    assert rtp["stats"] == {"packets": 3, "bytes": 3 * 172, "errors": 3 + 2 + 2 + 2}
    assert _stream(q, "tb", rtcp=True)["stats"]["errors"] == 1

    # a second call: its own log line per cause
    a2, b2, out2 = _call(d, "drops-2")
    b2.send(_bad_tag(out2.protect(_rtp(1, SSRC["b"], os.urandom(160)))))
    plain = _rtp(2, SSRC["b"], os.urandom(160))
    b2.send(out2.protect(plain))
    assert a2.recv() == plain

    m = _metrics(http)
    drops = 'rtpvault_secure_packets_dropped_total{cause="%s"}'
    assert m[drops % "srtp_auth"] == 3 + 1 + 1
    assert m[drops % "srtp_replay"] == 2
    assert m[drops % "stun"] == 2
    assert m[drops % "dtls"] == 2
    assert m['rtpengine_packet_errors_total{type="userspace"}'] == 10 + 1

    for call_id in ("drops-1", "drops-2"):
        _ng(d, {"command": "delete", "call-id": call_id, "from-tag": "ta", "delete-delay": 0})
    after = _metrics(http)  # the ended calls' drops stay counted
    for cause in ("srtp_auth", "srtp_replay", "stun", "dtls"):
        assert after[drops % cause] == m[drops % cause]
    assert after['rtpengine_packet_errors_total{type="userspace"}'] == 11

    log = d.log()
    for call_id, causes in (("drops-1", ("SRTP authentication failed", "SRTP replayed",
                                         "STUN on a stream without ICE", "DTLS on a stream")),
                            ("drops-2", ("SRTP authentication failed",))):  # fmt: skip
        for cause in causes:
            lines = [ln for ln in log.splitlines()
                     if f"(call {call_id}, " in ln and cause in ln]  # fmt: skip
            assert len(lines) == 1, (call_id, cause, lines)
    assert not re.search(r"inline:|[A-Za-z0-9+/]{40}", "\n".join(
        ln for ln in log.splitlines() if "rtpvault.media.secure" in ln))  # no keys logged
