"""A two-party call through a relay over ng, with plain RTP/RTCP from loopback sockets."""

from __future__ import annotations

import re
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.daemons import Daemon


def rtp(seq: int, ts: int, ssrc: int, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + b"\xff" * 160


def rtcp_sr(ssrc: int) -> bytes:
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0, 0, 0, 0, 0)


def sdp(port: int, session: int, user: str = "-") -> str:
    return (
        f"v=0\r\no={user} {session} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )


def _sock() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2.0)
    return s


def _port(text: str) -> int:
    m = re.search(r"m=audio (\d+)", text)
    assert m, text
    return int(m.group(1))


@dataclass
class Leg:
    rtp: socket.socket = field(default_factory=_sock)
    rtcp: socket.socket = field(default_factory=_sock)
    relay_port: int = 0  # the relay port this leg sends to
    port: int = 0

    def __post_init__(self) -> None:
        self.port = int(self.rtp.getsockname()[1])

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


class Call:
    """caller (from-tag ft) ↔ relay ↔ callee (to-tag tt)."""

    def __init__(self, daemon: Daemon, call_id: str) -> None:
        self.ng = daemon.client()
        self.call_id = call_id
        self.caller = Leg()
        self.callee = Leg()
        self.replies: list[dict[str, Any]] = []

    def offer(self, **extra: Any) -> dict[str, Any]:
        r = self.ng.call(
            {
                "command": "offer",
                "call-id": self.call_id,
                "from-tag": "ft",
                "sdp": sdp(self.caller.port, 111, "alice"),
                **extra,
            }
        )
        assert r["result"] == "ok", r
        self.callee.relay_port = _port(r["sdp"])
        self.replies.append(r)
        return r

    def answer(self, **extra: Any) -> dict[str, Any]:
        r = self.ng.call(
            {
                "command": "answer",
                "call-id": self.call_id,
                "from-tag": "ft",
                "to-tag": "tt",
                "sdp": sdp(self.callee.port, 222),
                **extra,
            }
        )
        assert r["result"] == "ok", r
        self.caller.relay_port = _port(r["sdp"])
        self.replies.append(r)
        return r

    def command(self, command: str, **extra: Any) -> dict[str, Any]:
        return self.ng.call({"command": command, "call-id": self.call_id, **extra})

    def media(self, n: int, start: int = 0, rtcp: bool = False, interval: float = 0.002) -> None:
        """n RTP packets each way (caller SSRC 0xAAAA0001, callee 0xBBBB0002), then RTCP."""
        for i in range(start, start + n):
            self.caller.rtp.sendto(
                rtp(100 + i, 160 * i, 0xAAAA0001), ("127.0.0.1", self.caller.relay_port)
            )
            self.callee.rtp.sendto(
                rtp(500 + i, 160 * i, 0xBBBB0002), ("127.0.0.1", self.callee.relay_port)
            )
            time.sleep(interval)
        if rtcp:
            self.caller.rtcp.sendto(rtcp_sr(0xAAAA0001), ("127.0.0.1", self.caller.relay_port + 1))
            self.callee.rtcp.sendto(rtcp_sr(0xBBBB0002), ("127.0.0.1", self.callee.relay_port + 1))

    def received(self, leg: Leg, n: int) -> int:
        """How many of n expected packets `leg` got (relay forwarded)."""
        got = 0
        leg.rtp.settimeout(1.0)
        try:
            for _ in range(n):
                leg.rtp.recv(2048)
                got += 1
        except TimeoutError:
            pass
        return got

    def relayed(self, n: int) -> None:
        """Wait until the relay has forwarded the last n packets each way.

        The relay serves ng and media on one loop; a command sent right after media may be
        handled before packets still queued in the relay's socket, so tests that change what
        is recorded between batches wait for the previous batch first.
        """
        assert (self.received(self.caller, n), self.received(self.callee, n)) == (n, n)

    def delete(self) -> None:
        r = self.ng.call(
            {"command": "delete", "call-id": self.call_id, "from-tag": "ft", "delete-delay": 0}
        )
        assert r["result"] == "ok", r

    def close(self) -> None:
        self.ng.close()
        self.caller.close()
        self.callee.close()
