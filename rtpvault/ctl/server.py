"""`listen-cli`: rtpengine-ctl's TCP protocol. A client connects, sends one command line (the
newline is optional: end of input also ends it), gets plain text back and the connection closes
(docs/spec/metrics.md §3.1). The real `rtpengine-ctl -ip ADDR -port PORT ...` and
`rtpvault ctl ...` both work against it. The commands are rtpvault.ctl.commands. A client whose
address is not in `ng-allow` is refused like every other control path: the connection closes
without a reply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from relay.config.values import Listen
from relay.listener import TcpListener, host_port, listen_tcp, stream_protocol
from rtpvault.component import DaemonContext
from rtpvault.ctl.commands import answer, catch_up, serve
from rtpvault.ctl.state import shared

__all__ = ["CtlServer", "attach"]

logger = logging.getLogger("rtpvault.ctl")

MAX_LINE = 4096
READ_TIMEOUT = 10.0
"""A client that sends no complete line in this time is dropped (it holds no loop time)."""


class CtlServer:
    def __init__(self, daemon: DaemonContext, listen: Listen) -> None:
        self.daemon = daemon
        self.listen = listen
        self.state = shared(daemon)
        serve(daemon)
        self._servers: list[TcpListener] = []
        self.commands = 0

    async def start(self) -> None:
        for host in self.listen.hosts:
            server = await listen_tcp(host, self.listen.port,
                                      stream_protocol(self._client, MAX_LINE), "CLI")
            self._servers.append(server)
            logger.info("CLI listening on %s:%d", host, self.listen.port)
        self.state.start()
        catch_up(self.daemon)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        if not self.daemon.control.admit(peer, "CLI"):
            writer.close()
            return
        try:
            try:
                data = await asyncio.wait_for(reader.readline(), timeout=READ_TIMEOUT)
            except (TimeoutError, ValueError, ConnectionError):  # slow, too long, or gone
                return
            line = data.decode("utf-8", "replace").strip()
            self.commands += 1
            logger.info("CLI command '%s' from %s", line, host_port(str(peer[0]), int(peer[1])))
            try:
                reply = await answer(self.daemon, line)
            except Exception:
                logger.exception("CLI command %r failed", line)
                reply = f"Internal error running '{line}'\n"
            writer.write(reply.encode())
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        self.state.close()

    def stats(self) -> dict[str, Any]:
        return {"cli_commands": self.commands}


def attach(daemon: DaemonContext) -> CtlServer | None:
    listen = daemon.settings.listen_cli
    if listen is None:
        return None
    return CtlServer(daemon, listen)
