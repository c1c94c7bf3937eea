"""`interface` specifications (docs/spec/config.md §3) against a fixed system table."""

from __future__ import annotations

import pytest

from relay.config.interfaces import Interface, Resolver, parse_interface_spec, resolve_interfaces
from relay.config.keyfile import ConfigError

HOSTS = {
    "localhost": ("127.0.0.1", "::1"),
    "media.example": ("192.0.2.2",),
    "public.example": ("203.0.113.7",),
}
R = Resolver(
    {
        "lo": ("127.0.0.1", "::1"),
        "eth0": ("192.0.2.2", "fd00::2", "fe80::1"),
        "va": ("10.200.1.1",),
        "v6only": ("fd01::1",),
    },
    lambda name: HOSTS.get(name, ()),
)


def resolve(*texts: str) -> tuple[tuple[Interface, ...], list[str]]:
    return resolve_interfaces(list(texts), R)


def v4(name: str, local: str, adv: str | None = None) -> Interface:
    return Interface(name, local, adv or local, "IP4")


def v6(name: str, local: str, adv: str | None = None) -> Interface:
    return Interface(name, local, adv or local, "IP6")


def test_split() -> None:
    spec = parse_interface_spec("pub/eth0!203.0.113.10")
    assert (spec.name, spec.named, spec.address, spec.advertised) == (
        "pub",
        True,
        "eth0",
        "203.0.113.10",
    )
    spec = parse_interface_spec("127.0.0.1")
    assert (spec.name, spec.named, spec.advertised) == ("default", False, None)


def test_ip_literal() -> None:
    assert resolve("127.0.0.1") == ((v4("default", "127.0.0.1"),), [])


def test_ipv6_literal_with_advertised() -> None:
    assert resolve("v6/fd00::2!2001:db8::99") == ((v6("v6", "fd00::2", "2001:db8::99"),), [])


def test_system_interface_name_gives_all_its_addresses_but_link_local() -> None:
    assert resolve("eth0") == ((v4("default", "192.0.2.2"), v6("default", "fd00::2")), [])


def test_advertised_applies_to_its_own_family() -> None:
    got, warnings = resolve("pub/eth0!203.0.113.10")
    assert got == (v4("pub", "192.0.2.2", "203.0.113.10"), v6("pub", "fd00::2"))
    assert warnings == []


def test_any_skips_loopback_and_link_local() -> None:
    got, _ = resolve("any")
    assert [i.local for i in got] == ["192.0.2.2", "fd00::2", "10.200.1.1", "fd01::1"]


def test_dns_name_uses_the_first_answer() -> None:
    assert resolve("localhost") == ((v4("default", "127.0.0.1"),), [])


def test_advertised_host_name_is_resolved() -> None:
    got, _ = resolve("pub/192.0.2.2!public.example")
    assert got == (v4("pub", "192.0.2.2", "203.0.113.7"),)


def test_base_suffix_names_and_lists() -> None:
    got, _ = resolve("pub:1/192.0.2.2", "pub:2/10.200.1.1", "priv/127.0.0.1")
    assert [i.name for i in got] == ["pub:1", "pub:2", "priv"]


def test_guide_form_binds_the_interface_and_advertises_the_address() -> None:
    got, warnings = resolve("eth0/203.0.113.10")
    assert got == (v4("eth0", "192.0.2.2", "203.0.113.10"), v6("eth0", "fd00::2"))
    assert len(warnings) == 1
    assert "write 'eth0/eth0!203.0.113.10' to say so unambiguously" in warnings[0]
    # ... exactly what the unambiguous form gives
    assert resolve("eth0/eth0!203.0.113.10") == (got, [])


def test_name_slash_local_address_keeps_rtpengines_meaning() -> None:
    assert resolve("eth0/10.200.1.1") == ((v4("eth0", "10.200.1.1"),), [])


def test_non_local_address_without_system_name_warns() -> None:
    got, warnings = resolve("pub/198.51.100.1")
    assert got == (v4("pub", "198.51.100.1"),)
    assert warnings == [
        "config: interface 'pub/198.51.100.1': 198.51.100.1 is not configured on any local "
        "interface; media sockets cannot bind to it unless it is added later (e.g. a VRRP "
        "address with net.ipv4.ip_nonlocal_bind=1)"
    ]


def test_guide_form_needs_an_address_of_that_family() -> None:
    got, warnings = resolve("v6only/203.0.113.10")
    assert got == (v4("v6only", "203.0.113.10"),)
    assert "not configured on any local interface" in warnings[0]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.0.0.0", "0.0.0.0 is not a usable address"),
        ("::", ":: is not a usable address"),
        (
            "nonexistent0",
            "'nonexistent0' is not an IP address, a network interface, 'any' or a "
            "resolvable host name",
        ),
        (
            "pub/eth0!eth1",
            "advertised address 'eth1' must be an IP address or a host name (unresolvable)",
        ),
        ("pub/eth0!va", "(a network interface name)"),
        ("/127.0.0.1", "empty interface name"),
        ("pub/", "no address"),
        ("pub/eth0!", "empty advertised address"),
        ("127.0.0.1 pub/192.0.2.2", "blank inside"),
        ("pub/eth0!0.0.0.0", "not usable"),
    ],
)
def test_bad_specs(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        resolve(text)
    assert str(e.value).startswith(f"config: key 'interface' value '{text}': ")
    assert reason in str(e.value)


def test_real_system_table_has_loopback() -> None:
    from relay.config.netifs import read_system_interfaces

    table = read_system_interfaces()
    assert "127.0.0.1" in table.get("lo", ())


def test_any_loopback_address_is_local_not_the_guide_form() -> None:
    # lo carries all of 127.0.0.0/8: `lo/127.0.0.2` binds 127.0.0.2 like rtpengine does.
    from relay.config.interfaces import Resolver, resolve_interfaces

    resolver = Resolver(system={"lo": ("127.0.0.1", "::1")}, lookup_host=lambda name: ())
    itfs, warnings = resolve_interfaces(["lo/127.0.0.2"], resolver)
    assert [(i.name, i.local, i.advertised) for i in itfs] == [("lo", "127.0.0.2", "127.0.0.2")]
    assert warnings == []
