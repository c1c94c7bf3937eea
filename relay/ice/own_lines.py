"""The ICE lines rtpengine 10.5 writes for its own side of a media section, pure.

Measured on the real daemon (docs/spec/sdp.md §1.9a): `a=ice-ufrag` (8 chars), `a=ice-pwd`
(26 chars), both from [A-Za-z0-9]; `a=ice-options:trickle` with the `trickle-ICE` flag; then
the candidates of component 1 on every interface in interface order, then those of component 2;
`a=end-of-candidates` last with trickle (or when the input had it, under `ICE=force`).
Priority = type preference << 24 | local preference << 8 | (256 − component), as 32 bits.
"""

from __future__ import annotations

import enum
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass

from relay.ice.sdp import Candidate, IcePwd, IceUfrag, render_attribute

ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
"""What rtpengine 10.5 draws ufrag and pwd from (measured: 125 offers, 4250 characters)."""
UFRAG_LENGTH = 8
PWD_LENGTH = 26
FOUNDATION_LENGTH = 16


class CandidateKind(enum.Enum):
    """How rtpengine writes its own candidates, by ICE option."""

    HOST = "host"
    """`ICE=default|force`, or `ICE=optional` when the input had no ICE: type pref 126."""
    OPTIONAL = "optional"
    """`ICE=optional` with ICE in the input: type pref 125, local pref −index
    (docs/spec/sdp.md §1.9a)."""
    RELAY = "relay"
    """`ICE=force-relay`: `typ relay`, type pref 0, raddr/rport = the candidate's own."""


_TYPE_PREFERENCE = {CandidateKind.HOST: 126, CandidateKind.OPTIONAL: 125, CandidateKind.RELAY: 0}


@dataclass(frozen=True, slots=True)
class LocalInterface:
    """One logical-interface address: its foundation, advertised address, a port per component."""

    foundation: str
    address: str
    ports: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class OwnIce:
    """What decides rtpengine's own ICE lines for one media section."""

    ufrag: str
    pwd: str
    interfaces: tuple[LocalInterface, ...]
    components: int = 2
    """1 when RTCP is muxed without a fallback port (`rtcp-mux: require`), else 2."""
    kind: CandidateKind = CandidateKind.HOST
    credentials: bool = True
    """False when rtpengine keeps the offerer's ufrag/pwd (`optional`/`force-relay` with ICE)."""
    trickle: bool = False
    end_of_candidates: bool = False


def rtpengine_priority(type_preference: int, local_preference: int, component: int) -> int:
    """rtpengine's candidate priority; its bits are ORed, so a negative local pref overflows."""
    return ((type_preference << 24) | (local_preference << 8) | (256 - component)) & 0xFFFFFFFF


def local_preference(kind: CandidateKind, index: int) -> int:
    """Local preference of the `index`-th interface address (0 first)."""
    return -index if kind is CandidateKind.OPTIONAL else 65535 - index


def own_candidates(own: OwnIce) -> list[Candidate]:
    """rtpengine's candidates in its order: component-major, then interface order."""
    out: list[Candidate] = []
    type_pref = _TYPE_PREFERENCE[own.kind]
    relay = own.kind is CandidateKind.RELAY
    for component in range(1, own.components + 1):
        for index, iface in enumerate(own.interfaces):
            port = iface.ports[component - 1]
            out.append(
                Candidate(
                    foundation=iface.foundation,
                    component=component,
                    transport="UDP",
                    priority=rtpengine_priority(
                        type_pref, local_preference(own.kind, index), component
                    ),
                    address=iface.address,
                    port=port,
                    typ="relay" if relay else "host",
                    raddr=iface.address if relay else None,
                    rport=port if relay else None,
                )
            )
    return out


def render_own_ice(own: OwnIce) -> list[str]:
    """rtpengine's own ICE lines for one media section, in its order (no CRLF)."""
    lines: list[str] = []
    if own.credentials:
        lines += [render_attribute(IceUfrag(own.ufrag)), render_attribute(IcePwd(own.pwd))]
        if own.trickle:
            lines.append("a=ice-options:trickle")
    lines += [render_attribute(c) for c in own_candidates(own)]
    if own.trickle or own.end_of_candidates:
        lines.append("a=end-of-candidates")
    return lines


def new_credentials(rng: random.Random) -> tuple[str, str]:
    """A fresh (ufrag, pwd) as rtpengine draws them; pass `random.SystemRandom()` in production."""
    ufrag = "".join(rng.choice(ALPHABET) for _ in range(UFRAG_LENGTH))
    pwd = "".join(rng.choice(ALPHABET) for _ in range(PWD_LENGTH))
    return ufrag, pwd


def new_foundation(rng: random.Random) -> str:
    """A per-interface foundation (16 characters, fixed for the daemon's life)."""
    return "".join(rng.choice(ALPHABET) for _ in range(FOUNDATION_LENGTH))


def interfaces_from(
    foundations: Sequence[str], addresses: Sequence[str], ports: Sequence[tuple[int, ...]]
) -> tuple[LocalInterface, ...]:
    """Zip parallel per-interface lists into `LocalInterface`s."""
    return tuple(LocalInterface(f, a, p) for f, a, p in zip(foundations, addresses, ports,
                                                             strict=True))
