"""The ng control servers (UDP and TCP): the only control-plane socket code.

Bytes → relay.ng.codec → cookie cache → dispatch → codec → bytes. Both transports share one
request path, `NgControlServer.handle`, which mirrors rtpengine's `control_ng_process`: requests
without a cookie get no reply; an empty body gets "Invalid data (no payload)" before the cache is
consulted; a cached reply is resent before the body is even decoded.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from relay.listener import TcpListener, bind_error, host_port, listen_tcp, reuse_port
from relay.ng.codec import (
    INVALID_NO_PAYLOAD,
    NgRequest,
    TcpFramer,
    encode_reply,
    error_reply,
    parse_body,
    split_cookie,
)
from relay.ng.cookies import CookieCache
from relay.ng.errors import NgError
from relay.ratelog import RateLimitedLog

__all__ = [
    "ControlCounters", "Dispatch", "NgControlServer", "ProxyCounters", "ReplyPath", "Router",
]

log = logging.getLogger(__name__)

Source = tuple[str, int]
Dispatch = Callable[[dict[str, Any], Source], dict[str, Any]]
"""dispatch(body, source) → reply dict; raises NgError(reason) for an error reply.

If the reply has no "result" key, `"result": "ok"` is appended last, as rtpengine adds it.
"""
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNRECOGNIZED = "Unrecognized command"
MAX_UNSENT = 1024
"""Replies kept for UDP listeners not open yet (a worker's first moments, `send_udp`)."""


@dataclass(frozen=True)
class ReplyPath:
    """How a request came in, for a reply sent later (a request handed to another worker):
    `udp` is the index of the UDP listener that received it (-1: a TCP or HTTP stream), `send`
    writes a reply back the way the request came."""

    udp: int
    send: Callable[[bytes], None]


Router = Callable[["NgRequest", Source, ReplyPath], bool]
"""router(request, source, path) → True when another worker answers the request
(rtpvault.shard): this server then neither caches nor replies. Called for decoded requests that
this server's reply cache does not hold; the owner's cache answers their retransmissions."""


@dataclass
class ProxyCounters:
    """What one proxy (source IP) sent: requests per command and error replies."""

    commands: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    since: float = field(default_factory=time.monotonic)
    """First heard from (one clock for all workers: merged proxies keep one process's order)."""


@dataclass
class ControlCounters:
    """Plain counters for `statistics` and metrics; only the event loop writes them."""

    commands: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    duplicates: int = 0
    denied: int = 0
    internal_errors: int = 0
    tcp_overflows: int = 0
    proxies: dict[str, ProxyCounters] = field(default_factory=dict)

    def proxy(self, host: str) -> ProxyCounters:
        found = self.proxies.get(host)
        if found is None:
            found = self.proxies[host] = ProxyCounters()
        return found


_HOSTS: dict[str, str] = {}
"""Memo of `_host_of` (a proxy sends from a handful of addresses; bounded by clearing)."""


def _host_of(source: tuple[Any, ...]) -> str:
    """The source IP as text, with IPv4-mapped IPv6 (dual-stack sockets) shown as IPv4."""
    raw = str(source[0])
    host = _HOSTS.get(raw)
    if host is None:
        if len(_HOSTS) > 1024:
            _HOSTS.clear()
        host = _HOSTS[raw] = _normal_host(raw)
    return host


def _normal_host(host: str) -> str:
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


class NgControlServer:
    """ng over UDP and TCP in front of one dispatch function."""

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        allow: Sequence[Network] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dispatch = dispatch
        self._allow = None if allow is None else tuple(allow)
        self._allowed: dict[str, bool] = {}
        self._clock = clock
        self.cookies = CookieCache(clock())
        self.counters = ControlCounters()
        self._transports: list[asyncio.BaseTransport] = []
        self._unsent: list[tuple[int, bytes, Source]] = []
        """Replies for a UDP listener still opening (`send_udp`), sent once it is open."""
        self._servers: list[TcpListener] = []
        self._later: list[Callable[[], None]] | None = None
        self._refusals = RateLimitedLog(log, logging.WARNING, clock=clock)
        self.router: Router | None = None
        """Set by a sharded daemon (several workers): hands requests to the call's owner."""
        self._routed = False

    # --- work after the reply ------------------------------------------------------------------

    def defer(self, work: Callable[[], None]) -> None:
        """Run `work` once the current request's reply is sent (at once outside a request).

        For what the reply does not depend on: closing a deleted call's sockets, its log line,
        listeners of ended calls, command observers. It still runs before the next request is
        read (same loop callback), so no other command can see the state in between; the
        proxy just gets its answer sooner.
        """
        if self._later is None:
            work()
        else:
            self._later.append(work)

    def run_deferred(self) -> None:
        """Run what `defer` queued during the last request; an exception is logged, not raised."""
        later, self._later = self._later, None
        for work in later or ():
            try:
                work()
            except Exception:  # noqa: BLE001 - cleanup must not take the server down
                log.exception("Deferred work after an ng reply failed")

    # --- the request path shared by UDP and TCP ------------------------------------------------

    def allowed(self, host: str) -> bool:
        if self._allow is None:
            return True
        known = self._allowed.get(host)
        if known is None:
            if len(self._allowed) > 1024:
                self._allowed.clear()
            known = self._allowed[host] = self._in_allow_list(host)
        return known

    def admit(self, source: tuple[Any, ...], via: str) -> bool:
        """ng-allow for any control path (`via`: "ng", "HTTP /cli", "CLI", ...): a refused
        request is counted and logged with its source, at most one line a second per path."""
        host = _host_of(source)
        if self.allowed(host):
            return True
        self._refuse(via, host, int(source[1]))
        return False

    def _refuse(self, via: str, host: str, port: int) -> None:
        self.counters.denied += 1
        self._refusals.log(via, "Refused %s request from %s: source not in ng-allow", via,
                           host_port(host, port))  # fmt: skip

    def _in_allow_list(self, host: str) -> bool:
        assert self._allow is not None
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in net for net in self._allow)

    def handle(self, datagram: bytes, source: Source) -> bytes | None:
        """One request → the reply datagram, or None for "no reply at all"; deferred work done.
        Never routed elsewhere."""
        try:
            return self.handle_deferring(datagram, source)
        finally:
            self.run_deferred()

    def handle_parsed(self, request: NgRequest, source: Source) -> bytes | None:
        """As `handle`, for a request another worker already decoded and handed to this one,
        the call's owner (rtpvault.shard): reply cache, dispatch, encoding; no second decode
        (a Kamailio offer's bencode is most of a hand-off's cost, docs/PERFORMANCE.md)."""
        self._begin()
        try:
            return self._handle(b"", source, None, request)
        finally:
            self.run_deferred()

    def handle_deferring(self, datagram: bytes, source: Source,
                         path: ReplyPath | None = None) -> bytes | None:  # fmt: skip
        """As `handle`, but work queued with `defer` waits for `run_deferred`: the transports
        send the reply first. With `path` (a listener's request) the router may take it."""
        self._begin()
        return self._handle(datagram, source, path)

    def _begin(self) -> None:
        """A new request: what the previous one deferred is done, its own work is collected."""
        if self._later:
            self.run_deferred()
        self._later = []

    async def request(self, datagram: bytes, source: Source) -> bytes | None:
        """One request from a stream that waits for its answer (ng over HTTP): answered here,
        or by the worker that owns the call when the router hands it on."""
        if self.router is None:
            return self.handle(datagram, source)
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def send(reply: bytes) -> None:
            if not answer.done():
                answer.set_result(reply)

        self._routed = False
        try:
            reply = self.handle_deferring(datagram, source, ReplyPath(-1, send))
        finally:
            self.run_deferred()
        if reply is not None or not self._routed:
            return reply
        return await answer

    def complete(self, cookie: bytes, reply: dict[str, Any], is_json: bool, source: Source,
                 command: str) -> bytes:  # fmt: skip
        """The reply to a request answered outside `dispatch` (a whole-daemon command merged
        from every worker): counted, cached and encoded as `dispatch`'s replies are."""
        host = _host_of(source)
        data = self._reply(cookie, reply, is_json, command, host)
        self.cookies.insert(host, cookie, data, self._clock())
        return data

    def _handle(self, datagram: bytes, source: Source, path: ReplyPath | None = None,
                parsed: NgRequest | None = None) -> bytes | None:  # fmt: skip
        host = _host_of(source)
        if not self.allowed(host):
            self._refuse("ng", host, source[1])
            return None
        if parsed is not None:  # decoded by the worker that received it: not empty
            cookie, data = parsed.cookie, b" "
        else:
            split = split_cookie(datagram)
            if split is None:
                log.warning("Received invalid data on NG port (no cookie) from %s", host)
                return None
            cookie, data = split
        now = self._clock()
        if not data:  # checked before the cache, and cached like any reply, as rtpengine does
            reply = self._error(cookie, INVALID_NO_PAYLOAD, False, host)
        else:
            cached = self.cookies.lookup(host, cookie, now)
            if cached is not None:
                self.counters.duplicates += 1
                log.info("Detected command from %s as a duplicate", host)
                return cached
            request: NgRequest | NgError | None = parsed
            if path is not None and self.router is not None:
                # A request this worker answered is in its cache (above); one the router hands
                # on is answered, and cached, by the worker that owns the call. A malformed
                # body stays here and gets its error.
                try:
                    request = parse_body(cookie, data)
                except NgError as exc:
                    request = exc
                else:
                    if self.router(request, source, path):
                        self._routed = True
                        return None
            reply = self._execute(cookie, data, source, host, request)
        self.cookies.insert(host, cookie, reply, now)
        return reply

    def _execute(self, cookie: bytes, data: bytes, source: Source, host: str,
                 parsed: NgRequest | NgError | None = None) -> bytes:  # fmt: skip
        try:
            if isinstance(parsed, NgError):
                raise parsed
            request = parsed if parsed is not None else parse_body(cookie, data)
        except NgError as exc:
            return self._error(cookie, exc.reason, exc.is_json, host)
        command = request.command
        try:
            reply = self._dispatch(request.body, source)
        except NgError as exc:
            if exc.reason != UNRECOGNIZED:
                self._count_command(command, host)
            return self._error(cookie, exc.reason, request.is_json, host)
        except Exception as exc:  # noqa: BLE001 - a handler bug must not take the server down
            log.exception("Internal error handling %r from %s", command, host)
            self.counters.internal_errors += 1
            reason = f"Internal error: {type(exc).__name__}"
            return self._error(cookie, reason, request.is_json, host)
        return self._reply(cookie, reply, request.is_json, command, host)

    def _reply(self, cookie: bytes, reply: dict[str, Any], is_json: bool, command: str,
               host: str) -> bytes:  # fmt: skip
        """A handler's reply, counted and encoded (`"result": "ok"` added last when absent)."""
        self._count_command(command, host)
        if "result" not in reply:
            reply = {**reply, "result": "ok"}
        try:
            return encode_reply(cookie, reply, is_json)
        except ValueError as exc:
            log.error("Unencodable reply to %r from %s: %s", command, host, exc)
            self.counters.internal_errors += 1
            reason = f"Internal error: {type(exc).__name__}"
            return self._error(cookie, reason, is_json, host)

    def _count_command(self, command: str, host: str) -> None:
        self.counters.commands[command] = self.counters.commands.get(command, 0) + 1
        per_proxy = self.counters.proxy(host).commands
        per_proxy[command] = per_proxy.get(command, 0) + 1

    def _error(self, cookie: bytes, reason: str, is_json: bool, host: str) -> bytes:
        log.warning("Protocol error in packet from %s: %s", host, reason)
        self.counters.errors += 1
        self.counters.proxy(host).errors += 1
        return encode_reply(cookie, error_reply(reason), is_json)

    # --- transports ----------------------------------------------------------------------------

    async def start_udp(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        # Bound here, not by create_datagram_endpoint: uvloop's error then has no errno or reason
        family, kind, proto, _, address = (await loop.getaddrinfo(host, port,
                                                                  type=socket.SOCK_DGRAM))[0]
        sock = socket.socket(family, kind, proto)
        try:
            reuse_port(sock)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise bind_error(exc, "ng (UDP)", host, port) from None
        sock.setblocking(False)
        index = len(self._transports)
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self, index),
                                                           sock=sock)
        self._transports.append(transport)
        waiting, self._unsent = self._unsent, []
        for udp, reply, address in waiting:
            self.send_udp(udp, reply, address)

    def send_udp(self, index: int, reply: bytes, address: Source) -> None:
        """Send from UDP listener `index` (the same address in every worker, opened in the
        same order): the reply to a request another worker received leaves from `listen-ng`."""
        if 0 <= index < len(self._transports):
            cast(asyncio.DatagramTransport, self._transports[index]).sendto(reply, address)
        elif index >= 0 and len(self._unsent) < MAX_UNSENT:
            # A worker still starting answers a request handed to it by one already serving:
            # its own `listen-ng` socket opens in a moment (the reply is cached meanwhile too).
            self._unsent.append((index, reply, address))

    async def start_tcp(self, host: str, port: int) -> None:
        server = await listen_tcp(host, port, lambda: _TcpProtocol(self), "ng (TCP)")
        self._servers.append(server)

    def udp_addresses(self) -> list[tuple[Any, ...]]:
        return [t.get_extra_info("sockname") for t in self._transports]

    def tcp_addresses(self) -> list[tuple[Any, ...]]:
        return [s.getsockname() for srv in self._servers for s in srv.sockets]

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        self._transports.clear()
        self._servers.clear()
        self._unsent.clear()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: NgControlServer, index: int) -> None:
        self._server = server
        self._index = index
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector transport does not subclass DatagramTransport, hence the cast
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        server = self._server
        source = (str(addr[0]), int(addr[1]))
        path = None
        if server.router is not None and self._transport is not None:
            path = ReplyPath(self._index, functools.partial(self._transport.sendto, addr=addr))
        try:
            reply = server.handle_deferring(data, source, path)
        except Exception:  # noqa: BLE001 - never let one datagram stop the listener
            log.exception("Unexpected failure handling an ng datagram from %s", addr[0])
            reply = None
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)
        server.run_deferred()

    def error_received(self, exc: Exception) -> None:
        log.debug("ng UDP socket error: %s", exc)


class _TcpProtocol(asyncio.Protocol):
    """One TCP ng connection: rtpengine framing, replies written back to back."""

    def __init__(self, server: NgControlServer) -> None:
        self._server = server
        self._framer = TcpFramer()
        self._transport: asyncio.Transport | None = None
        self._peer: Source = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        for message in self._framer.feed(data):
            server = self._server
            path = None if server.router is None else ReplyPath(-1, self._write_later)
            try:
                reply = server.handle_deferring(message, self._peer, path)
            except Exception:  # noqa: BLE001
                log.exception("Unexpected failure handling an ng message from %s", self._peer[0])
                reply = None
            if reply is not None:
                transport.write(reply)
            server.run_deferred()
        if self._framer.overflowed:
            log.warning("Buffer length exceeded in control connection from %s", self._peer[0])
            self._server.counters.tcp_overflows += 1
            transport.close()
            self._transport = None

    def _write_later(self, reply: bytes) -> None:
        """A reply from the worker that owns the call, if the connection is still open."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(reply)

