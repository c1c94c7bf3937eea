"""Network namespaces for media tests: private hosts joined by veth links, removed afterwards.

Every namespace and address lives only inside the namespaces a test creates (10.99.x.y), so
nothing is ever sent to a real network. Sockets are opened inside a namespace by switching the
calling thread into it (setns) for the duration of `entered()`; a socket stays in the namespace
it was created in, so the test process can then drive all of them from one event loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def ip(*args: str, ns: str | None = None) -> None:
    """Run `ip` (inside namespace `ns` when given); raise with its stderr on failure."""
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")


@dataclass
class Netns:
    """One named network namespace with its loopback up."""

    name: str

    def create(self) -> None:
        ip("netns", "add", self.name)
        ip("link", "set", "lo", "up", ns=self.name)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, check=False)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the body with this thread in the namespace (sockets made here stay in it)."""
        with open("/proc/self/ns/net") as home, open(f"/run/netns/{self.name}") as target:
            _setns(target.fileno())
            try:
                yield
            finally:
                _setns(home.fileno())


@dataclass
class Topology:
    """Hosts a, b, c each linked to `relay` by a veth pair on subnet 10.99.<n>.0/24.

    The relay end is 10.99.<n>.1, the host end 10.99.<n>.2, with a default route via the relay;
    the same for IPv6 with fd99:<n>::1 and fd99:<n>::2 (unique local, no DAD).
    The relay does not route (ip_forward is off in a new namespace), so host c can reach hosts
    a and b only through the relay's sockets, like an attacker on the Internet.
    """

    prefix: str
    hosts: dict[str, Netns] = field(default_factory=dict)
    subnet: dict[str, int] = field(default_factory=dict)

    def build(self, names: tuple[str, ...] = ("a", "b", "c")) -> None:
        relay = self._ns("relay")
        for n, name in enumerate(names, start=1):
            host = self._ns(name)
            self.subnet[name] = n
            ip(
                "link",
                "add",
                "eth0",
                "netns",
                host.name,
                "type",
                "veth",
                "peer",
                "name",
                f"to-{name}",
                "netns",
                relay.name,
            )
            ip("addr", "add", f"10.99.{n}.2/24", "dev", "eth0", ns=host.name)
            ip("addr", "add", f"10.99.{n}.1/24", "dev", f"to-{name}", ns=relay.name)
            ip("addr", "add", f"fd99:{n}::2/64", "dev", "eth0", "nodad", ns=host.name)
            ip("addr", "add", f"fd99:{n}::1/64", "dev", f"to-{name}", "nodad", ns=relay.name)
            ip("link", "set", "eth0", "up", ns=host.name)
            ip("link", "set", f"to-{name}", "up", ns=relay.name)
            ip("route", "add", "default", "via", f"10.99.{n}.1", ns=host.name)
            ip("-6", "route", "add", "default", "via", f"fd99:{n}::1", ns=host.name)

    def _ns(self, name: str) -> Netns:
        ns = Netns(f"{self.prefix}-{name}")
        ns.create()
        self.hosts[name] = ns
        return ns

    def host_address(self, name: str, v6: bool = False) -> str:
        n = self.subnet[name]
        return f"fd99:{n}::2" if v6 else f"10.99.{n}.2"

    def relay_address(self, name: str, v6: bool = False) -> str:
        """The relay's address on the link towards host `name`."""
        n = self.subnet[name]
        return f"fd99:{n}::1" if v6 else f"10.99.{n}.1"

    def destroy(self) -> None:
        for ns in self.hosts.values():
            ns.delete()
        self.hosts.clear()
