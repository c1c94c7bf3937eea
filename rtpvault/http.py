"""The `listen-http` listener (and the guide's `prometheus = yes` + `prometheus-listen`):
`GET /metrics`, `GET /ping`, `GET /cli/<command>` and `POST /ng`, as rtpengine 10.5 serves them
(spec/metrics.md §1.1, §2): `text/plain` bodies, 404 `not found` for anything else.

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

from relay.config_values import Listen
from relay.listener import TcpListener, listen_tcp, stream_protocol
from rtpvault.ctlcommands import run as run_cli
from rtpvault.ctlstate import shared
from rtpvault.prometheus import exposition, make_registry

logger = logging.getLogger("rtpvault.http")

MAX_HEADER = 16384
MAX_BODY = 1 << 20


class HttpServer:
    def __init__(self, daemon: Any, listens: list[Listen]) -> None:
        self.daemon = daemon
        self.listens = listens
        self.registry, self.collector = make_registry(daemon)
        self.state = shared(daemon)
        self._servers: list[TcpListener] = []
        self.requests = 0

    async def start(self) -> None:
        for listen in self.listens:
            for host in listen.hosts:
                self._servers.append(await listen_tcp(host, listen.port,
                                                      stream_protocol(self._client), "HTTP"))
                logger.info("HTTP listening on %s:%d (/metrics, /ping, /cli, /ng)", host,
                            listen.port)  # fmt: skip
        self.state.start()

    def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        self.state.close()

    def stats(self) -> dict[str, Any]:
        return {"http_requests": self.requests}

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
            length = int(headers.get("content-length", "0") or 0)
            if length > MAX_BODY:
                await self._reply(writer, 413, b"too large\n")
                return
            if length:
                body = await asyncio.wait_for(reader.readexactly(length), timeout=10)
            self.requests += 1
            status, ctype, payload = self._route(method, target, headers, body, writer)
            await self._reply(writer, status, payload, ctype)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()

    def _route(self, method: str, target: str, headers: dict[str, str], body: bytes,
               writer: asyncio.StreamWriter) -> tuple[int, str, bytes]:  # fmt: skip
        path = urllib.parse.urlsplit(target).path
        if method == "GET" and path == "/metrics":
            return 200, "text/plain", exposition(self.registry, self.collector)
        if method == "GET" and path == "/ping":
            return 200, "text/plain", b"pong\n"
        if method == "GET" and path.startswith("/cli/"):
            command = urllib.parse.unquote(path[5:])
            return 200, "text/plain", run_cli(self.daemon, command).encode()
        ctype = headers.get("content-type", "")
        if method == "POST" and path == "/ng" and ctype.startswith("application/x-rtpengine-ng"):
            return 200, "application/x-rtpengine-ng", self._ng(body, writer)
        return 404, "text/plain", b"not found\n"

    def _ng(self, body: bytes, writer: asyncio.StreamWriter) -> bytes:
        peer = writer.get_extra_info("peername") or ("127.0.0.1", 0)
        return self.daemon.control.handle(body, (str(peer[0]), int(peer[1]))) or b""

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, payload: bytes,
                     ctype: str = "text/plain") -> None:  # fmt: skip
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Payload Too Large"}[status]
        writer.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\n"
                     f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
                     + payload)  # fmt: skip
        await writer.drain()


def attach(daemon: Any) -> HttpServer | None:
    s = daemon.settings
    listens = list(s.listen_http)
    if s.prometheus and s.prometheus_listen is not None:
        listens.append(s.prometheus_listen)
    if not listens:
        return None
    return HttpServer(daemon, listens)
