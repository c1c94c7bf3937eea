"""A sans-IO ICE agent over one media stream's local sockets (RFC 8445, RFC 7675).

Datagrams and `now` go in (`receive`, `handle_timer`), datagrams come out
(`datagrams_to_send`) with the time of the next timer (`next_timer`). The agent answers binding
requests (MESSAGE-INTEGRITY, FINGERPRINT), learns peer-reflexive candidates, runs paced checks
with retransmission as controlling or controlled, repairs role conflicts (487), nominates
(regular nomination, USE-CANDIDATE), keeps consent fresh, and exposes the selected pair per
component: the media plane sends only there. An ICE-lite agent only answers and accepts
nominations. Bad STUN is dropped and counted by `DropReason`; no exception escapes `receive`.
"""

from __future__ import annotations

import enum
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from aioice import stun as aioice_stun

from relay.ice import stun
from relay.ice.checks import (
    RC,
    TA,
    LocalSocket,
    Pair,
    PairState,
    RemoteCandidate,
    Transaction,
    prflx_priority,
    same_family,
    sort_pairs,
)
from relay.ice.sdp import Candidate
from relay.ice.stun import Address, DropReason

CONSENT_INTERVAL = 5.0
"""RFC 7675 §5.1: a consent check every 5 s, randomised to 4–6 s."""
CONSENT_TIMEOUT = 30.0
"""RFC 7675 §5.1: consent expires 30 s after the last answered check."""
NOMINATION_WAIT = 1.0
"""Regular nomination waits this long for better pairs once a component has a valid pair."""


class IceState(enum.Enum):
    """The agent's overall state, as `query` would show it."""

    NEW = "new"
    CHECKING = "checking"
    CONNECTED = "connected"
    FAILED = "failed"


class Inbound(enum.Enum):
    """What `receive` made of a datagram that was not dropped."""

    STUN = "stun"
    """An ICE message, consumed by the agent."""
    MEDIA = "media"
    """Not STUN (RFC 7983): RTP, RTCP or DTLS for the media plane."""


@dataclass(frozen=True, slots=True)
class Transmit:
    """A datagram to send from local socket `socket` to `addr`."""

    socket: int
    addr: Address
    data: bytes


class IceAgent:
    """One media stream's ICE agent; see the module docstring."""

    def __init__(
        self,
        *,
        ufrag: str,
        pwd: str,
        sockets: Sequence[LocalSocket],
        controlling: bool,
        tie_breaker: int,
        lite: bool = False,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.ufrag, self.pwd = ufrag, pwd
        self.sockets = {s.key: s for s in sockets}
        self.components = sorted({s.component for s in sockets})
        self.controlling = controlling and not lite
        self.tie_breaker = tie_breaker
        self.lite = lite
        self.remote_ufrag: str | None = None
        self.remote_pwd: str | None = None
        self.remote_lite = False
        self.remote_complete = False
        self.state = IceState.NEW
        self.drops: Counter[DropReason] = Counter()
        self.role_conflicts = 0
        self._random = random_bytes
        self._remotes: list[RemoteCandidate] = []
        self._pairs: list[Pair] = []
        self._triggered: list[Pair] = []
        self._outbox: list[Transmit] = []
        self._next_check = 0.0
        self._first_valid: dict[int, float] = {}
        self._nominating: dict[int, Pair] = {}
        self._selected: dict[int, Pair] = {}
        self._previous: dict[int, Pair] = {}
        """Pairs selected before an ICE restart; media uses them until a new nomination."""
        self._consent_ok: dict[int, float] = {}
        self._consent_next: dict[int, float] = {}

    # -- configuration (from SDP) -------------------------------------------------------------

    def set_remote(self, ufrag: str, pwd: str, *, lite: bool = False) -> None:
        """The peer's credentials; a changed ufrag is an ICE restart (RFC 8445 §9)."""
        if self.remote_ufrag is not None and ufrag != self.remote_ufrag:
            self._reset_checks()
        self.remote_ufrag, self.remote_pwd, self.remote_lite = ufrag, pwd, lite
        if lite and not self.lite:
            self.controlling = True  # RFC 8445 §6.1.1: a full agent controls a lite peer
        if self.state is IceState.NEW:
            self.state = IceState.CHECKING

    def add_remote_candidate(self, candidate: Candidate) -> None:
        """A remote candidate from SDP or trickled; non-UDP and host-name ones are ignored."""
        if candidate.transport.upper() != "UDP":
            return
        addr = (candidate.address, candidate.port)
        if self._find_remote(addr, candidate.component) is not None:
            return
        remote = RemoteCandidate(addr, candidate.component, candidate.priority,
                                 candidate.foundation)
        self._remotes.append(remote)
        for sock in self.sockets.values():
            if sock.component == remote.component and same_family(sock.address[0], addr[0]):
                self._pairs.append(Pair(sock, remote))
        sort_pairs(self._pairs, self.controlling)

    def add_remote_candidates(self, candidates: Iterable[Candidate]) -> None:
        for c in candidates:
            self.add_remote_candidate(c)

    def end_of_candidates(self) -> None:
        """`a=end-of-candidates`: the check list may now fail (RFC 8838 §8)."""
        self.remote_complete = True

    def adopt(self, socket: int, remote: Address, now: float) -> bool:
        """Select the pair (socket, remote) at once: the pair this stream had selected before
        the daemon restarted (relay.state.replay), so media flows before any check. Consent
        checks (RFC 7675) then confirm it like any selected pair, and drop it if the peer no
        longer answers. False when `socket` is not one of ours."""
        sock = self.sockets.get(socket)
        if sock is None:
            return False
        pair = next((p for p in self._pairs
                     if p.local.key == socket and p.remote.address == remote), None)  # fmt: skip
        if pair is None:
            candidate = self._find_remote(remote, sock.component)
            if candidate is None:
                candidate = RemoteCandidate(remote, sock.component, prflx_priority(sock.component),
                                            "prflx" + self._random(4).hex(), peer_reflexive=True)
                self._remotes.append(candidate)
            pair = Pair(sock, candidate)
            self._pairs.append(pair)
            sort_pairs(self._pairs, self.controlling)
        self._select(pair, now)
        return True

    def restart(self, ufrag: str, pwd: str) -> None:
        """Local ICE restart with new credentials; media stays on the old pair until renominated."""
        self.ufrag, self.pwd = ufrag, pwd
        self.remote_ufrag = self.remote_pwd = None
        self._reset_checks()

    def _reset_checks(self) -> None:
        for comp, pair in self._selected.items():
            pair.transactions.clear()
            self._previous[comp] = pair
        self._selected.clear()
        self._remotes.clear()
        self._pairs.clear()
        self._triggered.clear()
        self._nominating.clear()
        self._first_valid.clear()
        self.remote_complete = False
        self.state = IceState.CHECKING

    # -- what the media plane reads -----------------------------------------------------------

    def selected(self, component: int = 1) -> tuple[int, Address] | None:
        """(local socket key, remote address) of the nominated, validated pair, else None."""
        pair = self._selected.get(component) or self._previous.get(component)
        return (pair.local.key, pair.remote.address) if pair else None

    @property
    def restarting(self) -> bool:
        """An ICE restart is under way and media still uses the pairs selected before it."""
        return bool(self._previous)

    def is_selected_source(self, socket: int, source: Address) -> bool:
        """Whether media from `source` on `socket` comes over a selected pair."""
        selected = self.selected(self.sockets[socket].component)
        return selected == (socket, source)

    def datagrams_to_send(self) -> list[Transmit]:
        out, self._outbox = self._outbox, []
        return out

    # -- input --------------------------------------------------------------------------------

    def receive(
        self, data: bytes, socket: int, source: Address, now: float
    ) -> Inbound | DropReason:
        """One datagram from `source` on local socket `socket`."""
        if not stun.looks_like_stun(data):
            return Inbound.MEDIA
        parsed = stun.parse(data)
        if isinstance(parsed, DropReason):
            return self._drop(parsed)
        msg = parsed.message
        if msg.message_class == aioice_stun.Class.REQUEST:
            reason = self._on_request(msg, self.sockets[socket], source, now)
        elif msg.message_class in (aioice_stun.Class.RESPONSE, aioice_stun.Class.ERROR):
            reason = self._on_response(msg, socket, source, now)
        else:
            reason = None  # indications keep a NAT binding open; nothing to answer
        return self._drop(reason) if reason else Inbound.STUN

    def _drop(self, reason: DropReason) -> DropReason:
        self.drops[reason] += 1
        return reason

    def _on_request(
        self, msg: aioice_stun.Message, sock: LocalSocket, source: Address, now: float
    ) -> DropReason | None:
        reason = stun.request_ufrags(msg, self.ufrag) or stun.authenticate(msg, self.pwd)
        if reason:
            return reason
        if self._role_conflict(msg):
            self._send(sock.key, source, stun.role_conflict(msg.transaction_id, self.pwd))
            return None
        self._send(sock.key, source, stun.binding_success(msg.transaction_id, source, self.pwd))
        remote = self._find_remote(source, sock.component) or self._learn_prflx(msg, sock, source)
        pair = self._find_pair(sock.key, remote)
        if pair is None:
            pair = Pair(sock, remote)
            self._pairs.append(pair)
            sort_pairs(self._pairs, self.controlling)
        nominated = "USE-CANDIDATE" in msg.attributes and not self.controlling
        if self.lite:
            pair.state = PairState.SUCCEEDED
            if nominated:
                self._select(pair, now)
            if self._selected.get(sock.component) is pair:
                self._consent_ok[sock.component] = now  # a lite agent's only sign of consent
            return None
        if pair.state in (PairState.WAITING, PairState.FAILED) and pair not in self._triggered:
            pair.state = PairState.WAITING
            self._triggered.append(pair)  # triggered check (RFC 8445 §7.3.1.4)
        if nominated:
            pair.remote_nominated = True
            if pair.state is PairState.SUCCEEDED:
                self._select(pair, now)
        return None

    def _role_conflict(self, msg: aioice_stun.Message) -> bool:
        """RFC 8445 §7.3.1.1; True when we answer 487 (we keep our role)."""
        attrs = msg.attributes
        if self.controlling and "ICE-CONTROLLING" in attrs:
            self.role_conflicts += 1
            if self.tie_breaker >= attrs["ICE-CONTROLLING"]:
                return True
            self._switch_role(False)
        elif not self.controlling and not self.lite and "ICE-CONTROLLED" in attrs:
            self.role_conflicts += 1
            if self.tie_breaker < attrs["ICE-CONTROLLED"]:
                return True
            self._switch_role(True)
        return False

    def _switch_role(self, controlling: bool) -> None:
        self.controlling = controlling
        self._nominating.clear()
        sort_pairs(self._pairs, controlling)

    def _learn_prflx(
        self, msg: aioice_stun.Message, sock: LocalSocket, source: Address
    ) -> RemoteCandidate:
        """A peer-reflexive remote candidate from a check's source (RFC 8445 §7.3.1.3)."""
        priority = msg.attributes.get("PRIORITY", prflx_priority(sock.component))
        remote = RemoteCandidate(source, sock.component, int(priority),
                                 "prflx" + self._random(4).hex(), peer_reflexive=True)
        self._remotes.append(remote)
        return remote

    def _on_response(
        self, msg: aioice_stun.Message, socket: int, source: Address, now: float
    ) -> DropReason | None:
        found = self._find_transaction(msg.transaction_id)
        if found is None:
            return DropReason.UNMATCHED_RESPONSE
        pair, tx = found
        if self.remote_pwd is None:  # cannot happen: a restart drops the transactions
            return DropReason.NO_REMOTE_CREDENTIALS
        reason = stun.authenticate(msg, self.remote_pwd)
        if reason:
            return reason
        pair.transactions.remove(tx)
        if msg.message_class == aioice_stun.Class.ERROR:
            self._on_error(msg, pair, tx)
            return None
        if source != pair.remote.address or socket != pair.local.key:
            if not tx.consent:
                pair.state = PairState.FAILED  # not symmetric (RFC 8445 §7.2.5.2.1)
            return None
        if tx.consent or self._selected.get(pair.component) is pair:
            self._consent_ok[pair.component] = now
            return None
        pair.state = PairState.SUCCEEDED
        self._first_valid.setdefault(pair.component, now)
        if tx.nominate or pair.remote_nominated:
            self._select(pair, now)
        return None

    def _on_error(self, msg: aioice_stun.Message, pair: Pair, tx: Transaction) -> None:
        if msg.error_code == 487 and not tx.consent:
            # RFC 8445 §7.2.5.1: take the other role than the one the request carried
            self.role_conflicts += 1
            self._switch_role(not tx.controlling)
            pair.state = PairState.WAITING
            self._triggered.append(pair)
        elif not tx.consent:
            pair.state = PairState.FAILED

    # -- timers -------------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Retransmit, start the next paced check, nominate, and check consent."""
        self._retransmit(now)
        if not self.lite and self.remote_pwd is not None and now >= self._next_check:
            if self._start_next_check(now):
                self._next_check = now + TA
        self._maybe_nominate(now)
        self._consent(now)
        self._update_state()

    def next_timer(self) -> float | None:
        """The earliest time `handle_timer` has something to do."""
        times = [tx.next_due() for p in self._pairs for tx in p.transactions]
        times += [tx.next_due() for p in self._selected.values() for tx in p.transactions]
        if self.remote_pwd is not None and not self.lite and self._has_waiting():
            times.append(self._next_check)
        times += [self._nomination_due(c) for c in self.components if self._may_nominate(c)]
        for comp in {*self._selected, *self._previous}:
            times.append(self._consent_ok[comp] + CONSENT_TIMEOUT)
        if not self.lite and self.remote_pwd is not None:
            times += [self._consent_next[comp] for comp in self._selected]
        return min(times) if times else None

    def _has_waiting(self) -> bool:
        return bool(self._triggered) or any(p.state is PairState.WAITING for p in self._pairs)

    def _retransmit(self, now: float) -> None:
        pairs = {id(p): p for p in [*self._pairs, *self._selected.values()]}
        for pair in pairs.values():
            for tx in list(pair.transactions):
                if now < tx.next_due():
                    continue
                if tx.attempts >= RC:
                    pair.transactions.remove(tx)
                    if not tx.consent:
                        pair.state = PairState.FAILED
                    if self._nominating.get(pair.component) is pair:
                        del self._nominating[pair.component]  # nominate another valid pair
                    continue
                tx.attempts += 1
                tx.sent_at, tx.rto = now, tx.rto * 2
                self._send(pair.local.key, pair.remote.address, tx.request)

    def _start_next_check(self, now: float) -> bool:
        """Send one check: a triggered one first, else the best Waiting pair (RFC 8445 §6.1.4.2)."""
        pair = self._triggered.pop(0) if self._triggered else next(
            (p for p in self._pairs if p.state is PairState.WAITING), None
        )
        if pair is None:
            return False
        nominate = self._nominating.get(pair.component) is pair
        self._check(pair, now, nominate=nominate)
        return True

    def _check(self, pair: Pair, now: float, *, nominate: bool, consent: bool = False) -> None:
        assert self.remote_ufrag is not None and self.remote_pwd is not None
        tid = self._random(12)
        request = stun.binding_request(
            tid,
            f"{self.remote_ufrag}:{self.ufrag}",
            prflx_priority(pair.component),
            self.controlling,
            self.tie_breaker,
            nominate,
            self.remote_pwd,
        )
        if not consent:
            pair.state = PairState.IN_PROGRESS
        pair.transactions.append(
            Transaction(tid, request, nominate, now, controlling=self.controlling, consent=consent)
        )
        self._send(pair.local.key, pair.remote.address, request)

    def _maybe_nominate(self, now: float) -> None:
        """Regular nomination (RFC 8445 §8.1.1): re-check the best valid pair with USE-CANDIDATE."""
        for comp in self.components:
            if not self._may_nominate(comp):
                continue
            if now < self._nomination_due(comp):
                continue
            best = next(p for p in self._pairs
                        if p.component == comp and p.state is PairState.SUCCEEDED)
            self._nominating[comp] = best
            best.state = PairState.WAITING
            self._triggered.insert(0, best)

    def _nomination_due(self, comp: int) -> float:
        """At once if no better pair is still pending, else NOMINATION_WAIT after the first."""
        comp_pairs = [p for p in self._pairs if p.component == comp]
        best = next(p for p in comp_pairs if p.state is PairState.SUCCEEDED)
        better_pending = any(
            p.state in (PairState.WAITING, PairState.IN_PROGRESS)
            for p in comp_pairs[: comp_pairs.index(best)]
        )
        first = self._first_valid.get(comp, 0.0)
        return first + NOMINATION_WAIT if better_pending else first

    def _may_nominate(self, comp: int) -> bool:
        """Controlling, nothing selected or being nominated, and a valid pair to nominate."""
        return (
            self.controlling
            and not self.lite
            and comp not in self._selected
            and comp not in self._nominating
            and any(p.component == comp and p.state is PairState.SUCCEEDED for p in self._pairs)
        )

    def _select(self, pair: Pair, now: float) -> None:
        pair.nominated = True
        pair.state = PairState.SUCCEEDED
        self._selected[pair.component] = pair
        self._previous.pop(pair.component, None)
        self._consent_ok[pair.component] = now
        self._consent_next[pair.component] = now + self._consent_interval()
        # stop checking this component (RFC 8445 §8.1.2)
        self._triggered = [p for p in self._triggered if p.component != pair.component]
        for p in self._pairs:
            if p.component == pair.component and p.state is PairState.WAITING:
                p.state = PairState.FAILED
        self._update_state()

    def _consent_interval(self) -> float:
        return CONSENT_INTERVAL * (0.8 + 0.4 * self._random(1)[0] / 255)

    def _consent(self, now: float) -> None:
        """RFC 7675: check the selected pair every ~5 s; drop it after 30 s without answer."""
        for comp in list(self._previous):
            if now >= self._consent_ok[comp] + CONSENT_TIMEOUT:
                del self._previous[comp]
        for comp, pair in list(self._selected.items()):
            if now >= self._consent_ok[comp] + CONSENT_TIMEOUT:
                del self._selected[comp]
                pair.transactions.clear()
                self.state = IceState.FAILED
            elif not self.lite and self.remote_pwd is not None and now >= self._consent_next[comp]:
                self._consent_next[comp] = now + self._consent_interval()
                self._check(pair, now, nominate=False, consent=True)

    def _update_state(self) -> None:
        if self.state is IceState.FAILED:
            return
        if self._selected and all(c in self._selected for c in self.components):
            self.state = IceState.CONNECTED
        elif (
            self.remote_complete
            and self._pairs
            and all(p.state is PairState.FAILED for p in self._pairs)
            and not self._triggered
        ):
            self.state = IceState.FAILED

    # -- lookups ------------------------------------------------------------------------------

    def _send(self, socket: int, addr: Address, data: bytes) -> None:
        self._outbox.append(Transmit(socket, addr, data))

    def _find_remote(self, addr: Address, component: int) -> RemoteCandidate | None:
        return next(
            (r for r in self._remotes if r.address == addr and r.component == component), None
        )

    def _find_pair(self, socket: int, remote: RemoteCandidate) -> Pair | None:
        return next(
            (p for p in self._pairs if p.local.key == socket and p.remote is remote), None
        )

    def _find_transaction(self, tid: bytes) -> tuple[Pair, Transaction] | None:
        for pair in [*self._pairs, *self._selected.values()]:
            for tx in pair.transactions:
                if tx.transaction_id == tid:
                    return pair, tx
        return None

