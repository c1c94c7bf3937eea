"""The end of parties and calls: which party a delete names, branch deletes, delete-delay and
timeouts (the sweep), and the totals `statistics` reports (rtpengine 10.5's call_delete_branch
and call timer; docs/spec/ng-protocol.md §2.5, docs/media.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from relay.call.events import CallClosed, CallEvent, CallUpdated
from relay.call.model import Call, Party
from relay.call.streams import StreamAllocator
from relay.media.secure import drop_counts

logger = logging.getLogger("relay.calls")  # its log lines keep the name (docs/operations.md)


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
    secure_drops: dict[str, int] = field(default_factory=dict)
    """rtpvault: SRTP/DTLS/ICE drops of ended calls by cause (relay.media.secure DROP_CAUSES)."""


_REASON_FIELDS = {"silent-timeout": "silent_timeout", "final-timeout": "final_timeout",
                  "offer-timeout": "offer_timeout"}  # fmt: skip


def _ignore(count: int) -> None:
    pass


class Teardown:
    """Deletes parties and calls of `calls`, now or after a delay, and counts what ended."""

    def __init__(
        self,
        calls: dict[str, Call],
        streams: StreamAllocator,
        emit: Callable[[CallEvent], None],
        wallclock: Callable[[], float],
        delete_delay: int,
    ) -> None:
        self.calls = calls
        self.streams = streams
        self.emit = emit
        self.wallclock = wallclock
        self.delete_delay = delete_delay
        self.totals = Totals()
        self._gone: dict[str, set[int]] = {}
        """Per call, ids of parties a branch delete destroyed (kept as records, as rtpengine)."""
        self._branch_deadlines: dict[str, list[tuple[Party, float]]] = {}
        """Per call, parties a delete with a delay destroys later (rtpengine's `ml->deleted`)."""
        self.counted: Callable[[int], None] = _ignore
        """Told how many calls are left each time one ends, however it ends (delete, delay,
        timeout, terminate, a refused offer): the daemon-wide session count (relay.limits)."""

    # -- which party ------------------------------------------------------------------------

    def live_party(self, call: Call, tag: str | None) -> Party | None:
        """The party a tag names, unless a delete has already destroyed it."""
        party = call.parties.get(tag) if tag else None
        if party is None or id(party) in self._gone.get(call.call_id, ()):
            return None
        return party

    def by_branch(self, call: Call, branch: str | None) -> Party | None:
        """The newest live party with this via-branch."""
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
            found = self.by_branch(call, via_branch)
            if found is not None:
                return found
        found = self.live_party(call, to_tag or from_tag)
        if found is not None:
            return found
        found = self.by_branch(call, via_branch)
        if found is not None:
            return found
        if to_tag:
            offerer = self.live_party(call, from_tag)
            if offerer is not None:
                subs = offerer.subscriptions()
                if len(subs) == 1 and not subs[0].tag:
                    return offerer
        return None

    # -- deleting ----------------------------------------------------------------------------

    def delete_call(self, call: Call, delay: int | None) -> None:
        delay = self.delete_delay if delay is None or delay < 0 else delay
        _stop_players(call.all_parties())  # at once, even when the call stays for a delay
        if delay == 0:
            self.destroy(call, "regular")
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
        _stop_players(doomed)
        if self._ends_call(call, doomed):
            self.delete_call(call, delay)
            return
        if delay > 0:
            self._branch_deadlines.setdefault(call.call_id, []).append(
                (party, self.wallclock() + delay)
            )
            return
        gone = self._gone.setdefault(call.call_id, set())
        for p in doomed:
            gone.add(id(p))
            for side in p.medias:
                self.streams.release(side)
        self.emit(CallUpdated(call))

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

    def _count(self, call: Call, reason: str | None) -> None:
        t = self.totals
        if reason is not None:
            self._count_ways(call)
        for stream in call.streams():
            t.packets += stream.packets
            t.bytes += stream.bytes
            t.errors += stream.errors
            t.dropped += stream.dropped
            if stream.transport is not None or stream.retired_drops is not None:
                for cause, n in drop_counts(stream):
                    t.secure_drops[cause] = t.secure_drops.get(cause, 0) + n
        if reason is not None:
            duration = max(0.0, self.wallclock() - call.created)
            t.managed += 1
            t.call_duration += duration
            t.call_duration2 += duration * duration
            field = _REASON_FIELDS.get(reason, reason)
            if hasattr(t, field):
                setattr(t, field, getattr(t, field) + 1)

    def destroy(self, call: Call, reason: str | None) -> None:
        """End `call` now: gone from `calls` and counted at once; its sockets, log line and
        `CallClosed` (None `reason`: a call that never was, no event) after the ng reply."""
        if self.calls.get(call.call_id) is not call:
            return
        _stop_players(call.all_parties())
        del self.calls[call.call_id]
        self.counted(len(self.calls))
        self._gone.pop(call.call_id, None)
        self._branch_deadlines.pop(call.call_id, None)
        self._count(call, reason)
        sides = [side for party in call.all_parties() for side in party.medias]

        def teardown() -> None:
            self.streams.close_sides(sides)
            if reason is not None:
                logger.info("Call closed (%s)", reason, extra={"call_id": call.call_id})
                self.emit(CallClosed(call, reason))
            for party in call.all_parties():  # partners point at each other: see close_sides
                party.other = None
                party.former.clear()

        # The call is gone from `calls` and counted; its sockets, log line and listeners wait
        # until the ng reply is sent (see NgControlServer.defer) — before the next request.
        self.streams.defer(teardown)

    # -- timers ------------------------------------------------------------------------------

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
            reason = expired(call, now, timeout, silent_timeout, final_timeout, offer_timeout)
            if reason:
                self.destroy(call, reason)

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


def expired(
    call: Call, now: float, timeout: int, silent: int, final: int, offer_timeout: int
) -> str | None:
    """Why `call` ends at `now`, or None while it lives."""
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


def _stop_players(parties: list[Party]) -> None:
    """`delete` stops a party's `play media` at once, as rtpengine 10.5 does (its media goes on
    being forwarded during the delete delay; docs/spec/ng-protocol.md §9.3)."""
    for party in parties:
        if party.player is not None:
            party.player.stop()
