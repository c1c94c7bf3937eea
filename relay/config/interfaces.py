"""The `interface` option: `[NAME/]ADDRESS[!ADVERTISED]` → local media addresses.

Parsing and resolution are pure: system interfaces and DNS come in through a `Resolver`
(relay.config.netifs builds the real one). Rules follow rtpengine 10.5 (docs/spec/config.md §3),
plus one deliberate difference: `NAME/ADDR`, where NAME is a system interface and ADDR an IP that
is not local, is read the way deployment guides mean it (bind NAME, advertise ADDR) - rtpengine
binds ADDR and every call then fails with "Ran out of ports". The difference is logged as a
warning.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .keyfile import ConfigError, quoted, shown

Family = Literal["IP4", "IP6"]


@dataclass(frozen=True, slots=True)
class Interface:
    """One local media address of a logical interface, and what SDP shows for it."""

    name: str
    local: str
    advertised: str
    family: Family


@dataclass(frozen=True, slots=True)
class InterfaceSpec:
    """One element of the `interface` list, split but not resolved."""

    text: str
    name: str
    named: bool  # NAME/ was written (else the name is "default")
    address: str
    advertised: str | None


def _no_host(_: str) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class Resolver:
    """System interfaces (name → addresses, UP ones only) and a DNS lookup, injectable."""

    system: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lookup_host: Callable[[str], tuple[str, ...]] = _no_host

    def local_addresses(self) -> frozenset[str]:
        return frozenset(_canonical(a) for addrs in self.system.values() for a in addrs)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _canonical(text: str) -> str:
    ip = _ip(text)
    return str(ip) if ip is not None else text


def _family(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Family:
    return "IP4" if ip.version == 4 else "IP6"


def _usable(text: str, *, loopback: bool) -> bool:
    # rtpengine skips link-local IPv6 always, and loopback for `any`.
    ip = _ip(text)
    if ip is None or (ip.version == 6 and ip.is_link_local):
        return False
    return loopback or not ip.is_loopback


def _bad(text: str, reason: str) -> ConfigError:
    return ConfigError(f"{quoted('interface', text)}: {reason}")


def parse_interface_spec(text: str) -> InterfaceSpec:
    """Split `[NAME/]ADDRESS[!ADVERTISED]` (no lookups)."""
    name, slash, rest = text.partition("/")
    if not slash:
        name, rest = "default", text
    elif name == "":
        raise _bad(text, "empty interface name before '/'")
    address, bang, advertised = rest.partition("!")
    if address == "":
        raise _bad(text, "no address")
    if bang and advertised == "":
        raise _bad(text, "empty advertised address after '!'")
    if any(c.isspace() for c in text):
        raise _bad(text, "blank inside an interface specification")
    return InterfaceSpec(text, name, bool(slash), address, advertised if bang else None)


def _resolve_address(spec: InterfaceSpec, resolver: Resolver) -> tuple[str, ...]:
    """The middle part: IP literal, system interface, `any`, then DNS (rtpengine's order)."""
    ip = _ip(spec.address)
    if ip is not None:
        if ip.is_unspecified:
            raise _bad(spec.text, f"{spec.address} is not a usable address (name one address)")
        return (str(ip),)
    if spec.address in resolver.system:
        found = tuple(a for a in resolver.system[spec.address] if _usable(a, loopback=True))
        if not found:
            raise _bad(spec.text, f"network interface '{spec.address}' has no usable address")
        return found
    if spec.address == "any":
        found = tuple(
            a for addrs in resolver.system.values() for a in addrs if _usable(a, loopback=False)
        )
        if not found:
            raise _bad(spec.text, "'any' found no usable address")
        return found
    found = tuple(a for a in resolver.lookup_host(spec.address) if _ip(a) is not None)
    if not found:
        raise _bad(
            spec.text,
            f"'{shown(spec.address)}' is not an IP address, a network interface, 'any' "
            "or a resolvable host name",
        )
    return (str(_ip(found[0])),)  # rtpengine uses the first DNS answer


def _resolve_advertised(spec: InterfaceSpec, resolver: Resolver) -> str | None:
    if spec.advertised is None:
        return None
    ip = _ip(spec.advertised)
    if ip is None:
        answers = resolver.lookup_host(spec.advertised)
        ip = _ip(answers[0]) if answers else None
    if ip is None:
        what = "a network interface name" if spec.advertised in resolver.system else "unresolvable"
        raise _bad(
            spec.text,
            f"advertised address '{shown(spec.advertised)}' must be an IP address or a host name "
            f"({what})",
        )
    if ip.is_unspecified:
        raise _bad(spec.text, f"advertised address {spec.advertised} is not usable")
    return str(ip)


def _interfaces(name: str, locals_: Iterable[str], advertised: str | None) -> list[Interface]:
    """One Interface per local address; the advertised address applies to its own family."""
    result = []
    adv_ip = _ip(advertised) if advertised else None
    for local in locals_:
        fam = _family(ipaddress.ip_address(local))
        adv = advertised if adv_ip is not None and _family(adv_ip) == fam else local
        result.append(Interface(name, local, adv or local, fam))
    return result


def _guide_form(spec: InterfaceSpec, resolver: Resolver) -> list[Interface] | None:
    """`eth0/203.0.113.10` with a non-local IP: bind eth0, advertise the IP (see module doc)."""
    ip = _ip(spec.address)
    if not spec.named or spec.advertised is not None or ip is None:
        return None
    # Every 127.0.0.0/8 address is local on Linux (lo carries the whole block).
    if ip.is_loopback or str(ip) in resolver.local_addresses() or spec.name not in resolver.system:
        return None
    locals_ = [a for a in resolver.system[spec.name] if _usable(a, loopback=True)]
    if not any(_family(ipaddress.ip_address(a)) == _family(ip) for a in locals_):
        return None
    return _interfaces(spec.name, locals_, str(ip))


def resolve_interfaces(
    texts: Sequence[str], resolver: Resolver
) -> tuple[tuple[Interface, ...], list[str]]:
    """Resolve every element of the `interface` list; returns interfaces and warnings."""
    result: list[Interface] = []
    warnings: list[str] = []
    local = resolver.local_addresses()
    for text in texts:
        spec = parse_interface_spec(text)
        guide = _guide_form(spec, resolver)
        if guide is not None:
            bound = ", ".join(i.local for i in guide)
            warnings.append(
                f"config: interface '{text}': rtpengine reads this as logical name '{spec.name}' "
                f"bound to {spec.address} (not a local address; every call would fail with "
                f"'Ran out of ports'); rtpvault binds {spec.name} ({bound}) and advertises "
                f"{spec.address} - write '{spec.name}/{spec.name}!{spec.address}' to say so "
                f"unambiguously"
            )
            result.extend(guide)
            continue
        addrs = _resolve_address(spec, resolver)
        ip = _ip(spec.address)
        if ip is not None and not ip.is_loopback and str(ip) not in local:
            warnings.append(
                f"config: interface '{text}': {spec.address} is not configured on any local "
                f"interface; media sockets cannot bind to it unless it is added later "
                f"(e.g. a VRRP address with net.ipv4.ip_nonlocal_bind=1)"
            )
        result.extend(_interfaces(spec.name, addrs, _resolve_advertised(spec, resolver)))
    return tuple(result), warnings
