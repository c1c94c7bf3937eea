"""Address-shaped option values: listeners, HEP targets, CIDR allow-lists. Pure."""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

from .keyfile import ConfigError, bad_value, shown

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?"
)  # noqa: E501

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Listen(NamedTuple):
    """A listening address. host "" means the wildcard of both families (rtpengine binds
    0.0.0.0 and :: for a bare port); otherwise an IP literal or a host name to resolve."""

    host: str
    port: int

    @property
    def hosts(self) -> tuple[str, ...]:
        """The addresses to bind: the host itself, or both wildcards for a bare port."""
        return (self.host,) if self.host else ("0.0.0.0", "::")


class HepTarget(NamedTuple):
    protocol: str  # "udp" | "tcp"
    host: str
    port: int


def _port(key: str, value: str, text: str, cli: bool) -> int:
    if not text.isascii() or not text.isdigit():
        raise bad_value(key, value, f"port '{shown(text)}' is not a number", cli=cli)
    port = int(text) if len(text) < 10 else 0  # not int() of thousands of digits
    if not 1 <= port <= 65535:
        raise bad_value(key, value, f"port {shown(text)} is not within 1..65535", cli=cli)
    return port


def _host(key: str, value: str, text: str, cli: bool) -> str:
    if ":" in text:  # `::1:2223` is ambiguous (itself a valid IPv6 address)
        raise bad_value(
            key, value, "an IPv6 address must be written in brackets: [ADDR]:PORT", cli=cli
        )
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if _HOSTNAME.fullmatch(text) is None:
        raise bad_value(key, value, f"'{shown(text)}' is not an IP address or host name", cli=cli)
    return text


def parse_listen(key: str, value: str, *, cli: bool = False, need_host: bool = False) -> Listen:
    """`PORT`, `IPv4:PORT`, `[IPv6]:PORT` or `HOSTNAME:PORT` (rtpengine's endpoint syntax)."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        if need_host:
            raise bad_value(key, value, "needs ADDRESS:PORT", cli=cli)
        return Listen("", _port(key, value, text, cli))
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise bad_value(key, value, "expected [IPv6]:PORT", cli=cli)
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            reason = f"'{shown(host)}' is not an IPv6 address"
            raise bad_value(key, value, reason, cli=cli) from None
        return Listen(str(ip), _port(key, value, port, cli))
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise bad_value(key, value, "expected [ADDRESS:]PORT", cli=cli)
    return Listen(_host(key, value, host, cli), _port(key, value, port, cli))


def parse_hep_target(
    key: str, value: str, default_protocol: str, *, cli: bool = False
) -> HepTarget:
    """`[udp:|tcp:]ADDRESS:PORT` (the form newer guides use for `homer-ng`)."""
    proto, sep, rest = value.partition(":")
    if sep and proto.lower() in ("udp", "tcp"):
        where = parse_listen(key, rest, cli=cli, need_host=True)
        return HepTarget(proto.lower(), where.host, where.port)
    where = parse_listen(key, value, cli=cli, need_host=True)
    return HepTarget(default_protocol, where.host, where.port)


def parse_networks(key: str, items: tuple[str, ...], *, cli: bool = False) -> tuple[IpNetwork, ...]:
    """CIDRs; a bare address is a single host. Host bits are allowed (10.1.2.3/8 → 10.0.0.0/8)."""
    nets: list[IpNetwork] = []
    for item in items:
        try:
            nets.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise bad_value(key, item, "not an IP network (e.g. 10.0.0.0/8)", cli=cli) from None
    return tuple(nets)


__all__ = [
    "ConfigError",
    "HepTarget",
    "IpNetwork",
    "Listen",
    "parse_hep_target",
    "parse_listen",
    "parse_networks",
]
