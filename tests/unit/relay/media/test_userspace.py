"""relay.media.userspace with real loopback sockets: two linked streams between parties A and B."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Iterator

import pytest

from relay.media.plane import ForwardingPlane
from relay.media.stream import LEARN_IMMEDIATE, Address, Stream
from relay.media.userspace import UserspacePlane, set_tos
from tests.support.tools import unavailable

LOOPS: list[tuple[str, Callable[[], asyncio.AbstractEventLoop]]] = [
    ("asyncio", asyncio.new_event_loop)
]
try:
    import uvloop

    LOOPS.append(("uvloop", uvloop.new_event_loop))
except ImportError:  # pragma: no cover - uvloop is the optional "fast" extra
    pass

WALL = 1_795_581_206.5


def rtp(seq: int, ts: int = 160_000, ssrc: int = 0x11223344, payload: bytes = b"") -> bytes:
    body = payload or bytes(range(160))
    return struct.pack("!BBHII", 0x80, 0, seq, ts, ssrc) + body


class Rig:
    """Relay streams x (facing A) and y (facing B), party sockets a, b and an injector c."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        family: int = socket.AF_INET,
        coalesce: float = 0.0,
    ) -> None:
        self.loop = loop
        self.host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        self.socks: list[socket.socket] = []
        self.a, self.b, self.c = (self._sock(family) for _ in range(3))
        self.x = self._stream(family)
        self.y = self._stream(family)
        self.x.sink, self.y.sink = self.y, self.x
        self.x.peer = self.x.sdp_peer = self.addr(self.a)
        self.y.peer = self.y.sdp_peer = self.addr(self.b)
        self.now = 200.0
        self.plane = UserspacePlane(
            loop, clock=lambda: self.now, wallclock=lambda: WALL, coalesce=coalesce
        )
        self.plane.add(self.x)
        self.plane.add(self.y)

    def _sock(self, family: int) -> socket.socket:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((self.host, 0))
        s.setblocking(False)
        self.socks.append(s)
        return s

    def _stream(self, family: int) -> Stream:
        sock = self._sock(family)
        st = Stream(sock, self.host, sock.getsockname()[1], family)
        st.filled = True
        st.learn_until = 100.0  # the window is over: the first packet confirms
        return st

    def addr(self, sock: socket.socket) -> Address:
        host, port = sock.getsockname()[:2]
        return (host, port)

    def recv(self, sock: socket.socket) -> tuple[bytes, Address]:
        """The next datagram on a party socket, running the relay's loop until it arrives."""
        fut: asyncio.Future[tuple[bytes, Address]] = self.loop.create_future()

        def ready() -> None:
            try:
                data, addr = sock.recvfrom(65536)
            except BlockingIOError:
                return
            self.loop.remove_reader(sock.fileno())
            fut.set_result((data, (addr[0], addr[1])))

        self.loop.add_reader(sock.fileno(), ready)
        return self.loop.run_until_complete(asyncio.wait_for(fut, 5))

    def until(self, done: Callable[[], bool]) -> None:
        """Run the loop until `done()`; the 5 s bound only guards against a hang."""

        async def wait() -> None:
            while not done():
                await asyncio.sleep(0.001)

        self.loop.run_until_complete(asyncio.wait_for(wait(), 5))

    def close(self) -> None:
        self.plane.close()
        for s in self.socks:
            s.close()
        self.loop.close()


@pytest.fixture(
    params=[(name, c) for name, _ in LOOPS for c in (0.0, 0.001)],
    ids=lambda p: f"{p[0]}-{'coalesce' if p[1] else 'per-socket'}",
)
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    loop_name, coalesce = request.param
    r = Rig(dict(LOOPS)[loop_name](), coalesce=coalesce)
    yield r
    r.close()


def test_plane_satisfies_the_protocol(rig: Rig) -> None:
    plane: ForwardingPlane = rig.plane
    assert rig.x in rig.plane and rig.y in rig.plane
    assert rig.plane  # an empty plane must not be falsy (callers write `plane or default`)
    plane.update(rig.x)


def test_packets_both_ways_unchanged_with_relay_source_ports(rig: Rig) -> None:
    to_b = rtp(7, 1234, 0xDEADBEEF, b"payload-A" * 10)
    rig.a.sendto(to_b, rig.addr(rig.x.sock))
    data, src = rig.recv(rig.b)
    assert data == to_b
    assert src == rig.addr(rig.y.sock)

    to_a = rtp(9, 5678, 0x01020304)
    rig.b.sendto(to_a, rig.addr(rig.y.sock))
    data, src = rig.recv(rig.a)
    assert data == to_a
    assert src == rig.addr(rig.x.sock)

    assert (rig.x.packets, rig.x.bytes, rig.x.ssrc) == (1, len(to_b), 0xDEADBEEF)
    assert (rig.y.packets, rig.y.bytes, rig.y.ssrc) == (1, len(to_a), 0x01020304)
    assert rig.x.last_packet == WALL and rig.y.last_packet == WALL
    assert rig.x.confirmed and rig.y.confirmed
    assert rig.x.errors == rig.y.errors == rig.x.send_errors == 0


def test_latching_moves_replies_to_the_real_source(rig: Rig) -> None:
    rig.x.peer = rig.x.sdp_peer = ("127.0.0.1", 9)  # what the SDP claimed; A is behind NAT
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.recv(rig.b)
    assert (rig.x.peer, rig.x.confirmed) == (rig.addr(rig.a), True)
    rig.b.sendto(rtp(2), rig.addr(rig.y.sock))
    assert rig.recv(rig.a)[0] == rtp(2)


def test_after_latching_other_sources_are_dropped_and_counted(rig: Rig) -> None:
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.recv(rig.b)
    rig.c.sendto(rtp(666, payload=b"injected"), rig.addr(rig.x.sock))
    rig.a.sendto(rtp(2), rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == rtp(2)  # the injected packet, sent first, never arrived
    assert (rig.x.dropped, rig.x.errors, rig.x.packets) == (1, 1, 2)
    assert rig.x.peer == rig.addr(rig.a)


def test_rtpengine_compat_relays_other_sources_without_retargeting(rig: Rig) -> None:
    rig.x.drop_foreign = False
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.recv(rig.b)
    rig.c.sendto(rtp(3), rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == rtp(3)
    assert (rig.x.peer, rig.x.dropped) == (rig.addr(rig.a), 0)


def test_strict_source_drops_even_in_compat_mode(rig: Rig) -> None:
    rig.x.drop_foreign = False
    rig.x.strict_source = True
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.recv(rig.b)
    rig.c.sendto(rtp(3), rig.addr(rig.x.sock))
    rig.a.sendto(rtp(4), rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == rtp(4)
    assert rig.x.errors == 1


def test_asymmetric_accepts_any_source_and_replies_to_the_sdp_endpoint(rig: Rig) -> None:
    rig.x.asymmetric = True
    rig.c.sendto(rtp(1), rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == rtp(1)
    rig.a.sendto(rtp(2), rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == rtp(2)
    rig.b.sendto(rtp(3), rig.addr(rig.y.sock))
    assert rig.recv(rig.a)[0] == rtp(3)
    assert (rig.x.peer, rig.x.dropped) == (rig.addr(rig.a), 0)


def test_media_handover_follows_the_new_source(rig: Rig) -> None:
    rig.x.media_handover = True
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.recv(rig.b)
    rig.c.sendto(rtp(2), rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == rtp(2)
    rig.b.sendto(rtp(3), rig.addr(rig.y.sock))
    assert rig.recv(rig.c)[0] == rtp(3)


def test_send_blocked_sink_gets_nothing_but_packets_are_counted(rig: Rig) -> None:
    rig.y.send_blocked = True
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.b.sendto(rtp(50), rig.addr(rig.y.sock))
    assert rig.recv(rig.a)[0] == rtp(50)  # the loop has run past A's packet
    assert rig.x.packets == 1
    rig.y.send_blocked = False
    rig.a.sendto(rtp(2), rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == rtp(2)  # rtp(1) was never sent


def test_sink_without_peer_or_stream_without_sink_forwards_nothing(rig: Rig) -> None:
    rig.y.peer = None
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.x.sink = None
    rig.b.sendto(rtp(2), rig.addr(rig.y.sock))
    rig.b.sendto(rtp(3), rig.addr(rig.y.sock))
    assert rig.recv(rig.a)[0] == rtp(2)
    assert rig.recv(rig.a)[0] == rtp(3)
    assert rig.x.packets == 1


def test_send_errors_are_counted_not_raised(rig: Rig) -> None:
    rig.y.peer = ("255.255.255.255", 9)  # no SO_BROADCAST: sendto fails with EACCES
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.b.sendto(rtp(2), rig.addr(rig.y.sock))
    rig.recv(rig.a)
    assert (rig.x.packets, rig.y.send_errors) == (1, 1)


def test_tap_sees_every_received_packet_even_dropped_ones(rig: Rig) -> None:
    """rtpengine records before forwarding (docs/spec/recording.md §4.2): an injected packet
    that latching drops is still in the recording, and still not forwarded."""
    seen: list[tuple[Stream, bytes, Address, float]] = []
    rig.x.tap = lambda st, data, src, t: seen.append((st, data, src, t))
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.recv(rig.b)
    rig.c.sendto(rtp(2), rig.addr(rig.x.sock))
    rig.a.sendto(rtp(3), rig.addr(rig.x.sock))
    rig.recv(rig.b)
    assert seen == [
        (rig.x, rtp(1), rig.addr(rig.a), WALL),
        (rig.x, rtp(2), rig.addr(rig.c), WALL),
        (rig.x, rtp(3), rig.addr(rig.a), WALL),
    ]
    assert (rig.x.packets, rig.x.dropped) == (2, 1)


def test_a_failing_tap_is_counted_and_the_packet_still_forwarded(rig: Rig) -> None:
    def broken(st: Stream, data: bytes, src: Address, t: float) -> None:
        raise RuntimeError("recorder bug")

    rig.x.tap = broken
    for seq in (1, 2):
        rig.a.sendto(rtp(seq), rig.addr(rig.x.sock))
        assert rig.recv(rig.b)[0] == rtp(seq)
    assert (rig.x.tap_errors, rig.x.packets, rig.x.errors) == (2, 2, 0)


def test_rtcp_stream_does_not_take_an_ssrc_from_bytes_8_to_12(rig: Rig) -> None:
    rig.x.is_rtcp = True
    rig.x.learning = LEARN_IMMEDIATE
    report = bytes([0x80, 201, 0, 1]) + b"\x01\x02\x03\x04"
    rig.a.sendto(report + bytes(8), rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == report + bytes(8)
    assert rig.x.ssrc is None


def test_stray_rtcp_before_latching_is_forwarded_but_not_learned_from(rig: Rig) -> None:
    # rtp.demux.looks_like_rtcp on the plane's learning path: second byte 194..223, 12+ bytes
    rig.x.peer = rig.x.sdp_peer = ("127.0.0.1", 9)
    report = bytes([0x81, 201, 0, 7]) + bytes(28)
    rig.a.sendto(report, rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == report
    assert (rig.x.peer, rig.x.confirmed) == (("127.0.0.1", 9), False)
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == rtp(1)
    assert (rig.x.peer, rig.x.confirmed) == (rig.addr(rig.a), True)


def test_burst_arrives_complete_and_in_order(rig: Rig) -> None:
    count = 100  # fits the default receive buffers: a kernel drop is not the plane's fault
    for seq in range(count):
        rig.a.sendto(rtp(seq), rig.addr(rig.x.sock))
    got = [struct.unpack_from("!H", rig.recv(rig.b)[0], 2)[0] for _ in range(count)]
    assert got == list(range(count))
    assert rig.x.packets == count


def test_remove_and_close_stop_reading(rig: Rig) -> None:
    rig.plane.remove(rig.x)
    rig.plane.remove(rig.x)  # twice is harmless
    assert rig.x not in rig.plane and rig.y in rig.plane
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.b.sendto(rtp(2), rig.addr(rig.y.sock))
    assert rig.recv(rig.a)[0] == rtp(2)
    assert rig.x.packets == 0
    rig.plane.close()
    assert rig.y not in rig.plane and rig.plane
    rig.plane.add(rig.x)  # added again: the queued packet is read now
    assert rig.recv(rig.b)[0] == rtp(1)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_ipv6_streams_latch_and_forward() -> None:
    if not _has_ipv6_loopback():
        unavailable("no IPv6 loopback (CI=true fails here)")
    r = Rig(asyncio.new_event_loop(), socket.AF_INET6)
    try:
        r.a.sendto(rtp(1), r.addr(r.x.sock))
        data, src = r.recv(r.b)
        assert (data, src) == (rtp(1), r.addr(r.y.sock))
        r.c.sendto(rtp(2), r.addr(r.x.sock))
        r.a.sendto(rtp(3), r.addr(r.x.sock))
        assert r.recv(r.b)[0] == rtp(3)
        assert (r.x.confirmed, r.x.peer, r.x.dropped) == (True, r.addr(r.a), 1)
    finally:
        r.close()


def test_removing_a_stream_whose_socket_is_already_closed(rig: Rig) -> None:
    rig.plane.remove(rig.y)
    rig.y.sock.close()
    rig.plane.remove(rig.y)
    rig.a.sendto(rtp(1), rig.addr(rig.x.sock))
    rig.until(lambda: rig.x.packets == 1)
    assert rig.y.send_errors == 1  # the sink's socket is gone: counted, not raised


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_set_tos(family: int) -> None:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        set_tos(s, 184)
        if family == socket.AF_INET:
            assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 184
        else:
            assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS) == 184
        with pytest.raises(ValueError, match="tos must be 0..255, got 256"):
            set_tos(s, 256)


class _CountingSocket(socket.socket):
    """A real socket that counts setblocking calls (each one an ioctl)."""

    calls = 0

    def setblocking(self, flag: bool) -> None:
        type(self).calls += 1
        super().setblocking(flag)


def test_add_makes_a_blocking_socket_non_blocking_and_leaves_a_non_blocking_one_alone() -> None:
    """relay.ports.bind_udp creates its sockets non-blocking: add() need not ask again (four
    ioctl calls a call, issue 18)."""
    loop = asyncio.new_event_loop()
    plane = UserspacePlane(loop, clock=lambda: 0.0, wallclock=lambda: WALL)
    socks = [_CountingSocket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK),
             _CountingSocket(socket.AF_INET, socket.SOCK_DGRAM)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
            plane.add(Stream(s, "127.0.0.1", s.getsockname()[1]))
        assert _CountingSocket.calls == 1
        assert all(s.gettimeout() == 0.0 for s in socks)
    finally:
        for s in socks:
            s.close()
        loop.close()
