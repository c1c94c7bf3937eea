"""Media port allocation in port-min..port-max: even RTP port, RTCP on RTP+1.

Follows rtpengine 10.5's scan (docs/spec/sdp.md §3): a per-interface cursor + a small random step,
rounded up to even, then consecutive pairs upward, wrapping to port-min once. The sockets are
opened by an injected opener so tests and benchmarks can allocate without binding.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import time
from collections.abc import Callable

Opener = Callable[[str, int, int], socket.socket]

# bind(2) errors that no other port number can cure: the scan stops at the first one instead of
# trying every port of the range (EMFILE: out of file descriptors; EADDRNOTAVAIL: the address
# is not on this host).
_HOPELESS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM,
                       errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})  # fmt: skip


class PortsExhausted(Exception):
    """No `width` consecutive free ports on the interface ("Ran out of ports"). The message is
    rtpengine's log line, naming the address and the last bind error (docs/spec/sdp.md §3)."""

    def __init__(self, address: str, width: int, last_error: OSError | None) -> None:
        self.address = address
        self.width = width
        self.last_error = last_error
        # rtpengine prints strerror(errno), "Success" when no bind was even tried
        why = "Success"
        if last_error is not None and last_error.errno is not None:
            why = os.strerror(last_error.errno)
        super().__init__(
            f"Failed to get {width} consecutive ports on interface {address} for media relay "
            f"(last error: {why})"
        )


class PortPinned(Exception):
    """A port a replayed request must take again could not be (relay.state.replay): taken by
    someone else, or the request asked for other ports than it took the first time."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def bind_udp(address: str, port: int, family: int) -> socket.socket:
    """Open a non-blocking UDP socket bound to (address, port); OSError if taken."""
    # Non-blocking from creation: one syscall fewer than socket() + ioctl(FIONBIO).
    sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
    try:
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
        self._last_error: OSError | None = None
        self.used: set[int] = set()
        self.last = 0
        """The last port handed out (rtpengine's `ports.last` in statistics)."""
        self.last_at = 0.0
        """When (time.monotonic(), one clock for every worker process) `last` was handed out:
        the workers' pools merge into the one that took a port last."""

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

    def allocate_pair(self, prefer: int = 0) -> tuple[socket.socket, socket.socket, int]:
        """Bind RTP (even) and RTCP (RTP+1); returns (rtp, rtcp, rtp_port). `prefer`: a port
        to take again if it is still free (a re-activated m= line)."""
        socks, port = self._scan(2, prefer)
        return socks[0], socks[1], port

    def allocate_one(self, prefer: int = 0) -> tuple[socket.socket, int]:
        """Bind one even port (RTP with RTCP muxed on it, rtcp-mux=require)."""
        socks, port = self._scan(1, prefer)
        return socks[0], port

    def _scan(self, width: int, prefer: int = 0) -> tuple[list[socket.socket], int]:
        """rtpengine's scan for `width` (1 or 2) consecutive free ports from an even one."""
        self._last_error = None
        if (
            prefer
            and self.port_min <= prefer <= self.port_max - width + 1
            and not self.used.intersection(range(prefer, prefer + width))
        ):
            socks = self._try_bind(prefer, width)
            if socks is not None:
                self.used.update(range(prefer, prefer + width))
                return socks, prefer
        port = self._start()
        wraps = 0
        tried = 0
        span = self.total // 2 + 1
        while tried <= span:
            if port + width - 1 > self.port_max:
                wraps += 1
                if wraps > 1:
                    break
                port = self.port_min + (self.port_min & 1)
                continue
            tried += 1
            used = self.used
            if port not in used and (width == 1 or port + 1 not in used):
                socks = self._try_bind(port, width)
                if socks is not None:
                    self.used.update(range(port, port + width))
                    self._cursor = port + 2
                    self.last = port + width - 1
                    self.last_at = time.monotonic()
                    return socks, port
                if self._last_error is not None and self._last_error.errno in _HOPELESS:
                    break
            port += 2
        raise PortsExhausted(self.address, width, self._last_error)

    def _try_bind(self, port: int, width: int) -> list[socket.socket] | None:
        socks: list[socket.socket] = []
        try:
            for offset in range(width):
                socks.append(self._opener(self.address, port + offset, self.family))
        except OSError as exc:
            self._last_error = exc
            for sock in socks:
                sock.close()
            return None
        return socks

    def allocate_exact(self, port: int, width: int) -> list[socket.socket]:
        """Bind exactly `width` ports from `port` (a replayed request, relay.state.replay);
        PortPinned naming the port when one is in use or cannot be bound."""
        if self.used.intersection(range(port, port + width)):
            raise PortPinned(f"port {port} taken on {self.address}")
        self._last_error = None
        socks = self._try_bind(port, width)
        if socks is None:
            why = self._last_error.strerror if self._last_error is not None else "?"
            raise PortPinned(f"port {port} taken on {self.address} ({why})")
        self.used.update(range(port, port + width))
        self._cursor = port + 2
        self.last = port + width - 1
        self.last_at = time.monotonic()
        return socks

    def release(self, port: int) -> None:
        """Return one port (call once for RTP and once for RTCP)."""
        self.used.discard(port)
