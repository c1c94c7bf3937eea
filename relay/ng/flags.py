"""ng offer/answer/delete dictionary keys and `flags` words → typed `NgFlags` (pure), and from
those the frozen `CallOptions` the call model reads (`call_options`).

Covers every key Kamailio 5.6's rtpengine module sends (docs/spec/ng-protocol.md §5), flag words
of rtpengine 10.5 (§2.4). Unknown keys and words are kept in `unknown` and otherwise ignored,
as rtpengine does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from relay.call.options import CallOptions

# Plain words rtpengine 10.5 understands (spaces already turned into hyphens).
KNOWN_WORDS = frozenset(
    """trust-address SIP-source-address asymmetric no-redis-update unidirectional strict-source
    media-handover reset all egress SIPREC fragment port-latching no-port-latching generate-mid
    strip-extmap record-call debug no-rtcp-attribute full-rtcp-attribute generate-RTCP trickle-ICE
    ICE-reject reject-ICE loop-protect original-sendrecv always-transcode asymmetric-codecs
    symmetric-codecs reorder-codecs reuse-codecs no-codec-renegotiation single-codec
    allow-transcoding inject-DTMF detect-DTMF pad-crypto passthrough no-passthrough
    no-jitter-buffer pierce-NAT NAT-wait RTCP-mirror fatal to-tag directional""".split()
)

_LEARNING = {"off", "immediate", "delayed", "heuristic"}

PLAIN_TRANSPORTS = frozenset({"RTP/AVP", "RTP/AVPF"})
"""`transport-protocol` values rtpvault carries out itself."""


@dataclass(slots=True)
class NgFlags:
    """What an offer/answer/delete request asks for, keys normalised."""

    words: set[str] = field(default_factory=set)
    trust_address: bool | None = None
    """The last of `trust-address` (True) / `SIP-source-address` (False) in the flags list."""
    replace: set[str] = field(default_factory=set)
    ice: str | None = None
    transport_protocol: str | None = None
    address_family: str | None = None
    media_address: str | None = None
    received_from: tuple[str, str] | None = None
    label: str | None = None
    set_label: str | None = None
    record_call: bool | None = None
    metadata: str | None = None
    rtcp_mux: set[str] = field(default_factory=set)
    codec: dict[str, list[str]] = field(default_factory=dict)
    sdes: list[str] = field(default_factory=list)
    dtls: str | None = None
    dtls_fingerprint: str | None = None
    ice_lite: str | None = None
    osrtp: list[str] = field(default_factory=list)
    direction: list[str] = field(default_factory=list)
    endpoint_learning: str | None = None
    tos: int | None = None
    ptime: int | None = None
    rev_ptime: int | None = None
    via_branch: str | None = None
    delete_delay: int | None = None
    generate_rtcp: bool | None = None
    unknown: list[str] = field(default_factory=list)

    def has(self, word: str) -> bool:
        return word in self.words

    @property
    def plain_transport(self) -> str | None:
        """The requested plain RTP protocol; rtpengine ignores `accept` and unknown names here
        (the m= line keeps its protocol), and SRTP ones are refused before this is asked."""
        tp = self.transport_protocol
        return tp if tp in PLAIN_TRANSPORTS else None

    @property
    def media_address_family(self) -> str:
        """"IP6" for an IPv6 `media-address`: rtpengine prints its own family (IN IP6 …)."""
        return "IP6" if self.media_address is not None and ":" in self.media_address else "IP4"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


_PREFIXES: tuple[tuple[str, str], ...] = (
    ("codec-strip-", "strip"),
    ("codec-offer-", "offer"),
    ("codec-except-", "except"),
    ("codec-transcode-", "transcode"),
    ("transcode-", "transcode"),
    ("codec-mask-", "mask"),
    ("codec-set-", "set"),
    ("codec-accept-", "accept"),
    ("codec-consume-", "consume"),
)


def _word(flags: NgFlags, raw: str) -> None:
    word = raw.replace(" ", "-")
    for prefix, kind in _PREFIXES:
        if word.startswith(prefix) and len(word) > len(prefix):
            flags.codec.setdefault(kind, []).append(word[len(prefix) :])
            return
    # `replace-origin` and the like as words do nothing in rtpengine 10.5 (measured: o=, the
    # session c= and the username stay); only the `replace` list replaces. Kamailio's module
    # turns its `replace-…` flags into that list, so it never sends these words.
    if word.startswith("SDES-") and len(word) > 5:
        flags.sdes.append(word[5:])
    elif word.startswith("OSRTP-") and len(word) > 6:
        flags.osrtp.append(word[6:])
    elif word.startswith("endpoint-learning-") and word[18:] in _LEARNING:
        flags.endpoint_learning = word[18:]
    elif word.startswith("from-tags-") or word.startswith("T38-"):
        pass
    elif word in ("generate-RTCP", "generate-rtcp"):
        flags.words.add("generate-RTCP")
        flags.generate_rtcp = True
    elif word in KNOWN_WORDS:
        flags.words.add(word)
        if word in ("trust-address", "SIP-source-address"):
            flags.trust_address = word == "trust-address"
        if word == "record-call":
            flags.record_call = True
    else:
        flags.unknown.append(word)


_KEY_ALIASES = {
    "SDP": "sdp",
    "call ID": "call-id",
    "call-ID": "call-id",
    "call id": "call-id",
    "record call": "record-call",
    "delete delay": "delete-delay",
    "from-label": "label",
    "to-label": "set-label",
    "T38": "T.38",
    "transport protocol": "transport-protocol",
    "address family": "address-family",
    "media address": "media-address",
    "received from": "received-from",
    "ice": "ICE",
    "RTCP-mux": "rtcp-mux",
    "sdes": "SDES",
    "osrtp": "OSRTP",
    "dtls": "DTLS",
    "endpoint learning": "endpoint-learning",
    "XMLRPC-callback": "xmlrpc-callback",
    "generate RTCP": "generate-RTCP",
    "generate rtcp": "generate-RTCP",
    "generate-rtcp": "generate-RTCP",
}


def parse_flags(body: dict[str, Any]) -> NgFlags:
    """Read the option keys of one ng request."""
    f = NgFlags()
    for key, value in body.items():
        key = _KEY_ALIASES.get(key, key)
        handler = _HANDLERS.get(key)
        if handler is not None:
            handler(f, value)
    return f


def _h_flags(f: NgFlags, v: Any) -> None:
    for w in _strings(v):
        _word(f, w)


def _h_replace(f: NgFlags, v: Any) -> None:
    # rtpengine hyphenates first, then matches; OpenSIPS sends "SDP version", "session name" and
    # "zero address" with spaces.
    for w in _strings(v):
        w = w.replace(" ", "-")
        f.replace.add("sdp-version" if w == "SDP-version" else w)


def _h_received_from(f: NgFlags, v: Any) -> None:
    items = _strings(v)
    if len(items) == 2:
        f.received_from = (items[0], items[1])


def _h_media_address(f: NgFlags, v: Any) -> None:
    # rtpengine 10.5 parses the value as an address; anything else is ignored (the interface's
    # advertised address stays in the SDP).
    s = _str(v)
    if s is None:
        return
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return
    f.media_address = s


def _h_record(f: NgFlags, v: Any) -> None:
    s = _str(v)
    # rtpengine 10.5 takes exactly yes/on and no/off; anything else (YES, maybe) is ignored
    # (docs/spec/recording.md §5.1)
    if s in _RECORD_VALUES:
        f.record_call = _RECORD_VALUES[s]


_RECORD_VALUES = {"yes": True, "on": True, "no": False, "off": False}


def _h_generate_rtcp(f: NgFlags, v: Any) -> None:
    # rtpengine 10.5 takes exactly `on` and `off` (docs/spec/ng-protocol.md §8)
    s = _str(v)
    if s in ("on", "off"):
        f.generate_rtcp = s == "on"


def _h_codec(f: NgFlags, v: Any) -> None:
    if isinstance(v, dict):
        for kind, items in v.items():
            f.codec.setdefault(kind, []).extend(_strings(items))


def _h_learning(f: NgFlags, v: Any) -> None:
    # rtpengine 10.5 reads only a list here; a plain string is ignored (docs/spec/sdp.md §4).
    for w in _strings(v):
        if w in _LEARNING:
            f.endpoint_learning = w


def _setter(attr: str, conv: Any = _str) -> Any:
    def handler(f: NgFlags, v: Any) -> None:
        value = conv(v)
        if value is not None:
            setattr(f, attr, value)

    return handler


def _adder(attr: str) -> Any:
    def handler(f: NgFlags, v: Any) -> None:
        target = getattr(f, attr)
        if isinstance(target, set):
            target.update(_strings(v))
        else:
            target.extend(_strings(v))

    return handler


_HANDLERS: dict[str, Any] = {
    "flags": _h_flags,
    "replace": _h_replace,
    "ICE": _setter("ice"),
    "transport-protocol": _setter("transport_protocol"),
    "address-family": _setter("address_family"),
    "media-address": _h_media_address,
    "received-from": _h_received_from,
    "label": _setter("label"),
    "set-label": _setter("set_label"),
    "record-call": _h_record,
    "metadata": _setter("metadata"),
    "rtcp-mux": _adder("rtcp_mux"),
    "codec": _h_codec,
    "SDES": _adder("sdes"),
    "OSRTP": _adder("osrtp"),
    "DTLS": _setter("dtls"),
    "DTLS-fingerprint": _setter("dtls_fingerprint"),
    "ICE-lite": _setter("ice_lite"),
    "direction": _adder("direction"),
    "endpoint-learning": _h_learning,
    "TOS": _setter("tos", _int),
    "tos": _setter("tos", _int),
    "ptime": _setter("ptime", _int),
    "ptime-reverse": _setter("rev_ptime", _int),
    "ptime reverse": _setter("rev_ptime", _int),
    "reverse ptime": _setter("rev_ptime", _int),
    "reverse-ptime": _setter("rev_ptime", _int),
    "via-branch": _setter("via_branch"),
    "delete-delay": _setter("delete_delay", _int),
    "generate-RTCP": _h_generate_rtcp,
}


_NO_CODECS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({})


def call_options(flags: NgFlags) -> CallOptions:
    """What the call model needs of `flags`, frozen (the call model never changes a request)."""
    codec = flags.codec
    return CallOptions(
        words=frozenset(flags.words),
        trust_address=flags.trust_address,
        replace=frozenset(flags.replace),
        ice=flags.ice,
        transport_protocol=flags.transport_protocol,
        plain_transport=flags.plain_transport,
        address_family=flags.address_family,
        media_address=flags.media_address,
        received_from=flags.received_from,
        label=flags.label,
        record_call=flags.record_call,
        metadata=flags.metadata,
        rtcp_mux=frozenset(flags.rtcp_mux),
        codec=MappingProxyType({k: tuple(v) for k, v in codec.items()}) if codec else _NO_CODECS,
        direction=tuple(flags.direction),
        endpoint_learning=flags.endpoint_learning,
        via_branch=flags.via_branch,
        sdes=tuple(flags.sdes),
        dtls=flags.dtls,
        dtls_fingerprint=flags.dtls_fingerprint,
        ice_lite=flags.ice_lite,
        osrtp=tuple(flags.osrtp),
        generate_rtcp=flags.generate_rtcp,
        ptime=flags.ptime,
        rev_ptime=flags.rev_ptime,
    )
