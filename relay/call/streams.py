"""Ports and streams of the call model: the port pools per local address, the forwarding plane
and the deferred start of new streams (relay.media.plane's interface).

The only part of relay.call that opens or closes sockets (through the pools' injected opener).
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from relay.call.model import IceAddress, MediaSide, Party, plus_one
from relay.call.options import CallOptions
from relay.media.plane import ForwardingPlane
from relay.media.secure import detach
from relay.media.stream import Stream
from relay.ports import Opener, PortPinned, PortPool, PortsExhausted

logger = logging.getLogger("relay.calls")  # its log lines keep the name (docs/operations.md)

Defer = Callable[[Callable[[], None]], None]
"""Runs work that no reply depends on: at once, or (the daemon) right after the reply."""


class LocalInterface(Protocol):
    """What the call model reads of a local media address (relay.interfaces.Interface)."""

    @property
    def name(self) -> str: ...
    @property
    def local(self) -> str: ...
    @property
    def advertised(self) -> str: ...
    @property
    def family(self) -> str: ...


class NullPlane:
    """A forwarding plane that forwards nothing (tests, benchmarks of the control plane)."""

    def __contains__(self, stream: Stream) -> bool:
        return False

    def add(self, stream: Stream) -> None:
        pass

    def update(self, stream: Stream) -> None:
        pass

    def remove(self, stream: Stream) -> None:
        pass

    def close(self) -> None:
        pass


def now(work: Callable[[], None]) -> None:
    work()


def drop_transcoder(side: MediaSide) -> None:
    """The side's ports go (call end, a rejected line, a destroyed party): its chain stops
    counting as a running transcoder (relay.call.transcode_media attaches them)."""
    if side.transcoder is not None:
        side.transcoder.close()
        side.transcoder = None


def pick_interface(
    interfaces: Sequence[LocalInterface], options: CallOptions, towards_receiver: bool,
    family: str,
) -> LocalInterface:
    """The interface named by `direction` (receiver's or sender's), of the wanted family if it
    has one; without a usable `direction`, the first interface's name."""
    direction = options.direction
    want = direction[1 if towards_receiver else 0] if len(direction) == 2 else None
    candidates = [i for i in interfaces if want is None or i.name.split(":")[0] == want]
    if not candidates:
        candidates = [i for i in interfaces if i.name == interfaces[0].name]
    for itf in candidates:
        if itf.family == family:
            return itf
    return candidates[0]


def carry(prev: Stream, new: Stream) -> None:
    """What a stream learned (peers, sink, source flags, owner) survives its re-allocation."""
    new.peer, new.sdp_peer, new.sink = prev.peer, prev.sdp_peer, prev.sink
    new.strict_source, new.media_handover = prev.strict_source, prev.media_handover
    new.asymmetric = prev.asymmetric
    new.tag, new.call_id, new.notes = prev.tag, prev.call_id, prev.notes


class StreamAllocator:
    """Allocates, releases and closes the streams of media sides."""

    def __init__(
        self,
        interfaces: Sequence[LocalInterface],
        port_min: int,
        port_max: int,
        plane: ForwardingPlane | None,
        opener: Opener,
        rng: random.Random | None,
        tos: int | None = None,
        set_tos: Callable[[socket.socket, int], None] | None = None,
    ) -> None:
        # `is None`, not `or`: an empty plane (len 0) is falsy.
        self.plane: ForwardingPlane = plane if plane is not None else NullPlane()
        self.tos = tos
        self._set_tos = set_tos
        self.pools: dict[str, PortPool] = {}
        for itf in interfaces:
            if itf.local not in self.pools:
                fam = socket.AF_INET6 if itf.family == "IP6" else socket.AF_INET
                self.pools[itf.local] = PortPool(itf.local, fam, port_min, port_max, opener, rng)
        self.interfaces = list(interfaces)
        self.defer: Defer = now
        self._starting: list[Stream] = []
        self.taken: list[tuple[str, int]] | None = None
        """(local address, first port) of every allocation, in order, since the journal last
        took the list (relay.state.journal sets it and drains it after each request); None:
        nothing is recorded (no journal)."""
        self.pinned: list[tuple[str, int]] | None = None
        """While relay.state.replay replays a request: the ports it took the first time, in
        order; each allocation binds the next one exactly (PortPinned otherwise)."""

    def _take(self, pool: PortPool, width: int, prefer: int) -> tuple[list[socket.socket], int]:
        """`width` ports from `pool` (prefer: see PortPool.allocate_pair), or the next pinned
        one during a replay; recorded in `taken`."""
        pinned = self.pinned
        if pinned is not None:
            if not pinned:
                raise PortPinned(f"more ports asked than recorded, on {pool.address}")
            address, port = pinned.pop(0)
            if address != pool.address:
                raise PortPinned(f"port {port} recorded on {address}, asked on {pool.address}")
            socks = pool.allocate_exact(port, width)
        elif width == 1:
            sock, port = pool.allocate_one(prefer)
            socks = [sock]
        else:
            rtp_sock, rtcp_sock, port = pool.allocate_pair(prefer)
            socks = [rtp_sock, rtcp_sock]
        if self.taken is not None:
            self.taken.append((pool.address, port))
        return socks, port

    def allocate(self, side: MediaSide, itf: LocalInterface, single: bool = False) -> None:
        """New ports for `side` on `itf` (one RTP port only if `single`); what the old streams
        learned is carried over, and the old sockets are closed (raises PortsExhausted)."""
        old = side.streams()
        self.drop_ice_addresses(side)  # new own ports: the other addresses get new ones too
        pool = self.pools[itf.local]
        fam = pool.family
        # An m= line rejected earlier gets its old port numbers back (rtpengine 10.5 keeps
        # them: a re-offer shows the same port again).
        prefer, side.released_port = side.released_port, 0
        try:
            socks, port = self._take(pool, 1 if single else 2, prefer)
        except PortsExhausted as exc:
            # rtpengine's three lines (docs/spec/sdp.md §3), naming the interface and the real cause
            logger.error("%s", exc)
            logger.error("Failed to get %d consecutive ports on all locals of logical '%s'",
                         exc.width, itf.name)  # fmt: skip
            logger.error("Error allocating media ports")
            raise
        rtp_sock = socks[0]
        if single:
            # rtpengine assigns the one new port to the RTP stream only: an RTCP stream that
            # had a port keeps it (query shows it as the fallback RTCP)
            kept = old[1] if len(old) == 2 and old[1].local_port else None
            side.rtp, side.rtcp = Stream(rtp_sock, itf.local, port, fam), kept
        else:
            side.rtp = Stream(rtp_sock, itf.local, port, fam)
            side.rtcp = Stream(socks[1], itf.local, port + 1, fam, is_rtcp=True)
        side.rtcp_fallback = single
        side.pool = pool
        side.advertised = itf.advertised
        side.family = itf.family
        for new, prev in zip((side.rtp, side.rtcp), old, strict=False):
            if new is not None:
                carry(prev, new)
        if len(old) == 1 and side.rtcp is not None:
            # the single-port side's fallback RTCP stream had the RTP peer one port up
            carry(old[0], side.rtcp)
            side.rtcp.peer, side.rtcp.sdp_peer = plus_one(old[0].peer), plus_one(old[0].sdp_peer)
        for stream in side.streams():
            if any(stream is o for o in old):
                continue  # a kept RTCP stream is running already
            self._start(stream)
        for stream in old:
            if stream is not side.rtcp:
                self.close(stream, pool if stream.local_address == pool.address else None)

    def _start(self, stream: Stream) -> None:
        if self.tos is not None and self._set_tos is not None:
            self._set_tos(stream.sock, self.tos)
        # Bound now (the port goes into the reply); read from after the reply. Nothing is
        # lost: packets wait in the socket, and the deferred work runs before the loop reads
        # anything else.
        self._starting.append(stream)
        if len(self._starting) == 1:  # the first this request: one deferred start for all
            self.defer(self._start_streams)

    def list_ice_addresses(self, side: MediaSide) -> tuple[IceAddress, ...]:
        """Every address of the logical interface `side`'s own ports are on, those of the
        side's family first, each family in interface order, for our ICE candidates towards
        its party (docs/spec/sdp.md §1.9a): the other addresses get ports of their own (as many
        as the side has), the same numbers as the side's where free, else the address's own
        scan. Kept while the side keeps its ports; an address without free ports is left out
        (logged)."""
        if side.ice_addresses:
            return side.ice_addresses
        rtp, pool = side.rtp, side.pool
        chosen = None if pool is None else next(
            (i for i in self.interfaces if i.local == pool.address), None)  # fmt: skip
        if rtp is None or not rtp.local_port or chosen is None:
            return ()
        single = side.rtcp is None or not side.rtcp.local_port
        out: list[IceAddress] = []
        seen: set[str] = set()
        logical = [i for i in self.interfaces if i.name == chosen.name]
        # the chosen address's family first, then the other (rtpengine's list per family)
        logical.sort(key=lambda i: i.family != chosen.family)
        for itf in logical:
            if itf.local in seen:
                continue
            seen.add(itf.local)
            if itf.local == chosen.local:
                out.append(IceAddress(len(out), itf.advertised))
                continue
            address = self._ice_address(len(out), itf, rtp, single)
            if address is not None:
                out.append(address)
        side.ice_addresses = tuple(out)
        return side.ice_addresses

    def _ice_address(
        self, index: int, itf: LocalInterface, own: Stream, single: bool
    ) -> IceAddress | None:
        pool = self.pools[itf.local]
        try:
            socks, port = self._take(pool, 1 if single else 2, own.local_port)
        except PortsExhausted as exc:
            logger.error("%s", exc)
            logger.error("No ICE candidate on %s: no free ports there", itf.local)
            return None
        streams = [Stream(s, itf.local, port + n, pool.family, is_rtcp=n == 1)
                   for n, s in enumerate(socks)]  # fmt: skip
        for stream in streams:
            stream.tag, stream.call_id = own.tag, own.call_id
            self._start(stream)
        return IceAddress(index, itf.advertised, streams[0], streams[1] if len(streams) > 1
                          else None, pool)  # fmt: skip

    def drop_ice_addresses(self, side: MediaSide) -> None:
        """Close the sockets of the side's other ICE addresses (no candidates listed any more,
        new own ports, rejected line, end of call)."""
        for address in side.ice_addresses:
            for stream in address.streams():
                self.close(stream, address.pool)
        side.ice_addresses = ()

    def release(self, side: MediaSide) -> None:
        """A party rejected this m= line (port 0): its sockets go, the records stay for query."""
        self.drop_ice_addresses(side)
        drop_transcoder(side)
        if side.port:
            side.released_pair = side.rtcp is not None and side.rtcp.local_port != 0
        side.released_port = side.port or side.released_port
        for stream in side.streams():
            self.close(stream, side.pool)
            stream.local_port = 0

    def _start_streams(self) -> None:
        starting, self._starting = self._starting, []
        for stream in starting:
            self.plane.add(stream)

    def close(self, stream: Stream, pool: PortPool | None) -> None:
        """Leave the plane, close the socket, give the port back (to `pool`, else its own)."""
        if stream in self._starting:  # allocated and given up within one request
            self._starting.remove(stream)
        self.plane.remove(stream)
        detach(stream)  # its secure transport, if any: timers cancelled
        stream.sock.close()
        owner = pool or self.pools.get(stream.local_address)
        if owner is not None and stream.local_port:
            owner.release(stream.local_port)

    def close_sides(self, sides: Iterable[MediaSide]) -> None:
        """Close every stream of `sides` (an ended call) and drop them from their sides."""
        closed: list[Stream] = []
        for side in sides:
            self.drop_ice_addresses(side)
            drop_transcoder(side)
            for stream in side.streams():
                self.close(stream, side.pool)
                closed.append(stream)
            side.rtp = side.rtcp = None
        # The two sides' streams point at each other (sink): unlinked, a call's objects are
        # freed by reference counting at once instead of waiting for the cyclic GC, whose
        # collections this garbage triggered every ~17 calls (docs/PERFORMANCE.md, issue 18)
        for stream in closed:
            stream.sink = stream.rtcp_sink = None

    def updated(self, parties: Iterable[Party]) -> None:
        """Tell the plane that the parties' streams (peers, holds, flags) may have changed."""
        for party in parties:
            for side in party.medias:
                for stream in side.streams():
                    self.plane.update(stream)
