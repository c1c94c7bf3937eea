"""A media endpoint for integration tests: an RTP socket on an even port and its RTCP socket on
port+1 (loopback), with packet makers whose payloads differ per packet, so a test can tell
that every packet arrived intact and none was swapped, repeated or decrypted with a wrong key;
and the one-m=-line SDP such a party sends."""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from .daemons import Daemon

Address = tuple[str, int]


def rtp_packet(seq: int, ssrc: int, payload: bytes, pt: int = 0) -> bytes:
    """RTP v2 (RFC 3550 §5.1), no CSRC or extension; timestamp 160 per packet."""
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc) + payload


def rtcp_sr(ssrc: int, filler: bytes) -> bytes:
    """An RTCP sender report without report blocks (RFC 3550 §6.4.1); `filler` is the 20
    bytes of NTP/RTP timestamps and counts, so each report differs."""
    if len(filler) != 20:
        raise ValueError("an SR sender-info block is 20 bytes")
    return struct.pack("!BBHI", 0x80, 200, 6, ssrc) + filler


def fresh_payload(n: int = 160) -> bytes:
    return os.urandom(n)


@dataclass
class Party:
    """One plain or SRTP party: where it listens and where it sends (the relay's ports)."""

    timeout: float = 5.0
    rtp: socket.socket = field(init=False)
    rtcp: socket.socket = field(init=False)
    peer: Address = ("127.0.0.1", 0)
    """The relay's RTP address facing this party (RTCP is port+1)."""

    def __post_init__(self) -> None:
        self.rtp, self.rtcp = _udp_pair(self.timeout)

    @property
    def port(self) -> int:
        return int(self.rtp.getsockname()[1])

    def send_rtp(self, data: bytes) -> None:
        self.rtp.sendto(data, self.peer)

    def send_rtcp(self, data: bytes) -> None:
        self.rtcp.sendto(data, (self.peer[0], self.peer[1] + 1))

    def recv_rtp(self) -> bytes:
        return self.rtp.recv(4096)

    def recv_rtcp(self) -> bytes:
        return self.rtcp.recv(4096)

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


def _udp_pair(timeout: float) -> tuple[socket.socket, socket.socket]:
    while True:
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind(("127.0.0.1", port + 1))
            except OSError:
                rtcp.close()
                rtp.close()
                continue
            for s in (rtp, rtcp):
                s.settimeout(timeout)
            return rtp, rtcp
        rtp.close()


def party_sdp(port: int, protocol: str = "RTP/AVP", extra: str = "") -> str:
    """One PCMU audio line on 127.0.0.1:`port`; `extra`: more a= lines (CRLF-terminated)."""
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} {protocol} 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n{extra}"
    )


def media_port(sdp: str) -> int:
    return int(sdp.split("m=audio ")[1].split()[0])


def ng_sdp(d: Daemon, body: dict[str, Any]) -> str:
    """Send one ng request; the reply must be ok and carry an SDP, which is returned."""
    c = d.client()
    try:
        reply = c.call(body)
    finally:
        c.close()
    assert reply["result"] == "ok", (d.name, reply)
    return str(reply["sdp"])
