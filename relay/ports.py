"""Media port allocation in port-min..port-max: even RTP port, RTCP on RTP+1.

Follows rtpengine 10.5's scan (sdp.md §3): a per-interface cursor plus a small random step,
rounded up to even, then consecutive pairs upward, wrapping to port-min once. The sockets are
opened by an injected opener so tests and benchmarks can allocate without binding.
"""

from __future__ import annotations

import random
import socket
from typing import Callable

Opener = Callable[[str, int, int], socket.socket]


class PortsExhausted(Exception):
    """No two consecutive free ports left on the interface ("Ran out of ports")."""


def bind_udp(address: str, port: int, family: int) -> socket.socket:
    """Open a non-blocking UDP socket bound to (address, port); OSError if taken."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    return sock


class PortPool:
    """The port range of one local address."""

    def __init__(
        self,
        address: str,
        family: int,
        port_min: int,
        port_max: int,
        opener: Opener = bind_udp,
        rng: random.Random | None = None,
    ) -> None:
        self.address = address
        self.family = family
        self.port_min = port_min
        self.port_max = port_max
        self._opener = opener
        self._rng = rng or random.Random()
        self._cursor = 0
        self.used: set[int] = set()
        self.last = 0
        """The last port handed out (rtpengine's `ports.last` in statistics)."""

    @property
    def total(self) -> int:
        return self.port_max - self.port_min + 1

    @property
    def free(self) -> int:
        return self.total - len(self.used)

    def _start(self) -> int:
        port = self._cursor + self._rng.randint(6, 19)
        if port < self.port_min or port > self.port_max:
            port = self.port_min
        return port + (port & 1)

    def allocate_pair(self) -> tuple[socket.socket, socket.socket, int]:
        """Bind RTP (even) and RTCP (RTP+1); returns (rtp, rtcp, rtp_port)."""
        port = self._start()
        wraps = 0
        tried = 0
        span = self.total // 2 + 1
        while tried <= span:
            if port + 1 > self.port_max:
                wraps += 1
                if wraps > 1:
                    break
                port = self.port_min + (self.port_min & 1)
                continue
            tried += 1
            if port not in self.used and port + 1 not in self.used:
                pair = self._try_bind(port)
                if pair is not None:
                    self.used.update((port, port + 1))
                    self._cursor = port + 2
                    self.last = port + 1
                    return pair[0], pair[1], port
            port += 2
        raise PortsExhausted(f"no 2 consecutive ports free on {self.address}")

    def _try_bind(self, port: int) -> tuple[socket.socket, socket.socket] | None:
        try:
            rtp = self._opener(self.address, port, self.family)
        except OSError:
            return None
        try:
            rtcp = self._opener(self.address, port + 1, self.family)
        except OSError:
            rtp.close()
            return None
        return rtp, rtcp

    def release(self, port: int) -> None:
        """Return one port (call once for RTP and once for RTCP)."""
        self.used.discard(port)
