"""The machine's network interfaces and DNS, for `interface` resolution (the only I/O there).

Kept apart so relay.config.interfaces stays pure and tests inject a fixed table instead.
"""

from __future__ import annotations

import json
import socket
import subprocess

from .interfaces import Resolver


def read_system_interfaces() -> dict[str, tuple[str, ...]]:
    """Interfaces that are UP → their IPv4/IPv6 addresses, from `ip -j addr` (iproute2)."""
    try:
        out = subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, check=True, timeout=10
        ).stdout
        links = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return _from_kernel_files()
    table: dict[str, tuple[str, ...]] = {}
    for link in links:
        if "UP" not in link.get("flags", ()):
            continue
        table[str(link["ifname"])] = tuple(
            str(a["local"])
            for a in link.get("addr_info", ())
            if a.get("family") in ("inet", "inet6") and "local" in a
        )
    return table


def _from_kernel_files() -> dict[str, tuple[str, ...]]:
    # Fallback without iproute2: IPv6 from procfs, IPv4 (primary only) by ioctl.
    import fcntl
    import struct

    table: dict[str, list[str]] = {name: [] for _, name in socket.if_nameindex()}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in table:
            try:
                req = struct.pack("256s", name.encode()[:15])
                res = fcntl.ioctl(s.fileno(), 0x8915, req)  # SIOCGIFADDR
                table[name].append(socket.inet_ntoa(res[20:24]))
            except OSError:
                pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                hexaddr, *_, name = line.split()
                if name in table:
                    table[name].append(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(hexaddr)))
    except OSError:
        pass
    return {k: tuple(v) for k, v in table.items()}


def lookup_host(name: str) -> tuple[str, ...]:
    """DNS (getaddrinfo) answers for a host name, in resolver order; () when it fails."""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError, ValueError):
        return ()
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


def system_resolver() -> Resolver:
    return Resolver(read_system_interfaces(), lookup_host)
