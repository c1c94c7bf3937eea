"""The `listen-http` listener (and the guide's `prometheus = yes` + `prometheus-listen`):
`GET /metrics`, `GET /ping`, `GET /cli/<command>` and `POST /ng`, as rtpengine 10.5 serves them
(docs/spec/metrics.md §1.1, §2): `text/plain` bodies, 404 `not found` for anything else.

`/cli` and `/ng` change calls, so they obey `ng-allow` like every other control path (refused:
403, counted, logged at most once a second). `prometheus-listen` serves `/metrics` only: it is
meant to be reachable by a scraper, not to be a second control port.

With `num-threads` workers every worker serves these addresses (SO_REUSEPORT): /metrics and
/cli gather every worker's part through rtpvault.peers and answer for the whole daemon, and /ng
requests go to the call's owner (rtpvault.shard).

Hand-written over asyncio streams on purpose: four routes, and the handlers must run on the event
loop thread so that /metrics and /cli read the loop-owned call state without locks (the
prometheus-client threaded server would collect from another thread). Requests are bounded in
size and time; one request per connection is enough for scrapers and curl (keep-alive is not
offered: every reply says `connection: close`).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any

from relay.config.values import Listen
from relay.listener import TcpListener, listen_tcp, stream_protocol
from rtpvault.component import DaemonContext
from rtpvault.ctl.commands import answer as cli_answer
from rtpvault.ctl.commands import catch_up
from rtpvault.ctl.commands import serve as serve_cli
from rtpvault.ctl.state import shared
from rtpvault.prometheus import Snapshot, exposition, make_registry

logger = logging.getLogger("rtpvault.http")

MAX_HEADER = 16384
MAX_BODY = 1 << 20


NOT_FOUND = (404, "text/plain", b"not found\n")
FORBIDDEN = (403, "text/plain", b"forbidden\n")


class HttpServer:
    """`listens`: (where, control) pairs; control = False serves /metrics only."""

    def __init__(self, daemon: DaemonContext, listens: list[tuple[Listen, bool]]) -> None:
        self.daemon = daemon
        self.listens = listens
        self.registry, self.collector = make_registry(daemon)
        self.state = shared(daemon)
        serve_cli(daemon)
        if daemon.shard is not None:
            daemon.shard.peers.serve("metrics", self._snapshot)
        self._servers: list[TcpListener] = []
        self.requests = 0

    async def start(self) -> None:
        for listen, control in self.listens:
            what = "HTTP" if control else "prometheus-listen"
            serve = self._client if control else self._metrics_client
            for host in listen.hosts:
                self._servers.append(await listen_tcp(host, listen.port, stream_protocol(serve),
                                                      what))  # fmt: skip
                logger.info("%s listening on %s:%d (%s)", what, host, listen.port,
                            "/metrics, /ping, /cli, /ng" if control else "/metrics")  # fmt: skip
        self.state.start()
        catch_up(self.daemon)

    def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        self.state.close()

    def stats(self) -> dict[str, Any]:
        return {"http_requests": self.requests}

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, True)

    async def _metrics_client(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:  # fmt: skip
        await self._serve(reader, writer, False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     control: bool) -> None:  # fmt: skip
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                    ConnectionError):  # fmt: skip
                return
            if len(head) > MAX_HEADER:
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                await self._reply(writer, 400, b"bad request\n")
                return
            method, target, _ = parts
            headers = {}
            for line in lines[1:]:
                k, sep, v = line.partition(":")
                if sep:
                    headers[k.strip().lower()] = v.strip()
            body = b""
            length_text = headers.get("content-length", "0") or "0"
            if not length_text.isdigit() or len(length_text) > 12:
                return  # closed without a reply, as rtpengine (libwebsockets) does
            length = int(length_text)
            if length > MAX_BODY:
                await self._reply(writer, 413, b"too large\n")
                return
            if length:
                body = await asyncio.wait_for(reader.readexactly(length), timeout=10)
            self.requests += 1
            route = self._route if control else self._metrics_only
            status, ctype, payload = await route(method, target, headers, body, writer)
            await self._reply(writer, status, payload, ctype)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()

    async def _metrics_only(self, method: str, target: str, headers: dict[str, str], body: bytes,
                      writer: asyncio.StreamWriter) -> tuple[int, str, bytes]:  # fmt: skip
        if method == "GET" and urllib.parse.urlsplit(target).path == "/metrics":
            return 200, "text/plain", await self._metrics()
        return NOT_FOUND

    async def _route(self, method: str, target: str, headers: dict[str, str], body: bytes,
               writer: asyncio.StreamWriter) -> tuple[int, str, bytes]:  # fmt: skip
        path = urllib.parse.urlsplit(target).path
        if method == "GET" and path == "/metrics":
            return 200, "text/plain", await self._metrics()
        if method == "GET" and path == "/ping":
            return 200, "text/plain", b"pong\n"
        ng_type = headers.get("content-type", "").startswith("application/x-rtpengine-ng")
        is_cli = method == "GET" and path.startswith("/cli/")
        if not (is_cli or (method == "POST" and path == "/ng" and ng_type)):
            return NOT_FOUND
        peer = writer.get_extra_info("peername") or ("", 0)
        source = (str(peer[0]), int(peer[1]))
        if not self.daemon.control.admit(source, "HTTP /cli" if is_cli else "HTTP /ng"):
            return FORBIDDEN
        if is_cli:
            line = urllib.parse.unquote(path[5:])
            return 200, "text/plain", (await cli_answer(self.daemon, line)).encode()
        reply = await self.daemon.control.request(body, source)
        return 200, "application/x-rtpengine-ng", reply or b""

    async def _metrics(self) -> bytes:
        """The /metrics body: this process's figures, or every worker's added up."""
        shard = self.daemon.shard
        if shard is None:
            return exposition(self.registry, self.collector)
        snaps = await shard.peers.gather("metrics", None)
        return exposition(self.registry, self.collector, Snapshot.merge(snaps))

    def _snapshot(self, _: object) -> Snapshot:
        return self.collector.snapshot()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, payload: bytes,
                     ctype: str = "text/plain") -> None:  # fmt: skip
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
                  413: "Payload Too Large"}[status]  # fmt: skip
        writer.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\n"
                     f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
                     + payload)  # fmt: skip
        await writer.drain()


def attach(daemon: DaemonContext) -> HttpServer | None:
    s = daemon.settings
    listens = [(listen, True) for listen in s.listen_http]
    if s.prometheus and s.prometheus_listen is not None:
        listens.append((s.prometheus_listen, False))
    if not listens:
        return None
    return HttpServer(daemon, listens)
