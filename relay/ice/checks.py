"""ICE check-list bookkeeping (RFC 8445 §6.1.2, §14), pure: pairs, priorities, transactions."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

from relay.ice.stun import Address

TA = 0.05
"""Pacing: one new check per Ta = 50 ms (RFC 8445 §14.2)."""
RTO = 0.5
"""Initial retransmission timeout, doubled per retransmission (RFC 8489 §6.2.1)."""
RC = 7
"""Transmissions of one request (RFC 8489 §6.2.1 Rc)."""
RM = 16
"""After the last transmission, wait Rm × RTO before failing (RFC 8489 §6.2.1)."""
PRFLX_TYPE_PREFERENCE = 110


class PairState(enum.Enum):
    """RFC 8445 §6.1.2.6 (Frozen is not used: one data stream, every pair starts Waiting)."""

    WAITING = "waiting"
    IN_PROGRESS = "in-progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LocalSocket:
    """One of the stream's local sockets: an opaque key for the I/O edge, its address, component,
    and the priority of the host candidate advertised for it."""

    key: int
    address: Address
    component: int
    priority: int


@dataclass(slots=True)
class RemoteCandidate:
    """A remote candidate from SDP or learnt peer-reflexive (RFC 8445 §7.3.1.3)."""

    address: Address
    component: int
    priority: int
    foundation: str
    peer_reflexive: bool = False


@dataclass(slots=True)
class Transaction:
    """One outstanding check: when it was sent, and its retransmission schedule."""

    transaction_id: bytes
    request: bytes
    nominate: bool
    sent_at: float
    controlling: bool
    """The role the request carried (a 487 answer means: take the other one)."""
    consent: bool = False
    rto: float = RTO
    attempts: int = 1

    def next_due(self) -> float:
        """When to retransmit, or (after the last attempt) when to give up."""
        if self.attempts >= RC:
            return self.sent_at + RM * RTO
        return self.sent_at + self.rto


@dataclass(slots=True)
class Pair:
    """A candidate pair: a local socket and a remote candidate (RFC 8445 §6.1.2)."""

    local: LocalSocket
    remote: RemoteCandidate
    state: PairState = PairState.WAITING
    nominated: bool = False
    remote_nominated: bool = False
    transactions: list[Transaction] = field(default_factory=list)

    @property
    def component(self) -> int:
        return self.local.component

    def priority(self, controlling: bool) -> int:
        """RFC 8445 §6.1.2.3: 2^32·min(G,D) + 2·max(G,D) + (G > D)."""
        g, d = (
            (self.local.priority, self.remote.priority)
            if controlling
            else (self.remote.priority, self.local.priority)
        )
        return (min(g, d) << 32) + 2 * max(g, d) + (1 if g > d else 0)


def prflx_priority(component: int, local_preference: int = 65535) -> int:
    """PRIORITY sent in our checks: the priority a peer-reflexive candidate would have."""
    return (PRFLX_TYPE_PREFERENCE << 24) | (local_preference << 8) | (256 - component)


def same_family(a: str, b: str) -> bool:
    """Only pair candidates of one IP family (RFC 8445 §6.1.2.2); host names never pair."""
    try:
        return ipaddress.ip_address(a).version == ipaddress.ip_address(b).version
    except ValueError:
        return False


def sort_pairs(pairs: list[Pair], controlling: bool) -> None:
    """Highest priority first (RFC 8445 §6.1.2.3)."""
    pairs.sort(key=lambda p: p.priority(controlling), reverse=True)
