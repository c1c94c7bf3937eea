"""The userspace plane between hosts in network namespaces: A ⇄ relay ⇄ B, with C injecting.

Topology (tests/integration/media/netns.py): hosts a, b, c, each on its own veth link to the
relay namespace (10.99.<n>.2 ⇄ 10.99.<n>.1). The relay's two media sockets are opened inside
the relay namespace and driven by a UserspacePlane on this process's event loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Iterator

import pytest

from relay.media.stream import Address, Stream
from relay.media.userspace import UserspacePlane, set_tos
from tests.support.tools import require, unavailable

from .netns import Netns, Topology

pytestmark = pytest.mark.integration

PORT_X = 30000  # relay port facing A (on 10.99.1.1)
PORT_Y = 30002  # relay port facing B (on 10.99.2.1)
HOST_PORT = 40000


def rtp(seq: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0xCAFEF00D) + (payload or bytes(160))


class Relay:
    """A linked stream pair in the relay namespace, host sockets in a, b, c, one event loop."""

    def __init__(
        self, topo: Topology, tos: int | None = None, coalesce: float = 0.0, v6: bool = False
    ) -> None:
        self.topo = topo
        self.v6 = v6
        self.family = socket.AF_INET6 if v6 else socket.AF_INET
        self.loop = asyncio.new_event_loop()
        self.socks: list[socket.socket] = []
        self.a = self._host_sock(topo.hosts["a"], self.host("a"))
        self.b = self._host_sock(topo.hosts["b"], self.host("b"))
        self.c = self._host_sock(topo.hosts["c"], self.host("c"))
        for s in (self.a, self.b):
            if v6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
            else:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        relay = topo.hosts["relay"]
        self.x = self._stream(relay, self.relay("a"), PORT_X)
        self.y = self._stream(relay, self.relay("b"), PORT_Y)
        if tos is not None:
            set_tos(self.y.sock, tos)
        self.x.sink, self.y.sink = self.y, self.x
        self.x.peer = self.x.sdp_peer = (self.host("a"), HOST_PORT)
        self.y.peer = self.y.sdp_peer = (self.host("b"), HOST_PORT)
        self.plane = UserspacePlane(self.loop, clock=lambda: 1000.0, coalesce=coalesce)
        self.plane.add(self.x)
        self.plane.add(self.y)

    def host(self, name: str) -> str:
        return self.topo.host_address(name, self.v6)

    def relay(self, name: str) -> str:
        return self.topo.relay_address(name, self.v6)

    def _host_sock(self, ns: Netns, address: str) -> socket.socket:
        with ns.entered():
            s = socket.socket(self.family, socket.SOCK_DGRAM)
        self.socks.append(s)
        s.bind((address, HOST_PORT))
        s.setblocking(False)
        return s

    def _stream(self, ns: Netns, address: str, port: int) -> Stream:
        with ns.entered():
            s = socket.socket(self.family, socket.SOCK_DGRAM)
        self.socks.append(s)
        s.bind((address, port))
        st = Stream(s, address, port, self.family)
        st.filled = True
        st.learn_until = 0.0  # signalled long ago: the first packet confirms
        return st

    def to_x(self, sock: socket.socket, data: bytes) -> None:
        sock.sendto(data, (self.relay("a"), PORT_X))

    def to_y(self, sock: socket.socket, data: bytes) -> None:
        sock.sendto(data, (self.relay("b"), PORT_Y))

    def recv(self, sock: socket.socket) -> tuple[bytes, Address, int | None]:
        """(datagram, source, TOS byte) of the next packet, running the loop until it arrives."""
        fut: asyncio.Future[tuple[bytes, Address, int | None]] = self.loop.create_future()

        def ready() -> None:
            try:
                data, anc, _flags, addr = sock.recvmsg(65536, 64)
            except BlockingIOError:
                return
            tos = next((_tos_of(level, kind, raw) for level, kind, raw in anc), None)
            self.loop.remove_reader(sock.fileno())
            fut.set_result((data, (addr[0], addr[1]), tos))

        self.loop.add_reader(sock.fileno(), ready)
        return self.loop.run_until_complete(asyncio.wait_for(fut, 5))

    def close(self) -> None:
        self.plane.close()
        for s in self.socks:
            s.close()
        self.loop.close()


def _tos_of(level: int, kind: int, raw: bytes) -> int | None:
    """The TOS / traffic class byte from an IP_TOS (1 byte) or IPV6_TCLASS (int) cmsg."""
    if level == socket.IPPROTO_IP and kind == socket.IP_TOS:
        return raw[0]
    if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_TCLASS:
        return int.from_bytes(raw[:4], "little")
    return None


@pytest.fixture
def topo() -> Iterator[Topology]:
    require("ip")
    if os.geteuid() != 0:
        unavailable("network namespaces need root (CI=true fails here)")
    t = Topology(f"rvm{os.getpid()}")
    try:
        t.build()
        yield t
    finally:
        t.destroy()


@pytest.fixture(params=[0.0, 0.001], ids=["per-socket", "coalesce"])
def relay(topo: Topology, request: pytest.FixtureRequest) -> Iterator[Relay]:
    r = Relay(topo, coalesce=request.param)
    yield r
    r.close()


def test_rtp_crosses_the_relay_both_ways_intact_with_rewritten_addresses(relay: Relay) -> None:
    topo = relay.topo
    for seq in range(5):
        relay.to_x(relay.a, rtp(seq, b"A" * 160))
        data, src, _ = relay.recv(relay.b)
        assert data == rtp(seq, b"A" * 160)
        assert src == (relay.relay("b"), PORT_Y)
    for seq in range(3):
        relay.to_y(relay.b, rtp(100 + seq, b"B" * 160))
        data, src, _ = relay.recv(relay.a)
        assert data == rtp(100 + seq, b"B" * 160)
        assert src == (relay.relay("a"), PORT_X)
    assert (relay.x.packets, relay.x.bytes) == (5, 5 * 172)
    assert (relay.y.packets, relay.y.bytes) == (3, 3 * 172)
    assert relay.x.ssrc == relay.y.ssrc == 0xCAFEF00D
    assert relay.x.confirmed and relay.x.peer == (topo.host_address("a"), HOST_PORT)


def test_third_host_injecting_after_latching_is_dropped_and_counted(relay: Relay) -> None:
    relay.to_x(relay.a, rtp(1))
    relay.recv(relay.b)
    for seq in range(3):
        relay.to_x(relay.c, rtp(900 + seq, b"evil" * 40))
    relay.to_x(relay.a, rtp(2))
    data, _, _ = relay.recv(relay.b)
    assert data == rtp(2)  # the three injected packets were sent first and never arrived
    assert (relay.x.dropped, relay.x.errors, relay.x.packets) == (3, 3, 2)
    relay.to_y(relay.b, rtp(3))
    assert relay.recv(relay.a)[0] == rtp(3)  # replies still go to A, not to the injector


def test_latching_follows_a_natted_source_before_confirmation(relay: Relay) -> None:
    relay.x.peer = relay.x.sdp_peer = ("10.99.1.77", 9)  # the SDP lied (NAT)
    relay.to_x(relay.a, rtp(1))
    relay.recv(relay.b)
    relay.to_y(relay.b, rtp(2))
    assert relay.recv(relay.a)[0] == rtp(2)
    assert relay.x.peer == (relay.topo.host_address("a"), HOST_PORT)


def test_tos_set_on_relay_socket_marks_forwarded_packets(topo: Topology) -> None:
    r = Relay(topo, tos=184)
    try:
        r.to_x(r.a, rtp(1))
        data, _, tos = r.recv(r.b)
        assert (data, tos) == (rtp(1), 184)
        r.to_y(r.b, rtp(2))
        data, _, tos = r.recv(r.a)
        assert (data, tos) == (rtp(2), 0)  # only the socket given a TOS marks its packets
    finally:
        r.close()


def test_ipv6_relay_forwards_and_drops_injection(topo: Topology) -> None:
    r = Relay(topo, tos=184, v6=True)
    try:
        r.to_x(r.a, rtp(1))
        data, src, tclass = r.recv(r.b)
        assert (data, src, tclass) == (rtp(1), (r.relay("b"), PORT_Y), 184)
        r.to_x(r.c, rtp(2))
        r.to_x(r.a, rtp(3))
        assert r.recv(r.b)[0] == rtp(3)
        r.to_y(r.b, rtp(4))
        assert r.recv(r.a)[:2] == (rtp(4), (r.relay("a"), PORT_X))
        assert (r.x.confirmed, r.x.peer, r.x.dropped) == (True, (r.host("a"), HOST_PORT), 1)
    finally:
        r.close()
