"""What one offer/answer asks of the call model, read from the ng request by relay.ng.flags.

Frozen: the call model never changes the request. What rtpengine makes sticky for the rest of
one request (ICE forcing trust-address, rtcp-mux require) is kept by the call model itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def _no_codecs() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CallOptions:
    """The flags and keys of one request that the call model reads, normalised."""

    words: frozenset[str] = frozenset()
    """Plain flag words (`trust-address`, `port-latching`, `strict-source` …)."""
    trust_address: bool | None = None
    """The last of `trust-address` (True) / `SIP-source-address` (False); None: neither."""
    replace: frozenset[str] = frozenset()
    ice: str | None = None
    transport_protocol: str | None = None
    plain_transport: str | None = None
    """The requested plain RTP protocol (`transport-protocol` RTP/AVP or RTP/AVPF), else None."""
    address_family: str | None = None
    media_address: str | None = None
    received_from: tuple[str, str] | None = None
    label: str | None = None
    record_call: bool | None = None
    metadata: str | None = None
    rtcp_mux: frozenset[str] = frozenset()
    codec: Mapping[str, tuple[str, ...]] = field(default_factory=_no_codecs)
    direction: tuple[str, ...] = ()
    endpoint_learning: str | None = None
    via_branch: str | None = None
    sdes: tuple[str, ...] = ()
    """`SDES-<x>` flags / `SDES` list entries, without the prefix."""
    dtls: str | None = None
    """`DTLS=` value (passive, active, off, …)."""
    dtls_fingerprint: str | None = None
    """`DTLS-fingerprint=` hash name."""
    ice_lite: str | None = None
    """`ICE-lite=` value (forward, offer, backward, answer, both, off)."""
    osrtp: tuple[str, ...] = ()
    """`OSRTP-<x>` flags / `OSRTP` list entries, without the prefix."""
    generate_rtcp: bool | None = None
    """`generate-RTCP` word or key `on` (True), key `off` (False); None: not in the request."""

    ptime: int | None = None
    """`ptime` key: the answerer's packetisation (rtpengine repacketises to it)."""
    rev_ptime: int | None = None
    """`ptime-reverse` key: the offerer's packetisation."""

    def has(self, word: str) -> bool:
        return word in self.words

    @property
    def media_address_family(self) -> str:
        """"IP6" for an IPv6 `media-address`: rtpengine prints its own family (IN IP6 …)."""
        return "IP6" if self.media_address is not None and ":" in self.media_address else "IP4"


NO_OPTIONS = CallOptions()
"""A request that asks for nothing (defaults everywhere)."""
