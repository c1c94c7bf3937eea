"""Offer/answer/delete on the call model: pairing, port allocation and the outgoing SDP plan.

No SDP text and no ng encoding here: the caller hands in an `OfferedSession` (relay.offered)
and a `render` callback that turns a `SessionPlan` into text. Behaviour follows rtpengine 10.5
(docs/spec/sdp.md §1.5–§1.16, §3; docs/spec/ng-protocol.md §2.5).
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from relay.callmodel import Call, MediaSide, Party, plus_one
from relay.cint import strtoull
from relay.media.stream import LEARN_DELAYED, Stream
from relay.ng.flags import NgFlags
from relay.offered import OfferedMedia, OfferedSession
from relay.ports import Opener, PortPool, PortsExhausted, bind_udp
from relay.sdp.codecs import (
    answer_formats,
    answer_has_common,
    answer_transcodes,
    codecs_touched,
    drop_orphans,
    offer_formats,
    single_codec,
)
from relay.sdp.model import RTP_PROTOCOLS
from relay.sdp.plan import MediaPlan, SessionPlan

logger = logging.getLogger(__name__)

LEARNING_WINDOW = 3.0
"""Seconds after the last signal during which a new source re-targets (delayed learning)."""

Render = Callable[[SessionPlan], str]


class CallError(Exception):
    """A request the call model refuses; `reason` is the ng error-reason text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


class Plane(Protocol):
    def add(self, stream: Stream) -> None: ...
    def update(self, stream: Stream) -> None: ...
    def remove(self, stream: Stream) -> None: ...


class NullPlane:
    """A forwarding plane that forwards nothing (tests, benchmarks of the control plane)."""

    def add(self, stream: Stream) -> None:
        pass

    def update(self, stream: Stream) -> None:
        pass

    def remove(self, stream: Stream) -> None:
        pass


@dataclass(slots=True)
class Totals:
    """Counters for `statistics` (rtpengine's totalstatistics names in comments)."""

    managed: int = 0  # managedsessions (calls ended)
    rejected: int = 0
    timeout: int = 0
    silent_timeout: int = 0
    final_timeout: int = 0
    offer_timeout: int = 0
    regular: int = 0
    forced: int = 0
    call_duration: float = 0.0
    call_duration2: float = 0.0
    zeroway: int = 0  # media of ended calls with no packets in either direction
    oneway: int = 0  # ... with packets in one direction only
    packets: int = 0  # relayed by calls that have ended
    bytes: int = 0
    errors: int = 0
    dropped: int = 0  # rtpvault: packets refused from a non-latched source, by ended calls


CallListener = Callable[[str, Call], None]
"""Called with (event, call): "created", "updated", "closed:<reason>"."""


class Registry:
    """All calls of this daemon."""

    def __init__(
        self,
        interfaces: Sequence[LocalInterface],
        port_min: int,
        port_max: int,
        plane: Plane | None = None,
        *,
        opener: Opener = bind_udp,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        delete_delay: int = 30,
        sip_source: bool = False,
        endpoint_learning: str = LEARN_DELAYED,
        tos: int | None = None,
        set_tos: Callable[[socket.socket, int], None] | None = None,
    ) -> None:
        if not interfaces:
            raise ValueError("at least one interface is needed")
        self.interfaces = list(interfaces)
        # `is None`, not `or`: an empty plane (len 0) is falsy.
        self.plane: Plane = plane if plane is not None else NullPlane()
        self.clock = clock
        self.wallclock = wallclock
        self.delete_delay = delete_delay
        self.sip_source = sip_source
        self.endpoint_learning = endpoint_learning
        self.tos = tos
        self._set_tos = set_tos
        self.calls: dict[str, Call] = {}
        self._gone: dict[str, set[int]] = {}
        """Per call, ids of parties a branch delete destroyed (kept as records, as rtpengine)."""
        self._branch_deadlines: dict[str, list[tuple[Party, float]]] = {}
        """Per call, parties a delete with a delay destroys later (rtpengine's `ml->deleted`)."""
        self.totals = Totals()
        self.listeners: list[CallListener] = []
        self.pools: dict[str, PortPool] = {}
        for itf in self.interfaces:
            if itf.local not in self.pools:
                fam = socket.AF_INET6 if itf.family == "IP6" else socket.AF_INET
                self.pools[itf.local] = PortPool(itf.local, fam, port_min, port_max, opener, rng)
        self.instance_id = f"{(rng or random.Random()).getrandbits(48):012x}"
        self.defer: Callable[[Callable[[], None]], None] = _now
        self._starting: list[Stream] = []
        """How work that no reply depends on is run: at once, or (the daemon) after the reply."""

    # -- lookup -------------------------------------------------------------------------------

    def get(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise CallError("Unknown call-id")
        return call

    def _emit(self, event: str, call: Call) -> None:
        for listener in self.listeners:
            try:
                listener(event, call)
            except Exception:  # a subscriber must never break signalling
                logger.exception("call listener failed", extra={"call_id": call.call_id})

    # -- offer / answer -----------------------------------------------------------------------

    def offer(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str | None,
        offered: OfferedSession,
        flags: NgFlags,
        render: Render,
    ) -> str:
        """Handle an offer from `from_tag`; returns the SDP to send on to the other party."""
        new = call_id not in self.calls
        call = self.calls.get(call_id) or self._new_call(call_id)
        try:
            sender = self._party(call, from_tag)
            previous = sender.other
            receiver = self._counterpart(call, sender, to_tag)
            if previous is not None and previous is not receiver and previous.tag:
                # a re-offer to one forked answerer: the others stay subscribed (query)
                sender.former = [previous] + [p for p in sender.former if p is not previous]
            return self._exchange(call, sender, receiver, offered, flags, render, offer=True)
        except PortsExhausted:
            if new:
                self._destroy(call, None)
            raise CallError("Ran out of ports") from None
        finally:
            if new and call_id in self.calls:
                self._emit("created", call)

    def answer(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str,
        offered: OfferedSession,
        flags: NgFlags,
        render: Render,
    ) -> str:
        """Handle the answer of `to_tag` to `from_tag`'s offer; returns the SDP for the offerer."""
        call = self.get(call_id)
        offerer = call.parties.get(from_tag)
        if offerer is not None and _answer_transcodes(offerer, offered):
            # checked before anything changes: the call stays as it was before this answer
            raise CallError(ANSWER_TRANSCODING)
        answerer: Party | None
        if offerer is None:
            # rtpengine 10.5 (call_get_monologue_new, tags swapped for the answer): the to-tag's
            # party, existing or new, is paired with a new party for the unknown from-tag.
            new = to_tag not in call.parties
            answerer = self._party(call, to_tag)
            offerer = self._party(call, from_tag)
            previous = answerer.other
            if previous is not None:  # still listed among its subscriptions, as in rtpengine
                answerer.former = [previous] + [p for p in answerer.former if p is not previous]
            answerer.other, offerer.other = offerer, answerer
            call.answered = True
            try:
                out = self._exchange(call, answerer, offerer, offered, flags, render, offer=False)
            except PortsExhausted:
                raise CallError("Ran out of ports") from None
            if flags.ice != "remove":  # __ice_offer returns before the roles with ICE=remove
                for side in answerer.medias:
                    side.ice_controlling = side.ice_controlling or new
            return out
        answerer = call.parties.get(to_tag)
        forked = False
        if answerer is None and flags.via_branch:
            # rtpengine 10.5 (call_get_dialogue): an unknown to-tag whose via-branch names a
            # party takes that party over, re-tagged (Kamailio's via-branch=auto gives every
            # forked reply the caller's branch, so a second 200/183 renames the first answerer)
            found = self._by_branch(call, flags.via_branch)
            if found is not None and found is not offerer and found.tag:
                call.parties = {
                    (to_tag if p is found else t): p for t, p in call.parties.items()
                }
                found.tag = to_tag
                answerer = found
                offerer.other, found.other = found, offerer
        if answerer is None:
            previous = offerer.other
            answerer = self._counterpart(call, offerer, to_tag)
            if previous is not None and previous is not answerer and previous.tag:
                # A forked answer: rtpengine keeps the first answerer subscribed (query), and
                # the new one is a copy of the offer's receiver ("ICE controlling").
                offerer.former = [previous] + [p for p in offerer.former if p is not previous]
                forked = True
        call.answered = True
        try:
            out = self._exchange(call, answerer, offerer, offered, flags, render, offer=False)
        except PortsExhausted:
            raise CallError("Ran out of ports") from None
        if forked and flags.ice != "remove":  # ICE=remove: __ice_offer sets no roles
            for side in answerer.medias:
                side.ice_controlling = True
        return out

    def _new_call(self, call_id: str) -> Call:
        now = self.wallclock()
        call = Call(call_id=call_id, created=now, last_signal=now)
        self.calls[call_id] = call
        return call

    def _party(self, call: Call, tag: str) -> Party:
        party = call.parties.get(tag)
        if party is None:
            party = Party(tag=tag, created=self.wallclock())
            call.parties[tag] = party
        return party

    def _counterpart(self, call: Call, sender: Party, to_tag: str | None) -> Party:
        """The party on the other end: by to-tag, the existing partner, or a new untagged one."""
        if to_tag:
            party = call.parties.get(to_tag)
            if party is None and sender.other is not None and sender.other.tag == "":
                party = sender.other
                call.untagged.remove(party)
                party.tag = to_tag
                call.parties[to_tag] = party
            if party is None:
                party = self._party(call, to_tag)
        elif sender.other is not None:
            party = sender.other
        else:
            party = Party(tag="", created=self.wallclock())
            call.untagged.append(party)
        if party is sender:
            raise CallError("Invalid dialogue association")
        sender.other = party
        party.other = sender
        return party

    def _exchange(
        self,
        call: Call,
        sender: Party,
        receiver: Party,
        offered: OfferedSession,
        flags: NgFlags,
        render: Render,
        *,
        offer: bool,
    ) -> str:
        now = self.wallclock()
        call.last_signal = now
        if flags.label is not None:
            sender.label = flags.label
        if flags.via_branch is not None and offer:
            receiver.via_branch = receiver.via_branch or flags.via_branch
        if flags.record_call is not None:
            call.record = flags.record_call
        if flags.metadata is not None:
            call.metadata = flags.metadata
        plans = []
        for index, media in enumerate(offered.media):
            s_side, r_side = self._sides(sender, receiver, index, media, flags, offer)
            plans.append(self._media_plan(s_side, r_side, media, flags, offer))
        for party in (sender, receiver):
            self._refresh_learning(party)
        sender.signalled = True
        plan = self._session_plan(sender, receiver, offered, flags, tuple(plans))
        out = self._render_versioned(receiver, offered, flags, plan, render)
        for party in (sender, receiver):  # peers, holds, flags may have changed
            for side in party.medias:
                for stream in side.streams():
                    self.plane.update(stream)
        self._emit("updated", call)
        return out

    # -- media sides, ports, streams ----------------------------------------------------------

    def _interface(self, flags: NgFlags, towards_receiver: bool, family: str) -> LocalInterface:
        want = flags.direction[1 if towards_receiver else 0] if len(flags.direction) == 2 else None
        candidates = [i for i in self.interfaces if want is None or i.name.split(":")[0] == want]
        if not candidates:
            candidates = [i for i in self.interfaces if i.name == self.interfaces[0].name]
        for itf in candidates:
            if itf.family == family:
                return itf
        return candidates[0]

    def _sides(
        self,
        sender: Party,
        receiver: Party,
        index: int,
        media: OfferedMedia,
        flags: NgFlags,
        offer: bool,
    ) -> tuple[MediaSide, MediaSide]:
        new_sender_side = len(sender.medias) <= index
        while len(sender.medias) <= index:
            sender.medias.append(MediaSide(len(sender.medias) + 1, media.type, media.protocol))
        while len(receiver.medias) <= index:
            side = MediaSide(len(receiver.medias) + 1, media.type, media.protocol)
            side.ice_controlling = offer
            receiver.medias.append(side)
        s_side, r_side = sender.medias[index], receiver.medias[index]
        family = flags.address_family or media.family
        if media.ice:
            # rtpengine's sdp_streams: ICE in the SDP means trust-address from this m= line on
            flags.trust_address = True
        source = self._source_address(flags)
        _direction_flags(s_side, r_side, media, source is not None)
        # The receiver-facing pair (advertised in this SDP's output) is allocated first, for
        # the sender's endpoint (rtpengine's endpoint map): a new endpoint gets new ports, the
        # same one (only its port compared when either address is zero) keeps them, and so
        # does port-latching. (10.5's source also latches where it does not receive, but
        # measured, a=sendonly/inactive from a new port gets new ports all the same.)
        if not media.rejected:
            # shared flags copied from each SDP to its sender's side (__media_init_from_flags;
            # an SDP with ICE attributes is refused, so never trickle ICE from the SDP here)
            s_side.unidirectional = flags.has("unidirectional")
            s_side.asymmetric = flags.has("asymmetric")
            s_side.ice = media.ice
            s_side.trickle_ice = False
            opts = frozenset(flags.rtcp_mux)
            # __rtcp_mux_logic: mux already in use towards the receiver implies require
            r_side.mux_require = offer and ("require" in opts or r_side.rtcp_mux)
            if r_side.mux_require:
                opts = opts | {"require"}
                # rtpengine sets flags->rtcp_mux_require: it stays for the request's later m= lines
                flags.rtcp_mux.add("require")
            _rtcp_mux_logic(s_side, r_side, media.rtcp_mux, opts, offer)
            # proto_num_ports: only the RTP port where RTCP is muxed under require (offer), or
            # towards an offerer that keeps mux (answer)
            mux_only = r_side.rtcp_mux and (r_side.mux_require or not offer)
            endpoint = (source or media.address or "", media.port)
            latch = flags.has("port-latching")
            # (an endpoint map with too few ports gets new ones: __get_endpoint_map)
            # (a wildcard map takes the endpoint even under port-latching)
            same = r_side.rtp is not None and _same_endpoint(r_side, endpoint)
            if r_side.rtp is None or r_side.port == 0 or not (
                latch or same
            ) or (r_side.rtcp_fallback and not mux_only):
                if r_side.released_port and not (latch or same):
                    # the rejected line's old ports stay bound to the old endpoint's map
                    r_side.released_port = 0
                # that map, taken again, keeps its two ports even where one would do
                single = mux_only and not (r_side.released_port and r_side.released_pair)
                had_streams = r_side.rtp is not None
                self._allocate(r_side, self._interface(flags, True, family), single=single)
                if not had_streams and r_side.sdp is not None:
                    # rtpengine's port-less streams kept what the party's SDP said (a line
                    # it rejected: its address with port 0)
                    self._set_peer(r_side, r_side.sdp, NgFlags())
                r_side.endpoint = endpoint
            # The sender's own side gets ports only when first created (rtpengine's wildcard
            # endpoint map); created by a rejected line or released by a rejection, it waits
            # for an SDP sent to its party.
            if s_side.rtp is None and new_sender_side:
                # rtpengine's proto_num_ports: an offerer that keeps rtcp-mux under demux or
                # accept gets only its RTP port (the RTCP stream is a fallback, local port 0).
                single = offer and s_side.rtcp_mux and bool(opts & {"demux", "accept"})
                self._allocate(s_side, self._interface(flags, False, family), single=single)
                s_side.endpoint = None  # filled by the first SDP sent to s_side's party
            self._link(s_side, r_side)
        else:
            # Rejecting the m= line frees both sides' ports (rtpengine's __disable_streams).
            for side in (s_side, r_side):
                if side.rtp is not None and side.rtp.local_port:
                    self._release(side)
        self._update_protocol(s_side, r_side, media, flags, offer)
        s_side.type = r_side.type = media.type
        s_side.portless = (
            source or media.address, flags.has("strict-source"), flags.has("media-handover")
        )
        if offer and flags.has("trickle-ICE"):
            r_side.trickle_ice = True  # __ice_offer, rejected lines included
        # __ice_offer: a new receiver follows the sender's ICE, ICE=remove clears it
        if offer and not r_side.initialized and flags.ice != "remove":
            r_side.ice = s_side.ice
        if flags.ice == "remove":
            r_side.ice = False
        s_side.sdp = media
        s_side.sdp_was_offer = offer
        if offer and flags.has("reset"):
            # __media_init_from_flags clears both; the sender's is set again
            r_side.initialized = False
        s_side.initialized = True
        self._set_peer(s_side, media, flags)
        return s_side, r_side

    @staticmethod
    def _update_protocol(
        s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, flags: NgFlags, offer: bool
    ) -> None:
        """rtpengine's __update_media_protocol, on its one protocol per side (printed in the m=
        lines sent to that side's party, shown by query): the sender's side takes its SDP's; if
        that changed, an offer's receiver follows it (an answer's only with transport-protocol
        accept), else keeps what it had; then transport-protocol overrides the receiver's."""
        if s_side.protocol != media.protocol:
            s_side.protocol = media.protocol
            if offer or flags.transport_protocol == "accept":
                r_side.protocol = media.protocol
        if flags.plain_transport is not None and media.protocol in RTP_PROTOCOLS:
            r_side.protocol = flags.plain_transport

    def _allocate(self, side: MediaSide, itf: LocalInterface, single: bool = False) -> None:
        old = side.streams()
        pool = self.pools[itf.local]
        fam = pool.family
        # An m= line rejected earlier gets its old port numbers back (rtpengine 10.5 keeps
        # them: a re-offer shows the same port again).
        prefer, side.released_port = side.released_port, 0
        try:
            if single:
                rtp_sock, port = pool.allocate_one(prefer)
            else:
                rtp_sock, rtcp_sock, port = pool.allocate_pair(prefer)
        except PortsExhausted as exc:
            # rtpengine's three lines (docs/spec/sdp.md §3), naming the interface and the real cause
            logger.error("%s", exc)
            logger.error("Failed to get %d consecutive ports on all locals of logical '%s'",
                         exc.width, itf.name)  # fmt: skip
            logger.error("Error allocating media ports")
            raise
        if single:
            # rtpengine assigns the one new port to the RTP stream only: an RTCP stream that
            # had a port keeps it (query shows it as the fallback RTCP)
            kept = old[1] if len(old) == 2 and old[1].local_port else None
            side.rtp, side.rtcp = Stream(rtp_sock, itf.local, port, fam), kept
        else:
            side.rtp = Stream(rtp_sock, itf.local, port, fam)
            side.rtcp = Stream(rtcp_sock, itf.local, port + 1, fam, is_rtcp=True)
        side.rtcp_fallback = single
        side.pool = pool
        side.advertised = itf.advertised
        side.family = itf.family
        for new, prev in zip((side.rtp, side.rtcp), old, strict=False):
            if new is not None:
                _carry(prev, new)
        if len(old) == 1 and side.rtcp is not None:
            # the single-port side's fallback RTCP stream had the RTP peer one port up
            _carry(old[0], side.rtcp)
            side.rtcp.peer, side.rtcp.sdp_peer = plus_one(old[0].peer), plus_one(old[0].sdp_peer)
        for stream in side.streams():
            if any(stream is o for o in old):
                continue  # a kept RTCP stream is running already
            if self.tos is not None and self._set_tos is not None:
                self._set_tos(stream.sock, self.tos)
            # Bound now (the port goes into the reply); read from after the reply. Nothing is
            # lost: packets wait in the socket, and the deferred work runs before the loop
            # reads anything else.
            self._starting.append(stream)
            if len(self._starting) == 1:  # the first this request: one deferred start for all
                self.defer(self._start_streams)
        for stream in old:
            if stream is not side.rtcp:
                self._close_stream(stream, pool if stream.local_address == pool.address else None)

    def _release(self, side: MediaSide) -> None:
        """A party rejected this m= line (port 0): its sockets go, the records stay for query."""
        if side.port:
            side.released_pair = side.rtcp is not None and side.rtcp.local_port != 0
        side.released_port = side.port or side.released_port
        for stream in side.streams():
            self._close_stream(stream, side.pool)
            stream.local_port = 0

    def _start_streams(self) -> None:
        starting, self._starting = self._starting, []
        for stream in starting:
            self.plane.add(stream)

    def _close_stream(self, stream: Stream, pool: PortPool | None) -> None:
        if stream in self._starting:  # allocated and given up within one request
            self._starting.remove(stream)
        self.plane.remove(stream)
        stream.sock.close()
        owner = pool or self.pools.get(stream.local_address)
        if owner is not None and stream.local_port:
            owner.release(stream.local_port)

    @staticmethod
    def _link(a: MediaSide, b: MediaSide) -> None:
        if a.rtp and b.rtp:
            a.rtp.sink, b.rtp.sink = b.rtp, a.rtp
        if a.rtcp and b.rtcp:
            a.rtcp.sink, b.rtcp.sink = b.rtcp, a.rtcp

    def _set_peer(self, side: MediaSide, media: OfferedMedia, flags: NgFlags) -> None:
        """Where packets for this side's party go, from its SDP (or received-from)."""
        source = self._source_address(flags)
        address = source or media.address
        learning = flags.endpoint_learning or self.endpoint_learning
        rtcp_port = media.rtcp_port or media.port + 1
        for stream, port in ((side.rtp, media.port), (side.rtcp, rtcp_port)):
            if stream is None:
                continue
            here = address
            if stream.is_rtcp and media.rtcp_port is not None:
                # rtpengine's sdp_streams: a=rtcp naming the RTP port leaves the RTCP endpoint
                # empty; another port (and address, unless SIP-source-address) is taken as is
                if media.rtcp_port == media.port:
                    here = None
                elif source is None and media.rtcp_address:
                    here = media.rtcp_address
            endpoint = (here, port) if here else None
            if endpoint != stream.sdp_peer:
                was_filled = stream.sdp_peer is not None
                stream.sdp_peer = endpoint
                fam = socket.AF_INET6 if endpoint and ":" in endpoint[0] else socket.AF_INET
                if not (was_filled and endpoint and fam != stream.family):
                    # rtpengine's __fill_stream ignores a new endpoint of the other address
                    # family than the local socket (only the advertised one changes)
                    stream.peer = endpoint
                    stream.confirmed = False
            stream.send_blocked = (media.zero_address and source is None) or media.rejected
            stream.learning = learning
            # rtpengine 10.5 takes these from each SDP its party sends, not sticky (asymmetric,
            # a media flag there, only from an m= line that is not rejected).
            stream.strict_source = flags.has("strict-source")
            stream.media_handover = flags.has("media-handover")
            if not media.rejected:
                stream.asymmetric = flags.has("asymmetric")

    def _source_address(self, flags: NgFlags) -> str | None:
        """The SIP source address (`received-from`) when it replaces the SDP's address."""
        # the last of trust-address / SIP-source-address counts (rtpengine's flag order)
        trust = flags.trust_address if flags.trust_address is not None else not self.sip_source
        use_source = not trust
        return flags.received_from[1] if use_source and flags.received_from else None

    def _refresh_learning(self, party: Party) -> None:
        until = self.clock() + LEARNING_WINDOW
        for side in party.medias:
            for stream in side.streams():
                stream.learn_until = until
                stream.tag = party.tag
                if stream.sink is not None:
                    stream.filled = True

    # -- plans --------------------------------------------------------------------------------

    def _media_plan(
        self, s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, flags: NgFlags, offer: bool
    ) -> MediaPlan:
        mid = self._mid(s_side, r_side, media, flags, offer)
        # A zero address (hold) counts only where the SDP address is used: with
        # SIP-source-address the received-from address replaces it (measured).
        zero = media.zero_address and self._source_address(flags) is None
        keep_zero = zero and "zero-address" not in flags.replace and flags.media_address is None
        if media.rejected:
            if media.ptime:  # stored even from a rejected line (__media_init_from_flags)
                s_side.ptime = r_side.ptime = media.ptime
            # a rejected first m= line still decides the session c= (0.0.0.0 stays)
            return MediaPlan(
                port=0,
                protocol=r_side.protocol,
                address=flags.media_address or r_side.advertised or self.interfaces[0].advertised,
                family=flags.media_address_family if flags.media_address else r_side.family,
                mid=mid,
                input_mid=False,
                keep_zero_address=keep_zero,
                ptime=media.ptime,  # only strips the input's a=ptime: nothing is generated
                # codec flags still apply to a rejected line's format list in an offer
                # (codecs_offer_answer runs before the port check); an answer rejecting the
                # line is not narrowed to the offered codecs (no codec_answer_only)
                formats=self._formats(s_side, r_side, media, flags, offer),
                strip_extmap=flags.has("strip-extmap"),
                # original-sendrecv keeps the direction line in place here too
                direction=None if flags.has("original-sendrecv") else "sendrecv",
            )
        # rtpengine's print_rtcp: the receiver's MEDIA_FLAG_RTCP_MUX decides a=rtcp-mux; an
        # answer, or an offer under (explicit or implicit) require, puts RTCP on the RTP port.
        mux = r_side.rtcp_mux
        port = r_side.port
        require = offer and r_side.mux_require
        # rtpengine keeps one ptime per side: either party's a=ptime sets both, and an SDP
        # without one leaves them (the answer to a ptime:20 offer says ptime:20 too).
        if media.ptime:
            s_side.ptime = r_side.ptime = media.ptime
        ptime = r_side.ptime
        default_direction = "sendonly" if zero else "sendrecv"
        direction: str | None = media.direction or default_direction
        if flags.has("original-sendrecv"):
            direction = None
        if zero and direction in ("sendrecv", "recvonly"):
            # rtpengine 10.5: a zero address does not receive
            # (sendrecv -> sendonly, recvonly -> inactive)
            direction = "sendonly" if direction == "sendrecv" else "inactive"
        rtcp_port: int | None = port if (mux and (require or not offer)) else port + 1
        if flags.has("no-rtcp-attribute"):
            rtcp_port = None
        return MediaPlan(
            port=port,
            address=flags.media_address or r_side.advertised,
            family=flags.media_address_family if flags.media_address else r_side.family,
            rtcp_port=rtcp_port,
            rtcp_mux=mux,
            full_rtcp_attribute=flags.has("full-rtcp-attribute"),
            protocol=r_side.protocol,
            formats=self._formats(s_side, r_side, media, flags, offer),
            ptime=ptime,
            direction=direction,
            keep_zero_address=keep_zero,
            end_of_candidates=media.end_of_candidates,
            strip_extmap=flags.has("strip-extmap"),
            mid=mid,
            input_mid=False,
        )

    @staticmethod
    def _mid(
        s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, flags: NgFlags, offer: bool
    ) -> str | None:
        """a=mid to print: the receiver side's media id (rtpengine's __update_media_id). An
        offer's mid (new or changed) is the sender side's; a receiver without one copies it,
        or with generate-mid numbers the line; answers change nothing."""
        if offer:
            if media.mid is not None:
                s_side.mid = media.mid
            if r_side.mid is None:
                if s_side.mid is not None:
                    r_side.mid = s_side.mid
                elif flags.has("generate-mid"):
                    r_side.mid = str(s_side.index)
        return r_side.mid

    @staticmethod
    def _formats(
        s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, flags: NgFlags, offer: bool
    ) -> tuple[str, ...] | None:
        """Payload types to print (relay.sdp.codecs): an offer applies strip/mask; an answer
        keeps what was offered to its sender. None keeps the input's list.

        An offer is never narrowed to what the other side offered before: rtpengine 10.5
        repopulates both sides' codecs from the new offer (a callee's re-INVITE may bring new
        codecs)."""
        formats = media.formats
        if offer:
            sent, kept = offer_formats(formats, media.codec_names, flags.codec)
            s_side.sent_formats, s_side.kept_formats = sent, kept
            s_side.offered_names = dict(media.codec_names)
            s_side.transcoding = r_side.transcoding = False
            s_side.codecs_touched = codecs_touched(formats, media.codec_names, flags.codec)
        else:
            s_side.transcoding = r_side.transcoding = r_side.sent_formats is not None and (
                not answer_has_common(
                    formats, r_side.sent_formats, r_side.kept_formats, media.codec_names,
                    r_side.offered_names,
                )
            )  # only a rejected line gets here (_answer_transcodes refuses the others)
            if r_side.sent_formats is not None:
                formats = answer_formats(
                    formats, r_side.sent_formats, r_side.kept_formats, media.codec_names,
                    r_side.offered_names,
                )
            _, sent = offer_formats(formats, media.codec_names, flags.codec)  # mask: no-op here
            if flags.has("single-codec"):
                sent = single_codec(sent, media.codec_names)
            if r_side.codecs_touched:
                sent = drop_orphans(sent, media.codec_names)
            if r_side.sent_formats is not None:
                # what is agreed now is all a later answer to the same offer may use (rtpengine
                # populates the answerer's codecs "answer only": a 200 OK after a 183, or
                # another fork's answer, is narrowed to the first answer's codecs)
                r_side.sent_formats = r_side.kept_formats = sent
        return None if sent == media.formats else sent

    def _session_plan(
        self,
        sender: Party,
        receiver: Party,
        offered: OfferedSession,
        flags: NgFlags,
        media: tuple[MediaPlan, ...],
    ) -> SessionPlan:
        first = next((m for m in media if m.port), media[0] if media else None)
        address = flags.media_address or (first.address if first else self.interfaces[0].advertised)
        family = first.family if first else "IP4"
        # rtpengine 10.5 keeps these on the monologue the SDP goes *to* (sdp_replace gets the
        # receiver): the first SDP sent to a party records them; a forked answer therefore
        # gets the first answerer's username back.
        username = session_name = None
        if receiver.origin_username is None:
            receiver.origin_username = offered.origin_username
            receiver.session_name = offered.session_name
        else:
            if "username" in flags.replace:
                username = receiver.origin_username
            if "session-name" in flags.replace:
                session_name = receiver.session_name
        return SessionPlan(
            address=address,
            family=family,
            media=media,
            replace_origin="origin" in flags.replace,
            replace_session_connection="session-connection" in flags.replace,
            origin_username=username,
            session_name=session_name,
            loop_protect_id=self.instance_id if flags.has("loop-protect") else None,
        )

    def _render_versioned(
        self, receiver: Party, offered: OfferedSession, flags: NgFlags, plan: SessionPlan,
        render: Render,
    ) -> str:
        """rtpengine's o= version handling: the receiver's monologue takes its version from the
        first SDP sent to it (flag or not); with `replace: sdp-version` that number is written
        in, and raised by one when the output differs from the last flagged output."""
        if receiver.sdp_version is None:
            version = strtoull(offered.origin_version) if offered.origin_version.isdigit() else 0
            if version in (0, 2**64 - 1):
                version = random.getrandbits(64)
            receiver.sdp_version = version
        if "sdp-version" not in flags.replace:
            return render(plan)
        out = render(_with_version(plan, receiver.sdp_version))
        if receiver.last_out is not None and out != receiver.last_out:
            receiver.sdp_version += 1
            out = render(_with_version(plan, receiver.sdp_version))
        receiver.last_out = out
        return out

    # -- delete and timers --------------------------------------------------------------------

    def delete(
        self,
        call_id: str,
        from_tag: str | None,
        to_tag: str | None,
        delay: int | None,
        via_branch: str | None = None,
    ) -> Call | None:
        """Delete (after `delay` s, default delete-delay); None if the call/tag is unknown.

        rtpengine 10.5's `call_delete_branch`: without a from-tag the whole call goes; otherwise
        one party (see `delete_target`) is deleted, and with it the parties left without a
        partner; the call ends when fewer than two tagged parties remain."""
        call = self.calls.get(call_id)
        if call is None:
            return None
        if not from_tag:
            self.delete_call(call, delay)
            return call
        target = self.delete_target(call, from_tag, to_tag, via_branch)
        if target is None:
            return None
        self.delete_party(call, target, delay)
        return call

    def live_party(self, call: Call, tag: str | None) -> Party | None:
        """The party a tag names, unless a delete has already destroyed it."""
        party = call.parties.get(tag) if tag else None
        if party is None or id(party) in self._gone.get(call.call_id, ()):
            return None
        return party

    def _by_branch(self, call: Call, branch: str | None) -> Party | None:
        if not branch:
            return None
        gone = self._gone.get(call.call_id, set())
        found = [p for p in call.all_parties() if p.via_branch == branch and id(p) not in gone]
        return found[-1] if found else None

    def delete_target(
        self, call: Call, from_tag: str, to_tag: str | None, via_branch: str | None
    ) -> Party | None:
        """The party a delete with a from-tag removes, found the way rtpengine 10.5 does: the
        via-branch's (only without to-tag), else the to-tag's (or from-tag's without to-tag),
        else the via-branch's, else the from-tag's if its partner is still untagged."""
        if not to_tag:
            found = self._by_branch(call, via_branch)
            if found is not None:
                return found
        match = to_tag or from_tag
        found = self.live_party(call, match)
        if found is not None:
            return found
        found = self._by_branch(call, via_branch)
        if found is not None:
            return found
        if to_tag:
            offerer = self.live_party(call, from_tag)
            if offerer is not None:
                subs = offerer.subscriptions()
                if len(subs) == 1 and not subs[0].tag:
                    return offerer
        return None

    def delete_call(self, call: Call, delay: int | None) -> None:
        delay = self.delete_delay if delay is None or delay < 0 else delay
        if delay == 0:
            self._destroy(call, "regular")
        else:
            call.deleted_at = self.wallclock() + delay

    def _partners(self, call: Call, party: Party) -> list[Party]:
        """Live parties `party` has been in a dialogue with (rtpengine's `other_tags`)."""
        gone = self._gone.get(call.call_id, set())
        return [
            p for p in call.all_parties()
            if p is not party and id(p) not in gone
            and (p.other is party or party.other is p or p in party.former or party in p.former)
        ]

    def _doomed(self, call: Call, party: Party) -> list[Party]:
        """`party` and the partners that destroying it leaves without any partner."""
        doomed = [party]
        for p in self._partners(call, party):
            if all(q is party for q in self._partners(call, p)):
                doomed.append(p)
        return doomed

    def _ends_call(self, call: Call, doomed: list[Party]) -> bool:
        gone = self._gone.get(call.call_id, set()) | {id(p) for p in doomed}
        live = [p for p in call.all_parties() if id(p) not in gone]
        return len([p for p in live if p.tag]) < 2 and not any(p.via_branch for p in live)

    def delete_party(self, call: Call, party: Party, delay: int | None) -> None:
        """Destroy `party` now (delay 0) or after the delay, with the partners it leaves alone;
        the call ends with them when fewer than two tagged parties (and no via-branch) remain.
        Destroyed parties keep their records (rtpengine still lists them) but lose their ports."""
        delay = self.delete_delay if delay is None or delay < 0 else delay
        doomed = self._doomed(call, party)
        if self._ends_call(call, doomed):
            self.delete_call(call, delay)
            return
        if delay > 0:
            self._branch_deadlines.setdefault(call.call_id, []).append(
                (party, self.wallclock() + delay)
            )
            return
        self._destroy_parties(call, doomed)

    def _destroy_parties(self, call: Call, doomed: list[Party]) -> None:
        gone = self._gone.setdefault(call.call_id, set())
        for p in doomed:
            gone.add(id(p))
            for side in p.medias:
                self._release(side)
        self._emit("updated", call)

    def terminate(self, call_id: str, reason: str = "forced") -> bool:
        call = self.calls.get(call_id)
        if call is None:
            return False
        self._destroy(call, reason)
        return True

    def touch(self, call_id: str, from_tag: str, to_tag: str | None) -> Call:
        """Create the call and its two parties without media (an offer with no usable SDP)."""
        call = self.calls.get(call_id) or self._new_call(call_id)
        sender = self._party(call, from_tag)
        self._counterpart(call, sender, to_tag)
        return call

    def _count_ways(self, call: Call) -> None:
        seen: set[int] = set()
        for party in call.all_parties():
            other = party.other
            for side in party.medias:
                if other is None or side.index in seen or side.index > len(other.medias):
                    continue
                seen.add(side.index)
                peer = other.medias[side.index - 1]
                ways = sum(1 for m in (side, peer) if m.rtp is not None and m.rtp.packets)
                if ways == 0:
                    self.totals.zeroway += 1
                elif ways == 1:
                    self.totals.oneway += 1

    def _destroy(self, call: Call, reason: str | None) -> None:
        if self.calls.get(call.call_id) is not call:
            return
        del self.calls[call.call_id]
        self._gone.pop(call.call_id, None)
        self._branch_deadlines.pop(call.call_id, None)
        t = self.totals
        if reason is not None:
            self._count_ways(call)
        sides = [side for party in call.all_parties() for side in party.medias]
        for side in sides:
            for stream in side.streams():
                t.packets += stream.packets
                t.bytes += stream.bytes
                t.errors += stream.errors
                t.dropped += stream.dropped
        if reason is not None:
            duration = max(0.0, self.wallclock() - call.created)
            t.managed += 1
            t.call_duration += duration
            t.call_duration2 += duration * duration
            field = {"silent-timeout": "silent_timeout", "final-timeout": "final_timeout",
                     "offer-timeout": "offer_timeout"}.get(reason, reason)
            if hasattr(t, field):
                setattr(t, field, getattr(t, field) + 1)

        def teardown() -> None:
            for side in sides:
                for stream in side.streams():
                    self._close_stream(stream, side.pool)
                side.rtp = side.rtcp = None
            if reason is not None:
                logger.info("Call closed (%s)", reason, extra={"call_id": call.call_id})
                self._emit(f"closed:{reason}", call)

        # The call is gone from `calls` and counted; its sockets, log line and listeners wait
        # until the ng reply is sent (see NgControlServer.defer) — before the next request.
        self.defer(teardown)

    def sweep(
        self, timeout: int, silent_timeout: int, final_timeout: int, offer_timeout: int
    ) -> None:
        """Close calls whose delete-delay passed or that timed out; call about once a second."""
        now = self.wallclock()
        for call_id, pending in list(self._branch_deadlines.items()):
            call = self.calls[call_id]
            due = [p for p, at in pending if now >= at]
            if due:
                self._branch_deadlines[call_id] = [(p, at) for p, at in pending if now < at]
                for party in due:
                    if id(party) not in self._gone.get(call_id, ()):
                        self.delete_party(call, party, 0)
        for call in list(self.calls.values()):
            reason = self._expired(call, now, timeout, silent_timeout, final_timeout, offer_timeout)
            if reason:
                self._destroy(call, reason)

    @staticmethod
    def _expired(
        call: Call, now: float, timeout: int, silent: int, final: int, offer_timeout: int
    ) -> str | None:
        if call.deleted_at is not None:
            return "regular" if now >= call.deleted_at else None
        if final > 0 and now - call.created >= final:
            return "final-timeout"
        if not call.answered:
            return "offer-timeout" if now - call.last_signal >= offer_timeout else None
        # rtpengine 10.5: each media has its own limit (silent-timeout where it does not receive:
        # sendonly, inactive, or a zero address in an answer — the answer resets the offerer's);
        # the call ends when no media is within its limit, under the last media's reason (so
        # A sendonly / B recvonly ends as "timeout"). Measured against 10.5 in docs/media.md.
        reason = "timeout" if now - call.last_signal >= timeout else None
        for m in (m for p in call.all_parties() for m in p.medias):
            receives = m.sdp is None or (
                m.sdp.direction not in ("sendonly", "inactive")
                and not (m.sdp.zero_address and not m.sdp_was_offer)
            )
            limit, reason = (timeout, "timeout") if receives else (silent, "silent-timeout")
            if now - max([call.last_signal, *(s.last_packet for s in m.streams())]) < limit:
                return None
        return reason

    def relayed(self) -> tuple[int, int, int]:
        """Packets, bytes and errors received on all streams, live and ended."""
        t = self.totals
        packets, bytes_, errors = t.packets, t.bytes, t.errors
        for call in self.calls.values():
            for s in call.streams():
                packets += s.packets
                bytes_ += s.bytes
                errors += s.errors
        return packets, bytes_, errors


def _rtcp_mux_logic(
    sender: MediaSide, receiver: MediaSide, sdp_mux: bool, opts: frozenset[str], offer: bool
) -> None:
    """rtpengine 10.5's MEDIA_FLAG_RTCP_MUX bookkeeping for one m= line that is not rejected
    (`__media_init_from_flags` copies the sender's a=rtcp-mux, then `__rtcp_mux_logic`)."""
    sender.rtcp_mux = sdp_mux
    if not offer:
        if not sender.rtcp_mux_override:
            receiver.rtcp_mux = sender.rtcp_mux
        return
    if not receiver.rtcp_mux:
        receiver.rtcp_mux = sender.rtcp_mux
    if opts & {"offer", "require"}:
        receiver.rtcp_mux = True
    elif "demux" in opts:
        receiver.rtcp_mux = False
    receiver.rtcp_mux_override = False
    if sender.rtcp_mux:
        if not receiver.rtcp_mux:
            receiver.rtcp_mux_override = True
            if "reject" in opts:
                sender.rtcp_mux = False
        elif "accept" in opts:
            receiver.rtcp_mux_override = True
        elif "reject" in opts:
            receiver.rtcp_mux_override = True
            sender.rtcp_mux = False
    else:
        receiver.rtcp_mux_override = True


def _carry(prev: Stream, new: Stream) -> None:
    """What a stream learned (peers, sink, source flags, owner) survives its re-allocation."""
    new.peer, new.sdp_peer, new.sink = prev.peer, prev.sdp_peer, prev.sink
    new.strict_source, new.media_handover = prev.strict_source, prev.media_handover
    new.asymmetric = prev.asymmetric
    new.tag, new.call_id = prev.tag, prev.call_id


def _same_endpoint(side: MediaSide, endpoint: tuple[str, int]) -> bool:
    """Whether `side`'s ports serve `endpoint` (rtpengine's __hunt_endpoint_map); a side not
    yet used for any endpoint takes it, and a zero address is filled in by a real one."""
    if side.endpoint is None:
        side.endpoint = endpoint
        return True
    zero = ("0.0.0.0", "::")
    if side.endpoint[0] in zero or endpoint[0] in zero:
        if side.endpoint[1] != endpoint[1]:
            return False
        if side.endpoint[0] in zero:
            side.endpoint = endpoint
        return True
    return side.endpoint == endpoint


def _direction_flags(
    s_side: MediaSide, r_side: MediaSide, media: OfferedMedia, source_address: bool
) -> None:
    """rtpengine 10.5's media send/recv flags after an SDP from s_side's party: the receiving
    side gets the SDP's own direction, the sending side its mirror; a zero address (not replaced
    by the SIP source address, not on a rejected line) stops sending to the sender and
    receiving from the receiver."""
    sends = media.direction in (None, "sendrecv", "sendonly")
    receives = media.direction in (None, "sendrecv", "recvonly")
    zero = media.zero_address and not source_address and not media.rejected
    r_side.send, r_side.recv = sends, receives and not zero
    s_side.send, s_side.recv = receives and not zero, sends


ANSWER_TRANSCODING = (
    "answer codecs not matching the offer (transcoding) are not supported by rtpvault yet"
)


def _answer_transcodes(offerer: Party, offered: OfferedSession) -> bool:
    """rtpengine 10.5 would transcode some accepted m= line of this answer to `offerer`
    (relay.sdp.codecs.answer_transcodes); rejected lines carry no media and are not counted."""
    for index, media in enumerate(offered.media):
        if media.rejected or index >= len(offerer.medias):
            continue
        side = offerer.medias[index]
        if side.sent_formats is None:
            continue
        if answer_transcodes(
            media.formats, side.sent_formats, side.kept_formats, media.codec_names,
            side.offered_names,
        ):
            return True
    return False


def _now(work: Callable[[], None]) -> None:
    work()


def _with_version(plan: SessionPlan, version: int) -> SessionPlan:
    return replace(plan, origin_version=str(version))
