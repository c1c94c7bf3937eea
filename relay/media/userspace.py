"""Userspace forwarding plane: one event-loop reader per media socket (ARCHITECTURE rule 2).

Per readable socket, the reader reads with `recvfrom_into` into a preallocated buffer. It does
not always drain until EAGAIN: on this machine a `recvfrom` that ends in EAGAIN costs ~1.9 µs
(syscall + exception) against ~6.1 µs for a whole recvfrom+sendto, and at normal rates a socket
holds one packet per wakeup. So each reader adapts how many packets it reads per wakeup:
starting at 1, doubling (up to `BATCH`) after `GROW_AFTER` wakeups in a row that used their
whole allowance, halving when a read hits EAGAIN. A socket that holds one packet per wakeup thus
pays one EAGAIN per `GROW_AFTER` + 1 packets instead of every other packet.
epoll is level triggered, so packets left in the socket are read on the next loop iteration,
and one busy socket cannot starve the others. Per packet:

0. `tap(stream, packet_bytes, source, wall_time)` first, if the stream has one (recording,
   HEP): every packet received, even one latching then drops, as rtpengine records; an
   exception from it is counted in `stream.tap_errors`, and the packet is still forwarded;
1. latching: the fast path (stream confirmed and the source is its peer) is one comparison,
   inline; anything else goes through `relay.media.latch.decide`/`apply`, which may drop the
   packet (then `dropped` and `errors` + 1, nothing else is counted);
2. counters on the receiving stream: `packets`, `bytes` (UDP payload), `last_packet` (wall
   clock, seconds), `ssrc` (RTP streams: bytes 8..12 of an RTP v2 packet);
3. `sink.sock.sendto(packet, sink.peer)` (the stream's `rtcp_sink` instead for RTCP arriving
   muxed when the other party does not mux: one attribute test, docs/spec/sdp.md §4.1) unless
   the stream has no sink, the sink has no peer or the sink is `send_blocked`. The packet
   leaves byte-for-byte unchanged; only the addresses change (it leaves from the sink's local
   port). A failed send counts `sink.send_errors`.

A stream with a secure transport (SRTP, DTLS, ICE), or whose sink has one, or on a side that
generates RTCP (relay.media.reports), whose packets are transcoded (relay.media.transcoder), or
with a media-command gate (relay.media.gate), is read by the secure reader instead
(relay.media.secure.reader, chosen in `add`/`update`); the reader below is for plain pairs only
and has no per-packet check for it.

Nothing is logged or raised per packet. Addresses are compared as (host, port) tuples exactly as
`recvfrom` returns them, so the call model must store `peer`/`sdp_peer` in that form (IPv6: the
compressed form `socket.inet_ntop` gives, without flowinfo/scope).

Clocks: `learn_until` (set by the call model) is compared with the plane's `clock`
(time.monotonic by default); `last_packet` comes from `wallclock` (time.time, as rtpengine's
`last packet` is Unix seconds).

Cost (bench/relay_micro.py: 50 kpps of 172-byte RTP spread evenly over 100 calls, relay pinned
to its own CPU, CPU of the relay + that CPU's ksoftirqd, medians of 5-7 interleaved runs on a
shared 2-core machine where single runs vary by ±3-5 µs). Over several sessions: rtpengine 10.5
userspace 9.4-14.4 µs/packet; UserspacePlane on uvloop 11.0-17.4 µs with coalesce=0 and
10.6-12.4 µs with coalesce=1 ms; the whole `rtpvault run` daemon 14.6 µs. A bare epoll_wait
loop instead of uvloop saved nothing. In a tight loop with no event loop at all,
recvfrom_into+sendto alone cost 6.1 µs/packet on loopback and the plane's per-packet Python
(latch fast path, counters, SSRC) adds 0.4 µs; the rest is wakeups. So this plane costs about
0.9-1.3× rtpengine's userspace path, not 0.6×: that target is at or below what per-packet
syscalls allow here, and is for the in-kernel plane.

Wiring (for relay.call.streams / rtpvault.daemon)::

    plane = UserspacePlane(loop)             # the daemon's loop (uvloop when installed)
    set_tos(sock, settings.tos)              # every media socket, if `tos` is configured
    a.sink, b.sink = b, a                    # a faces party A, b faces party B
    plane.add(a); plane.add(b)
    ...                                      # learn_until / flags / peer set on the Streams
    plane.remove(a); plane.remove(b); a.sock.close(); b.sock.close()
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Callable

from relay.media.latch import apply, decide
from relay.media.secure.reader import secure_reader
from relay.media.stream import Stream
from rtp.demux import looks_like_rtcp
from rtp.header import SSRC_OFFSET, read_u32

BATCH = 64
"""Most packets one reader call reads before yielding to the loop."""
GROW_AFTER = 4
"""Wakeups that each read their whole allowance before the allowance doubles."""
BUFFER_SIZE = 8192
"""Most bytes of a datagram read, the rest cut off by the kernel, as rtpengine 10.5 reads media
(its MAX_RTP_PACKET_SIZE; docs/spec/transcode-media.md §1)."""


def _needs_secure(stream: Stream) -> bool:
    """Whether `stream`'s packets need the secure (full) reader: its own leg or its sink's is
    SRTP/ICE, either side generates RTCP (relay.media.reports), its party's packets are
    transcoded (relay.media.transcoder), or a media command gates them (relay.media.gate)."""
    sink, rtcp_sink = stream.sink, stream.rtcp_sink
    return (
        stream.transport is not None
        or stream.gate is not None
        or stream.reports is not None
        or stream.transcoder is not None
        or (sink is not None and (sink.transport is not None or sink.reports is not None))
        or (rtcp_sink is not None and rtcp_sink.transport is not None)
    )


def set_tos(sock: socket.socket, tos: int) -> None:
    """Set the DSCP/ECN byte of outgoing packets: IP_TOS (IPv4) or IPV6_TCLASS (IPv6).

    rtpengine's `tos` setting; applied to every media socket. An IPv6 socket that may also send
    IPv4 (dual stack) gets IP_TOS too, where the kernel allows it.
    """
    if not 0 <= tos <= 255:
        raise ValueError(f"tos must be 0..255, got {tos}")
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
        except OSError:
            pass  # IPv6-only socket: IP_TOS does not apply
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)


class UserspacePlane:
    """Forwards packets between linked `Stream`s with reader callbacks on `loop`.

    With `coalesce` = 0 every media socket is its own `loop.add_reader`. With `coalesce` > 0
    (seconds) the sockets sit in one private epoll set whose fd is the loop's reader: a wakeup
    serves every ready socket, then the plane polls that set once per `coalesce` interval while
    packets keep coming and goes back to waiting on the loop when a poll finds nothing. That
    trades up to `coalesce` of extra forwarding delay for one loop wakeup per interval instead
    of one per packet.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        coalesce: float = 0.0,
    ) -> None:
        self._loop = loop
        self._clock = clock
        self._wallclock = wallclock
        self._fds: dict[Stream, int] = {}
        self._secure: set[Stream] = set()
        """Streams read by the secure reader (relay.media.secure.reader)."""
        self._coalesce = coalesce
        self._readers: dict[int, Callable[[], None]] = {}
        self._epoll: select.epoll | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._buf = bytearray(BUFFER_SIZE)
        self._view = memoryview(self._buf)
        if coalesce > 0:
            self._epoll = select.epoll()
            loop.add_reader(self._epoll.fileno(), self._on_ready)

    def __contains__(self, stream: Stream) -> bool:
        """Whether `stream` is registered. (No __len__: an empty plane must stay truthy.)"""
        return stream in self._fds

    def add(self, stream: Stream) -> None:
        """Start reading `stream.sock`; adding a stream twice is a no-op."""
        if stream in self._fds:
            return
        if stream.sock.gettimeout() != 0.0:  # relay.ports.bind_udp's are already: no ioctl
            stream.sock.setblocking(False)
        fd = stream.sock.fileno()
        reader = self._choose(stream)
        if self._epoll is not None:
            self._readers[fd] = reader
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self._loop.add_reader(fd, reader)
        self._fds[stream] = fd

    def update(self, stream: Stream) -> None:
        """Re-choose the reader of `stream` and of its sink when a secure transport came or
        went (relay.media.secure); anything else the readers read from the `Stream` per packet.
        (A stream whose sink is `stream` but that is not `stream.sink` is not looked at.)"""
        for s in (stream, stream.sink):
            fd = self._fds.get(s) if s is not None else None
            if s is None or fd is None:
                continue
            if _needs_secure(s) == (s in self._secure):
                if s.transport is not None:
                    s.transport.bind(self._loop)  # a new peer may let a DTLS client start
                if s.reports is not None:
                    s.reports.bind(self._loop, self._wallclock)
                continue
            reader = self._choose(s)
            if self._epoll is not None:
                self._readers[fd] = reader
            else:
                self._loop.remove_reader(fd)
                self._loop.add_reader(fd, reader)

    def _choose(self, stream: Stream) -> Callable[[], None]:
        """The plain reader, or the secure one when the stream or its sink has a transport;
        a stream with a transport runs its ICE/DTLS timers on this plane's loop."""
        if stream.transport is not None:
            stream.transport.bind(self._loop)
        if stream.reports is not None:
            stream.reports.bind(self._loop, self._wallclock)  # its timer starts once
        if not _needs_secure(stream):
            self._secure.discard(stream)
            return self._reader(stream)
        self._secure.add(stream)
        return secure_reader(stream, self._loop, self._clock, self._wallclock)

    def remove(self, stream: Stream) -> None:
        """Stop reading `stream.sock` (before it is closed); unknown streams are ignored."""
        fd = self._fds.pop(stream, None)
        if fd is None:
            return
        self._secure.discard(stream)
        if stream.transport is not None:
            stream.transport.unbind()
        reports = stream.reports
        if reports is not None and reports.rtp is stream:
            reports.unbind()
        if self._epoll is not None:
            del self._readers[fd]
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass  # already closed by the caller: the kernel dropped it from the set
        else:
            self._loop.remove_reader(fd)

    def close(self) -> None:
        """Remove every stream; the sockets stay open."""
        for stream in list(self._fds):
            self.remove(stream)
        if self._epoll is not None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            else:
                self._loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None

    def _on_ready(self) -> None:
        """The private epoll set is readable: serve it now, then again after `coalesce`."""
        assert self._epoll is not None
        self._loop.remove_reader(self._epoll.fileno())
        self._poll()

    def _poll(self) -> None:
        """Serve every ready socket; keep polling per interval while any was ready."""
        epoll = self._epoll
        if epoll is None:
            return
        self._timer = None
        events = epoll.poll(0)
        if not events:
            self._loop.add_reader(epoll.fileno(), self._on_ready)
            return
        self._timer = self._loop.call_later(self._coalesce, self._poll)  # first: never stall
        readers = self._readers
        for fd, _ in events:
            reader = readers.get(fd)
            if reader is not None:
                reader()

    def _reader(self, stream: Stream) -> Callable[[], None]:
        """The per-socket callback; everything it touches per packet is bound to a local."""
        # One receive buffer for the whole plane: every reader runs on the loop thread and is
        # done with the packet (tap copied it, sendto sent it) before the next recvfrom_into,
        # so sharing is safe — and a 64 KiB buffer per socket was 256 KiB of RSS per call.
        buf = self._buf
        view = self._view
        recv_into = stream.sock.recvfrom_into
        clock = self._clock
        wallclock = self._wallclock
        ssrc_of = read_u32
        ssrc_at = SSRC_OFFSET
        looks_rtcp_ = looks_like_rtcp  # called only before latching: the fast path never is
        decide_ = decide
        apply_ = apply
        v6 = stream.family == socket.AF_INET6
        most = BATCH
        limit = 1
        full = 0
        s = stream

        def on_readable() -> None:
            nonlocal limit, full
            for _ in range(limit):
                try:
                    n, src = recv_into(buf)
                except BlockingIOError:
                    full = 0
                    if limit > 1:
                        limit >>= 1
                    return
                except OSError:
                    s.errors += 1
                    return
                if v6:
                    src = src[:2]
                now = wallclock()
                if s.tap is not None:
                    # Before the latching decision, as rtpengine records: packets that
                    # strict-source or drop-after-latch discard are in the recording too.
                    try:
                        s.tap(s, bytes(view[:n]), src, now)
                    except Exception:  # a recorder bug must not stop the media
                        s.tap_errors += 1
                if not (s.confirmed and src == s.peer):
                    if not apply_(s, decide_(s, src, clock(), looks_rtcp_(buf, n))):
                        continue
                s.packets += 1
                s.bytes += n
                s.last_packet = now
                if n >= 12 and not s.is_rtcp and buf[0] & 0xC0 == 0x80:
                    s.ssrc = ssrc_of(buf, ssrc_at)[0]
                sink = s.sink
                if s.rtcp_sink is not None and n >= 12 and 194 <= buf[1] <= 223:
                    sink = s.rtcp_sink  # muxed RTCP towards a party that does not mux
                if sink is None or sink.peer is None or sink.send_blocked:
                    continue
                try:
                    sink.sock.sendto(view[:n], sink.peer)
                except OSError:
                    sink.send_errors += 1
            full += 1
            if full >= GROW_AFTER and limit < most:
                limit <<= 1
                full = 0

        return on_readable
