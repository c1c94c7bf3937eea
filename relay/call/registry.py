"""All calls of this daemon: lookup, offer/answer pairing and the events they publish.

No SDP text and no ng encoding here: the caller hands in an `OfferedSession`
(relay.call.offered), the request's `CallOptions` and a `render` callback that turns a
`SessionPlan` into text. Behaviour follows rtpengine 10.5 (docs/spec/sdp.md §1.5–§1.16, §3;
docs/spec/ng-protocol.md §2.5). The per-side decisions are relay.call.sides, ports
relay.call.streams, the SDP plan relay.call.plan, and deletes, timeouts and totals
relay.call.teardown.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from relay.call import (
    dtls_media,
    ice_media,
    plan,
    rtcp_media,
    sdes_media,
    secure,
    sides,
    transcode_media,
    transcoding,
)
from relay.call.errors import CallError
from relay.call.events import CallCreated, CallEvent, CallListener, CallUpdated, Exchange
from relay.call.model import Call, MediaSide, Party
from relay.call.offered import OfferedMedia, OfferedSession
from relay.call.options import NO_OPTIONS, CallOptions
from relay.call.rng import new_seed
from relay.call.secure import SecureContext
from relay.call.sides import RequestState
from relay.call.streams import Defer, LocalInterface, StreamAllocator, pick_interface
from relay.call.teardown import Teardown, Totals
from relay.call.transcoding import CannotEncode
from relay.media.plane import ForwardingPlane
from relay.media.stream import LEARN_DELAYED
from relay.media.transcoder import Ledger
from relay.ports import Opener, PortPool, PortsExhausted, bind_udp
from relay.transcode.dtx import DtxSettings

logger = logging.getLogger(__name__)

LEARNING_WINDOW = 3.0
"""Seconds after the last signal during which a new source re-targets (delayed learning)."""


class Registry:
    """All calls of this daemon."""

    def __init__(
        self,
        interfaces: Sequence[LocalInterface],
        port_min: int,
        port_max: int,
        plane: ForwardingPlane | None = None,
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
        secure: SecureContext,
        make_chain: transcode_media.MakeChain = transcode_media.default_chain,
        dtx: DtxSettings | None = None,
    ) -> None:
        if not interfaces:
            raise ValueError("at least one interface is needed")
        self.interfaces = list(interfaces)
        self.secure = secure
        """Daemon-wide SRTP/DTLS/ICE inputs (certificate fingerprint, ICE foundations)."""
        self.clock = clock
        self.wallclock = wallclock
        self.sip_source = sip_source
        self.endpoint_learning = endpoint_learning
        self.calls: dict[str, Call] = {}
        self.listeners: list[CallListener] = []
        self.streams = StreamAllocator(
            self.interfaces, port_min, port_max, plane, opener, rng, tos, set_tos
        )
        self.teardown = Teardown(self.calls, self.streams, self.emit, wallclock, delete_delay)
        self.instance_id = f"{(rng or random.Random()).getrandbits(48):012x}"
        # the parts' operations callers use directly
        self.live_party = self.teardown.live_party
        self.delete_target = self.teardown.delete_target
        self.delete_party = self.teardown.delete_party
        self.delete_call = self.teardown.delete_call
        self.make_chain = make_chain
        self.dtx = dtx
        """`dtx-delay` and its companions (relay.transcode.dtx); None or delay 0: no buffer."""
        """Builds a codec chain for a DirectionPlan (relay.transcode's, lazily imported)."""
        self.transcoders = Ledger()
        """This process's codec chains by label (rtpengine's `transcoders` statistics)."""
        self.tickers: list[Callable[[], None]] = []
        """Run after each sweep, about once a second (the daemon-wide limits' measures)."""
        self.relayed = self.teardown.relayed
        self.seed_source: Callable[[], bytes] = new_seed
        """Where a new call's seed comes from (relay.state.replay gives the stored one)."""
        self.restoring: dict[str, Any] | None = None
        """The document's `extra` while relay.state.replay rebuilds a call (`Call.restored`)."""

    @property
    def defer(self) -> Defer:
        """How work that no reply depends on is run: at once, or (the daemon) after the reply."""
        return self.streams.defer

    @defer.setter
    def defer(self, defer: Defer) -> None:
        self.streams.defer = defer

    @property
    def delete_delay(self) -> int:
        return self.teardown.delete_delay

    @delete_delay.setter
    def delete_delay(self, seconds: int) -> None:
        self.teardown.delete_delay = seconds

    @property
    def totals(self) -> Totals:
        return self.teardown.totals

    @property
    def pools(self) -> dict[str, PortPool]:
        return self.streams.pools

    # -- lookup and events --------------------------------------------------------------------

    def get(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise CallError("Unknown call-id")
        return call

    def emit(self, event: CallEvent) -> None:
        """Tell every listener; a listener's exception is logged, never passed on."""
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a subscriber must never break signalling
                logger.exception("call listener failed", extra={"call_id": event.call.call_id})

    def sweep(
        self, timeout: int, silent_timeout: int, final_timeout: int, offer_timeout: int
    ) -> None:
        """Close calls whose delete-delay passed or that timed out, then run the tickers;
        call about once a second."""
        self.teardown.sweep(timeout, silent_timeout, final_timeout, offer_timeout)
        for tick in self.tickers:
            try:
                tick()
            except Exception:  # a measure must never stop the timeouts
                logger.exception("ticker failed")

    def terminate(self, call_id: str, reason: str = "forced") -> bool:
        call = self.calls.get(call_id)
        if call is None:
            return False
        self.teardown.destroy(call, reason)
        return True

    def touch(self, call_id: str, from_tag: str, to_tag: str | None) -> Call:
        """Create the call and its two parties without media (an offer with no usable SDP)."""
        call = self.calls.get(call_id) or self._new_call(call_id)
        sender = self._party(call, from_tag)
        self._counterpart(call, sender, to_tag)
        return call

    # -- offer / answer -----------------------------------------------------------------------

    def offer(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str | None,
        offered: OfferedSession,
        options: CallOptions,
        render: plan.Render,
    ) -> str:
        """Handle an offer from `from_tag`; returns the SDP to send on to the other party."""
        new = call_id not in self.calls
        call = self.calls.get(call_id) or self._new_call(call_id)
        announced = False
        try:
            sender = self._party(call, from_tag)
            previous = sender.other
            receiver = self._counterpart(call, sender, to_tag)
            if previous is not None and previous is not receiver and previous.tag:
                # a re-offer to one forked answerer: the others stay subscribed (query)
                sender.former = [previous] + [p for p in sender.former if p is not previous]
            out = self._exchange(
                call, sender, receiver, offered, options, render, offer=True, created=new
            )
            announced = True
            return out
        except CannotEncode as exc:
            raise CallError(str(exc)) from None
        except PortsExhausted:
            if new:
                self.teardown.destroy(call, None)
            raise CallError("Ran out of ports") from None
        finally:
            if new and not announced and call_id in self.calls:
                self.emit(CallCreated(call))  # refused, but the call and its parties stay

    def answer(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str,
        offered: OfferedSession,
        options: CallOptions,
        render: plan.Render,
    ) -> str:
        """Handle the answer of `to_tag` to `from_tag`'s offer; returns the SDP for the offerer."""
        call = self.get(call_id)
        offerer = call.parties.get(from_tag)
        if offerer is not None:
            refusal = transcoding.answer_refusal(
                offerer, call.parties.get(to_tag), offered, options
            )
            if refusal is not None:  # checked before anything changes
                raise CallError(refusal)
        if offerer is None:
            answerer, offerer, ice_controlling = self._answer_unknown_offerer(
                call, from_tag, to_tag
            )
        else:
            answerer, ice_controlling = self._answerer(call, offerer, to_tag, options)
        call.answered = True
        try:
            out = self._exchange(call, answerer, offerer, offered, options, render, offer=False)
        except PortsExhausted:
            raise CallError("Ran out of ports") from None
        except CannotEncode as exc:
            raise CallError(str(exc)) from None
        if ice_controlling and options.ice != "remove":
            # __ice_offer sets no roles with ICE=remove
            for side in answerer.medias:
                side.ice_controlling = True
        return out

    def _answer_unknown_offerer(
        self, call: Call, from_tag: str, to_tag: str
    ) -> tuple[Party, Party, bool]:
        """rtpengine 10.5 (call_get_monologue_new, tags swapped for the answer): the to-tag's
        party, existing or new, is paired with a new party for the unknown from-tag.
        Returns (answerer, offerer, whether the answerer is new: "ICE controlling")."""
        new = to_tag not in call.parties
        answerer = self._party(call, to_tag)
        offerer = self._party(call, from_tag)
        previous = answerer.other
        if previous is not None:  # still listed among its subscriptions, as in rtpengine
            answerer.former = [previous] + [p for p in answerer.former if p is not previous]
        answerer.other, offerer.other = offerer, answerer
        return answerer, offerer, new

    def _answerer(
        self, call: Call, offerer: Party, to_tag: str, options: CallOptions
    ) -> tuple[Party, bool]:
        """The party answering `offerer`'s offer, and whether it is a forked answer's new copy
        of the offer's receiver ("ICE controlling")."""
        answerer = call.parties.get(to_tag)
        if answerer is None and options.via_branch:
            # rtpengine 10.5 (call_get_dialogue): an unknown to-tag whose via-branch names a
            # party takes that party over, re-tagged (Kamailio's via-branch=auto gives every
            # forked reply the caller's branch, so a second 200/183 renames the first answerer)
            found = self.teardown.by_branch(call, options.via_branch)
            if found is not None and found is not offerer and found.tag:
                call.parties = {
                    (to_tag if p is found else t): p for t, p in call.parties.items()
                }
                found.tag = to_tag
                answerer = found
                offerer.other, found.other = found, offerer
        if answerer is not None:
            return answerer, False
        previous = offerer.other
        answerer = self._counterpart(call, offerer, to_tag)
        if previous is not None and previous is not answerer and previous.tag:
            # A forked answer: rtpengine keeps the first answerer subscribed (query), and
            # the new one is a copy of the offer's receiver ("ICE controlling").
            offerer.former = [previous] + [p for p in offerer.former if p is not previous]
            return answerer, True
        return answerer, False

    def _new_call(self, call_id: str) -> Call:
        now = self.wallclock()
        call = Call(call_id=call_id, created=now, last_signal=now, seed=self.seed_source(),
                    restored=self.restoring)  # fmt: skip
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
        options: CallOptions,
        render: plan.Render,
        *,
        offer: bool,
        created: bool = False,
    ) -> str:
        """One SDP from `sender` to `receiver`; returns the SDP sent on and publishes the
        update (first the call's creation when this offer `created` it)."""
        call.last_signal = self.wallclock()
        if options.label is not None:
            sender.label = options.label
        if options.via_branch is not None and offer:
            receiver.via_branch = receiver.via_branch or options.via_branch
        if options.record_call is not None:
            call.record = options.record_call
        if options.metadata is not None:
            call.metadata = options.metadata
        state = RequestState.of(options)
        # the daemon's secure inputs with the call's own RNG: keys, ufrag/pwd, tie-breakers
        ctx = call.secure_context
        if ctx is None or ctx.fingerprint is not self.secure.fingerprint:
            ctx = call.secure_context = dataclasses.replace(self.secure, rng=call.rng)
        fallback = self.interfaces[0].advertised
        plans = []
        listed: list[MediaSide] = []
        for index, media in enumerate(offered.media):
            s_side, r_side, source = self._sides(sender, receiver, index, media, state, offer)
            media_plan = plan.media_plan(s_side, r_side, media, options, offer, source, fallback)
            if not media.rejected:
                media_plan = plan.with_secure(s_side, r_side, media, options, offer, media_plan,
                                              ctx, self._lister(r_side, listed))
            plans.append(media_plan)
        until = self.clock() + LEARNING_WINDOW
        for party in (sender, receiver):
            sides.refresh_learning(party, until, call)
        session = plan.session_plan(
            receiver, offered, options, tuple(plans), fallback, self.instance_id
        )
        count = len(offered.media)
        lite_now = [side.secure for side in receiver.medias[:count]]
        if secure.ice_lite(options, offer, session.media, lite_now):
            session = dataclasses.replace(session, ice_lite=True)
        out = plan.render_versioned(receiver, offered, options, session, render, call.rng)
        for side in receiver.medias[:count]:
            side.secure.ice_lite_self = session.ice_lite
            if side.ice_addresses and all(side is not s for s in listed):
                self.streams.drop_ice_addresses(side)  # no candidates to this party now
        if offer and options.ice_lite == "both":
            for side in sender.medias[:count]:
                side.secure.ice_lite_self = True  # lite towards the offerer too (measured)
        self._wire_secure(sender, receiver, count, offer, ctx)
        for s_side, r_side in zip(sender.medias[:count], receiver.medias[:count], strict=True):
            rtcp_media.wire_line(s_side, r_side, self.instance_id, call.rng)
            transcode_media.wire_line(s_side, r_side, self.make_chain, self.transcoders,
                                      self.dtx, call.rng)  # fmt: skip
        self.streams.updated((sender, receiver))  # peers, holds, flags may have changed
        if created:
            self.emit(CallCreated(call))
        kind = "offer" if offer else "answer"
        self.emit(CallUpdated(call, Exchange(kind, sender.tag, offered, out)))
        return out

    def _lister(self, side: MediaSide, listed: list[MediaSide]) -> secure.Listed:
        """What secure.ice_lines calls when it writes our candidates towards `side`'s party:
        sockets on every address of its logical interface (kept across re-offers)."""

        def addresses() -> list[tuple[str, tuple[int, int]] | None]:
            listed.append(side)
            return [
                None if a.rtp is None else (a.advertised, (a.rtp.local_port, a.rtp.local_port + 1))
                for a in self.streams.list_ice_addresses(side)
            ]

        return addresses

    def _wire_secure(
        self, sender: Party, receiver: Party, count: int, offer: bool, ctx: SecureContext
    ) -> None:
        """SRTP, DTLS-SRTP and ICE on the legs as this SDP left them: SDES keys once an answer
        settled them, DTLS and ICE as soon as our lines went to a party (order matters:
        SDES, then DTLS, which may replace it, then ICE on whatever transport is left)."""
        plane = self.streams.plane
        for party in (sender, receiver):
            for side in party.medias[:count]:
                if not offer:
                    sdes_media.wire_side(side, plane)
                dtls_media.wire_side(side, plane, ctx, offered_to=offer and party is receiver,
                                     offered_by=offer and party is sender)  # fmt: skip
                ice_media.wire_side(side, plane, ctx)

    # -- media sides --------------------------------------------------------------------------

    def _sides(
        self,
        sender: Party,
        receiver: Party,
        index: int,
        media: OfferedMedia,
        state: RequestState,
        offer: bool,
    ) -> tuple[MediaSide, MediaSide, str | None]:
        """Both parties' sides of m= line `index` after `media` from `sender`, with the SIP
        source address that replaces the SDP's (None: the SDP's address counts)."""
        new_sender_side = len(sender.medias) <= index
        while len(sender.medias) <= index:
            sender.medias.append(MediaSide(len(sender.medias) + 1, media.type, media.protocol))
        while len(receiver.medias) <= index:
            side = MediaSide(len(receiver.medias) + 1, media.type, media.protocol)
            side.ice_controlling = offer
            receiver.medias.append(side)
        s_side, r_side = sender.medias[index], receiver.medias[index]
        options = state.options
        if media.ice:
            # rtpengine's sdp_streams: ICE in the SDP means trust-address from this m= line on
            state.trust_address = True
        source = sides.source_address(state, self.sip_source)
        sides.direction_flags(s_side, r_side, media, source is not None)
        rtcp_media.apply_flag(s_side, r_side, options.generate_rtcp)
        if not media.rejected:
            self._ports(s_side, r_side, media, state, offer, source, new_sender_side)
            sides.link(s_side, r_side)
        else:
            # Rejecting the m= line frees both sides' ports (rtpengine's __disable_streams).
            for side in (s_side, r_side):
                if side.rtp is not None and side.rtp.local_port:
                    self.streams.release(side)
        sides.update_protocol(s_side, r_side, media, options, offer)
        s_side.type = r_side.type = media.type
        s_side.portless = (
            source or media.address, options.has("strict-source"), options.has("media-handover")
        )
        if offer and options.has("trickle-ICE"):
            r_side.trickle_ice = True  # __ice_offer, rejected lines included
        # __ice_offer: a new receiver follows the sender's ICE, ICE=remove clears it
        if offer and not r_side.initialized and options.ice != "remove":
            r_side.ice = s_side.ice
        if options.ice == "remove":
            r_side.ice = False
        s_side.sdp = media
        s_side.sdp_was_offer = offer
        if offer and options.has("reset"):
            # __media_init_from_flags clears both; the sender's is set again
            r_side.initialized = False
        s_side.initialized = True
        sides.set_peer(s_side, media, state, source, self._learning(options))
        return s_side, r_side, source

    def _learning(self, options: CallOptions) -> str:
        return options.endpoint_learning or self.endpoint_learning

    def _ports(
        self,
        s_side: MediaSide,
        r_side: MediaSide,
        media: OfferedMedia,
        state: RequestState,
        offer: bool,
        source: str | None,
        new_sender_side: bool,
    ) -> None:
        """rtcp-mux and ports of a line that is not rejected. The receiver-facing pair
        (advertised in this SDP's output) is allocated first, for the sender's endpoint
        (rtpengine's endpoint map): a new endpoint gets new ports, the same one (only its port
        compared when either address is zero) keeps them, and so does port-latching. (10.5's
        source also latches where it does not receive, but measured, a=sendonly/inactive from
        a new port gets new ports all the same.)"""
        options = state.options
        family = options.address_family or media.family
        # shared flags copied from each SDP to its sender's side (__media_init_from_flags;
        # ICE attributes included)
        s_side.unidirectional = options.has("unidirectional")
        s_side.asymmetric = options.has("asymmetric")
        s_side.ice = media.ice
        s_side.trickle_ice = media.ice_trickle  # a=ice-options:trickle (measured, §4.4)
        # __rtcp_mux_logic: mux already in use towards the receiver implies require
        r_side.mux_require = offer and (state.mux_require or r_side.rtcp_mux)
        if r_side.mux_require:
            # rtpengine sets flags->rtcp_mux_require: it stays for the request's later m= lines
            state.mux_require = True
        opts = state.rtcp_mux()
        sides.rtcp_mux_logic(s_side, r_side, media.rtcp_mux, opts, offer)
        # proto_num_ports: only the RTP port where RTCP is muxed under require (offer), or
        # towards an offerer that keeps mux (answer)
        mux_only = r_side.rtcp_mux and (r_side.mux_require or not offer)
        endpoint = (source or media.address or "", media.port)
        self._receiver_ports(r_side, endpoint, mux_only, options, family)
        if self.secure is not None and secure.wants_ice(
            media, options, offer, plan.receiver_sdp(r_side, offer)
        ):
            # our candidates will go to the receiver: every address of its side now, before the
            # sender's ports, in rtpengine's order (the SDP takes them from there)
            self.streams.list_ice_addresses(r_side)
        # The sender's own side gets ports only when first created (rtpengine's wildcard
        # endpoint map); created by a rejected line or released by a rejection, it waits
        # for an SDP sent to its party.
        if s_side.rtp is None and new_sender_side:
            # rtpengine's proto_num_ports: an offerer that keeps rtcp-mux under demux or
            # accept gets only its RTP port (the RTCP stream is a fallback, local port 0).
            single = offer and s_side.rtcp_mux and bool(opts & {"demux", "accept"})
            # `address family` is the receiver's (the offerer's own side keeps its SDP's
            # family: measured, sec_multi_ice_ipv6_side)
            itf = pick_interface(self.interfaces, options, False, media.family)
            self.streams.allocate(s_side, itf, single=single)
            s_side.endpoint = None  # filled by the first SDP sent to s_side's party

    def _receiver_ports(
        self, r_side: MediaSide, endpoint: tuple[str, int], mux_only: bool,
        options: CallOptions, family: str,
    ) -> None:
        """New ports towards the receiver unless its ports already serve `endpoint` (or
        port-latching keeps them)."""
        latch = options.has("port-latching")
        # (an endpoint map with too few ports gets new ones: __get_endpoint_map)
        # (a wildcard map takes the endpoint even under port-latching)
        same = r_side.rtp is not None and sides.same_endpoint(r_side, endpoint)
        if not (
            r_side.rtp is None or r_side.port == 0 or not (latch or same)
            or (r_side.rtcp_fallback and not mux_only)
        ):
            return
        if r_side.released_port and not (latch or same):
            # the rejected line's old ports stay bound to the old endpoint's map
            r_side.released_port = 0
        # that map, taken again, keeps its two ports even where one would do
        single = mux_only and not (r_side.released_port and r_side.released_pair)
        had_streams = r_side.rtp is not None
        itf = pick_interface(self.interfaces, options, True, family)
        self.streams.allocate(r_side, itf, single=single)
        if not had_streams and r_side.sdp is not None:
            # rtpengine's port-less streams kept what the party's SDP said (a line
            # it rejected: its address with port 0)
            sides.set_peer(
                r_side, r_side.sdp, RequestState.of(NO_OPTIONS), None, self.endpoint_learning
            )
        r_side.endpoint = endpoint
