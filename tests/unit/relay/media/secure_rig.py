"""Loopback rig for the secure transport tests: plain party A ↔ stream x ↔ plane ↔ stream y ↔
party B (the secure side), on a real event loop whose exception handler fails the test."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable

from relay.media.secure import Transport
from relay.media.stream import Address, Stream
from relay.media.userspace import UserspacePlane

WALL = 1_795_581_206.5
BOUND = 10.0  # only stops a stuck run; never a timing assertion


def rtp(seq: int, payload: bytes = b"", ssrc: int = 0x11223344, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, 160 * seq, ssrc) + (payload or bytes(160))


def rtcp_rr(ssrc: int = 0x11223344) -> bytes:
    """An RTCP receiver report without blocks plus an SDES CNAME (RFC 3550 §6.4.2, §6.5)."""
    rr = struct.pack("!BBHI", 0x80, 201, 1, ssrc)
    cname = b"\x01\x06rtpvlt\x00\x00"
    sdes = struct.pack("!BBHI", 0x81, 202, 1 + len(cname) // 4, ssrc) + cname
    return rr + sdes


def transport(stream: Stream) -> Transport:
    assert stream.transport is not None
    return stream.transport


class SecureRig:
    """x faces plain party A, y faces party B; `b` is B's socket unless the test brings its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop, coalesce: float = 0.0) -> None:
        self.loop = loop
        self.errors: list[dict[str, object]] = []
        loop.set_exception_handler(lambda _loop, ctx: self.errors.append(ctx))
        self.socks: list[socket.socket] = []
        self.a, self.b = self.sock(), self.sock()
        self.x, self.y = self.stream(), self.stream()
        self.x.sink, self.y.sink = self.y, self.x
        self.x.peer = self.x.sdp_peer = self.addr(self.a)
        self.y.peer = self.y.sdp_peer = self.addr(self.b)
        self.x.call_id = self.y.call_id = "secure-rig"
        self.plane = UserspacePlane(
            loop, clock=lambda: 200.0, wallclock=lambda: WALL, coalesce=coalesce
        )
        self.taps: dict[str, list[bytes]] = {"x": [], "y": []}
        self.x.tap = lambda st, data, src, now: self.taps["x"].append(data)
        self.y.tap = lambda st, data, src, now: self.taps["y"].append(data)

    def sock(self) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        self.socks.append(s)
        return s

    def stream(self) -> Stream:
        sock = self.sock()
        st = Stream(sock, "127.0.0.1", sock.getsockname()[1])
        st.filled = True
        st.learn_until = 100.0  # the learning window is over: the first packet confirms
        return st

    @staticmethod
    def addr(sock: socket.socket) -> Address:
        host, port = sock.getsockname()[:2]
        return (host, port)

    def start(self) -> None:
        self.plane.add(self.x)
        self.plane.add(self.y)

    async def recv(self, sock: socket.socket) -> bytes:
        """The next datagram on a party socket."""
        data, _ = await asyncio.wait_for(self.loop.sock_recvfrom(sock, 65536), BOUND)
        return data

    async def until(self, done: Callable[[], bool]) -> None:
        async def wait() -> None:
            while not done():
                await asyncio.sleep(0.002)

        await asyncio.wait_for(wait(), BOUND)

    async def settle(self) -> None:
        """Let the loop run the readers for what was sent so far (loopback delivers at once)."""
        for _ in range(5):
            await asyncio.sleep(0.005)

    def close(self) -> None:
        self.plane.close()
        for s in self.socks:
            s.close()
        assert self.errors == [], self.errors
