"""ICE SDP attributes (RFC 8839 §5): parse and render, pure.

`parse_attribute("a=candidate:…")` returns one frozen value per attribute kind;
`render_attribute(value)` gives the exact line back (without CRLF). Candidate extensions
(`tcptype`, `generation`, `network-id`, …) are kept as (name, value) pairs in their input order,
so a candidate re-renders byte for byte. Bad input raises `IceSdpError` naming the field.

Hand-written: no maintained Python library parses RFC 8839 attributes on their own (aioice's
`Candidate.from_sdp` drops unknown extensions and their order, and has no ufrag/pwd checks).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from relay.sdp.errors import SdpError

_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_DIGITS = re.compile(r"[0-9]+")
# RFC 8839 says ≤ 2^31−1, but rtpengine's ICE=optional writes more (docs/spec/sdp.md §1.9a)
_MAX_PRIORITY = 2**32 - 1


class IceSdpError(SdpError):
    """An ICE attribute that does not follow RFC 8839 (the peer's fault)."""


@dataclass(frozen=True, slots=True)
class IceUfrag:
    """`a=ice-ufrag` (RFC 8839 §5.4): 4–256 ice-chars."""

    value: str


@dataclass(frozen=True, slots=True)
class IcePwd:
    """`a=ice-pwd` (RFC 8839 §5.4): 22–256 ice-chars."""

    value: str


@dataclass(frozen=True, slots=True)
class IceOptions:
    """`a=ice-options` (RFC 8839 §5.6): option tags, e.g. `trickle`, `ice2`, in order."""

    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IceLite:
    """`a=ice-lite` (RFC 8839 §5.3), session level."""


@dataclass(frozen=True, slots=True)
class EndOfCandidates:
    """`a=end-of-candidates` (RFC 8840 §8.2)."""


@dataclass(frozen=True, slots=True)
class RemoteCandidate:
    """One (component, address, port) of `a=remote-candidates`."""

    component: int
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class RemoteCandidates:
    """`a=remote-candidates` (RFC 8839 §5.2)."""

    candidates: tuple[RemoteCandidate, ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    """`a=candidate` (RFC 8839 §5.1); `extensions` keeps every name/value pair in order."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    typ: str
    raddr: str | None = None
    rport: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    def extension(self, name: str) -> str | None:
        """The first value of extension `name` (e.g. `tcptype`, `generation`), else None."""
        return next((v for k, v in self.extensions if k == name), None)

    @property
    def tcptype(self) -> str | None:
        return self.extension("tcptype")

    @property
    def generation(self) -> int | None:
        value = self.extension("generation")
        return int(value) if value is not None and value.isdigit() else None


IceAttribute = (
    IceUfrag | IcePwd | IceOptions | IceLite | EndOfCandidates | RemoteCandidates | Candidate
)


def _fail(field: str, value: str, expected: str) -> IceSdpError:
    return IceSdpError(f"ICE {field} {value!r}: expected {expected}")


def _ice_chars(field: str, value: str, low: int) -> str:
    if not _ICE_CHARS.fullmatch(value) or not low <= len(value) <= 256:
        raise _fail(field, value, f"{low}-256 characters of [A-Za-z0-9+/]")
    return value


def _number(field: str, value: str, low: int, high: int) -> int:
    if not _DIGITS.fullmatch(value) or len(value) > 10 or not low <= int(value) <= high:
        raise _fail(field, value, f"a number {low}-{high}")
    return int(value)


def _token(field: str, value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise _fail(field, value, "a token")
    return value


def _address(field: str, value: str) -> str:
    # IPv4, IPv6, FQDN or an mDNS name (RFC 8839 §5.1 connection-address): one visible word.
    if not value or not value.isprintable() or not value.isascii() or " " in value:
        raise _fail(field, value, "an IP address or host name")
    return value


def _port(field: str, value: str) -> int:
    return _number(field, value, 0, 65535)


def _parse_candidate(value: str) -> Candidate:
    words = value.split(" ")
    if len(words) < 8 or words[6] != "typ":
        raise _fail("candidate", value, "'<foundation> <component> <transport> <priority> "
                    "<address> <port> typ <type> …'")
    foundation = words[0]
    if not _ICE_CHARS.fullmatch(foundation) or len(foundation) > 32:
        raise _fail("foundation", foundation, "1-32 characters of [A-Za-z0-9+/]")
    rest = words[8:]
    raddr: str | None = None
    rport: int | None = None
    if rest[:1] == ["raddr"]:
        if len(rest) < 2:
            raise _fail("raddr", value, "'raddr <address>'")
        raddr, rest = _address("raddr", rest[1]), rest[2:]
    if rest[:1] == ["rport"]:
        if len(rest) < 2:
            raise _fail("rport", value, "'rport <port>'")
        rport, rest = _port("rport", rest[1]), rest[2:]
    if len(rest) % 2:
        raise _fail("candidate extensions", " ".join(rest), "name/value pairs")
    extensions = tuple(
        (_token("extension name", rest[i]), _extension_value(rest[i + 1]))
        for i in range(0, len(rest), 2)
    )
    return Candidate(
        foundation=foundation,
        component=_number("component", words[1], 1, 256),
        transport=_token("transport", words[2]),
        priority=_number("priority", words[3], 1, _MAX_PRIORITY),
        address=_address("address", words[4]),
        port=_port("port", words[5]),
        typ=_token("candidate type", words[7]),
        raddr=raddr,
        rport=rport,
        extensions=extensions,
    )


def _extension_value(value: str) -> str:
    if not value or not value.isascii() or not value.isprintable():
        raise _fail("extension value", value, "visible characters")
    return value


def _parse_remote_candidates(value: str) -> RemoteCandidates:
    words = value.split(" ")
    if len(words) % 3:
        raise _fail("remote-candidates", value, "'<component> <address> <port>' triples")
    return RemoteCandidates(
        tuple(
            RemoteCandidate(
                _number("component", words[i], 1, 256),
                _address("address", words[i + 1]),
                _port("port", words[i + 2]),
            )
            for i in range(0, len(words), 3)
        )
    )


def _parse_options(value: str) -> IceOptions:
    return IceOptions(tuple(_token("ice-options tag", t) for t in value.split(" ")))


def _flag(kind: type[IceLite] | type[EndOfCandidates], name: str) -> Callable[[str], IceAttribute]:
    def parse(value: str) -> IceAttribute:
        if value:
            raise _fail(name, value, "no value")
        return kind()

    return parse


_PARSERS: dict[str, Callable[[str], IceAttribute]] = {
    "ice-ufrag": lambda v: IceUfrag(_ice_chars("ufrag", v, 4)),
    "ice-pwd": lambda v: IcePwd(_ice_chars("pwd", v, 22)),
    "ice-options": _parse_options,
    "ice-lite": _flag(IceLite, "ice-lite"),
    "end-of-candidates": _flag(EndOfCandidates, "end-of-candidates"),
    "remote-candidates": _parse_remote_candidates,
    "candidate": _parse_candidate,
}
"""Attribute name → value parser (the only place an ICE attribute name is dispatched)."""

ICE_ATTRIBUTE_NAMES = frozenset(_PARSERS)


def parse_attribute(line: str) -> IceAttribute:
    """One `a=<ice attribute>[:value]` line (no CRLF) → its value; `IceSdpError` otherwise."""
    if not line.startswith("a="):
        raise _fail("line", line, "'a=<attribute>'")
    name, sep, value = line[2:].partition(":")
    parser = _PARSERS.get(name)
    if parser is None:
        raise _fail("attribute", name, "one of " + ", ".join(sorted(_PARSERS)))
    if sep and not value and name not in ("ice-lite", "end-of-candidates"):
        raise _fail(name, value, "a value")
    if not sep and name not in ("ice-lite", "end-of-candidates"):
        raise _fail(name, "", "a value after ':'")
    return parser(value)


def render_candidate(c: Candidate) -> str:
    """The candidate's attribute value (after `a=candidate:`)."""
    words = [c.foundation, str(c.component), c.transport, str(c.priority), c.address, str(c.port),
             "typ", c.typ]
    if c.raddr is not None:
        words += ["raddr", c.raddr]
    if c.rport is not None:
        words += ["rport", str(c.rport)]
    for name, value in c.extensions:
        words += [name, value]
    return " ".join(words)


def render_attribute(attr: IceAttribute) -> str:
    """The exact `a=` line for `attr` (no CRLF)."""
    match attr:
        case IceUfrag(value):
            return f"a=ice-ufrag:{value}"
        case IcePwd(value):
            return f"a=ice-pwd:{value}"
        case IceOptions(tags):
            return "a=ice-options:" + " ".join(tags)
        case IceLite():
            return "a=ice-lite"
        case EndOfCandidates():
            return "a=end-of-candidates"
        case RemoteCandidates(cands):
            return "a=remote-candidates:" + " ".join(
                f"{r.component} {r.address} {r.port}" for r in cands
            )
        case Candidate():
            return "a=candidate:" + render_candidate(attr)
    raise TypeError(f"not an ICE attribute: {attr!r}")
