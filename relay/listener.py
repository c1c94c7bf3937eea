"""Listening TCP sockets for every TCP listener of the daemon (TCP ng, listen-http, listen-cli,
prometheus-listen), with an accept loop of our own.

Hand-written instead of `loop.create_server` because of what asyncio does when accept() fails
for lack of resources (open-files limit reached): CPython's `_accept_connection` logs a traceback
("socket.accept() out of system resource") and schedules a retry for every attempt of its batch
of 100, so one pending connection produced ~17,000 tracebacks a second. Here a failed accept
stops reading the socket for `RETRY_DELAY` seconds and logs at most one line a second; the
pending connection stays in the kernel's backlog and is served once descriptors are free. Each
accepted socket is handed to the loop's own `connect_accepted_socket` (asyncio and uvloop alike).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Awaitable, Callable

from relay.ratelog import RateLimitedLog

__all__ = [
    "RETRY_DELAY", "TcpListener", "bind_error", "listen_tcp", "reuse_port", "share_ports",
    "stream_protocol",
]

log = logging.getLogger(__name__)

RETRY_DELAY = 1.0
"""Seconds a listener stops accepting after accept() ran out of descriptors or memory."""
BATCH = 64
"""Connections accepted per readiness callback (the rest wait for the next loop turn)."""
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

_SHARED = False
"""Listening sockets join a SO_REUSEPORT group (a worker of a sharded daemon, `share_ports`)."""

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
ClientCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def host_port(host: str, port: int) -> str:
    """`127.0.0.1:22222`, `[::1]:22222`: an address as an operator writes it (not a tuple)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def share_ports() -> None:
    """From now on this process's listeners (ng, HTTP, CLI, metrics) bind with SO_REUSEPORT, so
    every worker process of the daemon listens on the same addresses and the kernel spreads
    clients over them. Called once by a worker; the supervisor has checked beforehand that no
    other program holds those addresses (rtpvault.supervisor)."""
    global _SHARED
    _SHARED = True


def reuse_port(sock: socket.socket) -> None:
    """SO_REUSEPORT on a listening socket about to bind, when this process shares its ports."""
    if _SHARED:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


def bind_error(exc: OSError, what: str, host: str, port: int) -> OSError:
    """The same error, its text naming the listener and its address: `ng (TCP) on
    127.0.0.1:2223: address already in use`."""
    reason = (exc.strerror or str(exc)).lower()
    return OSError(exc.errno, f"{what} on {host_port(host, port)}: {reason}")


class TcpListener:
    """One or more listening sockets (one per address `host` resolves to), served by a reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list[socket.socket],
                 factory: ProtocolFactory, what: str) -> None:  # fmt: skip
        self._loop = loop
        self.sockets = sockets
        self._factory = factory
        self.what = what
        self._retry: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._log = RateLimitedLog(log, logging.ERROR)
        self.failed_accepts = 0
        for sock in sockets:
            loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(BATCH):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                self._failed(sock, exc)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _failed(self, sock: socket.socket, exc: OSError) -> None:
        self.failed_accepts += 1
        name = sock.getsockname()
        self._log.log((self.what, "accept"), "%s on %s: cannot accept a connection: %s; "
                      "pausing %.0f s", self.what, host_port(str(name[0]), int(name[1])),
                      exc.strerror or exc, RETRY_DELAY)  # fmt: skip
        if exc.errno not in OUT_OF_RESOURCES:
            return  # anything else concerns that one connection only
        fd = sock.fileno()
        self._loop.remove_reader(fd)
        self._retry[fd] = self._loop.call_later(RETRY_DELAY, self._resume, sock)

    def _resume(self, sock: socket.socket) -> None:
        self._retry.pop(sock.fileno(), None)
        self._loop.add_reader(sock.fileno(), self._accept, sock)
        self._accept(sock)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError as exc:  # the peer went away between accept and set-up
            log.debug("%s: accepted connection lost: %s", self.what, exc)
            conn.close()

    def close(self) -> None:
        for handle in self._retry.values():
            handle.cancel()
        self._retry.clear()
        for sock in self.sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
                sock.close()


async def listen_tcp(host: str, port: int, factory: ProtocolFactory, what: str, *,
                     backlog: int = 128) -> TcpListener:  # fmt: skip
    """Bind and listen on every address `host` resolves to; an OSError names what and where."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            reuse_port(sock)
            if family == socket.AF_INET6 and len(infos) > 1:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise bind_error(exc, what, host, port) from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return TcpListener(loop, sockets, factory, what)


def stream_protocol(client: ClientCallback, limit: int = 2**16) -> ProtocolFactory:
    """A factory giving `client(reader, writer)` per connection, as asyncio.start_server does."""

    async def served(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await client(reader, writer)
        except asyncio.CancelledError:
            # the daemon is stopping with this connection still open (an idle HTTP or CLI
            # client): end it quietly. Left cancelled, Python 3.11's StreamReaderProtocol asks
            # the task for its exception and the loop logs a CancelledError traceback.
            writer.close()

    def make() -> asyncio.BaseProtocol:
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=limit), served)

    return make
