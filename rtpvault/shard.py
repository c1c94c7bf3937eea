"""Calls sharded over the worker processes by call-id, behind one ng endpoint (`num-threads`).

Every worker listens on the same ng addresses (SO_REUSEPORT); the kernel gives each client
socket to one of them. A request for a call another worker owns is handed to that worker over
rtpvault.peers: over UDP the owner answers from its own `listen-ng` socket (same address, so a
proxy's connected socket accepts it) and keeps the reply in its cache, where the retransmissions,
handed on the same way, find it; over TCP and HTTP the answer comes back to the worker holding
the connection. `list` and `statistics` concern no call: the worker that got them asks every
worker for its part and merges (relay.ng.commands `part`/`merge`), so the reply is what one
process with all the calls would give.

The owner of a call-id is `crc32(call-id) % workers`: the same in every process and across
restarts (Python's own str hash is salted per process).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from typing import TYPE_CHECKING, Any

from relay.control import ReplyPath, Source
from relay.ng.codec import NgRequest, encode_reply, error_reply
from relay.ng.errors import NgError

if TYPE_CHECKING:
    from relay.control import NgControlServer
    from relay.ng.commands import Commands
    from rtpvault.peers import Peers

__all__ = ["Shard", "owner_of"]

log = logging.getLogger("rtpvault.shard")

Handed = tuple[bytes, dict[str, Any], bool, Source]
"""A request handed to the call's owner: cookie, decoded body, came as JSON, source."""


def owner_of(call_id: str, workers: int) -> int:
    """The worker index that owns `call_id` among `workers`."""
    return zlib.crc32(call_id.encode("utf-8", "surrogatepass")) % workers


class Shard:
    """This worker's router (NgControlServer.router) and its side of the hand-off."""

    def __init__(self, peers: Peers, control: NgControlServer, commands: Commands) -> None:
        self.peers = peers
        self.index = peers.index
        self.count = peers.count
        self.control = control
        self.commands = commands
        self._tasks: set[asyncio.Task[None]] = set()
        self.handed = 0
        """Requests this worker passed to the owner of their call."""
        peers.serve("ng-udp", self._owned_udp)
        peers.serve("ng", self._owned)
        peers.serve("part", self._part)
        control.router = self.route

    def owner(self, call_id: str) -> int:
        return owner_of(call_id, self.count)

    # --- the receiving worker -----------------------------------------------------------------

    def route(self, request: NgRequest, source: Source, path: ReplyPath) -> bool:
        body = request.body
        command = request.command
        if command in self.commands.WIDE:
            if not self.commands.wide_ok(command, body):
                return False  # its error reply is the same from any worker: answered here
            self._spawn(self._wide(request, source, path))
            return True
        call_id = self.commands.call_id_of(command, body)
        if call_id is None:
            return False
        owner = owner_of(call_id, self.count)
        if owner == self.index:
            return False
        self.handed += 1
        # which worker a client's requests reach is the kernel's choice (SO_REUSEPORT): this
        # line is how an operator (and tests/integration/workers) sees the hand-off happen
        log.debug("worker %d: %s of call %s from %s:%s handed to worker %d", self.index, command,
                  call_id, source[0], source[1], owner)  # fmt: skip
        # The decoded request, not the datagram: the owner would decode it a second time, while
        # pickling the dict costs a tenth of that (docs/PERFORMANCE.md, "Issue 18: workers").
        handed = (request.cookie, body, request.is_json, source)
        if path.udp >= 0:
            self.peers.post(owner, "ng-udp", (*handed, path.udp))
        else:
            self._spawn(self._ask(owner, handed, path))
        return True

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ask(self, owner: int, handed: Handed, path: ReplyPath) -> None:
        try:
            reply = await self.peers.ask(owner, "ng", handed)
        except TimeoutError:
            return  # the owner died: no reply, as from a crashed rtpengine
        if reply is not None:
            path.send(reply)

    async def _wide(self, request: NgRequest, source: Source, path: ReplyPath) -> None:
        command = request.command
        started, received = time.perf_counter(), time.time()  # timed as dispatch times one
        try:
            parts = await self.peers.gather("part", command)
            reply = self.commands.wide(command, parts, request.body, source, started, received)
        except NgError as exc:
            reply = error_reply(exc.reason)
        except Exception as exc:  # noqa: BLE001 - as NgControlServer does for a handler bug
            log.exception("Internal error merging %r from the workers", command)
            reply = error_reply(f"Internal error: {type(exc).__name__}")
            path.send(encode_reply(request.cookie, reply, request.is_json))
            return
        path.send(self.control.complete(request.cookie, reply, request.is_json, source,
                                        command))  # fmt: skip

    # --- the owner ----------------------------------------------------------------------------

    def _owned_udp(self, payload: tuple[bytes, dict[str, Any], bool, Source, int]) -> None:
        cookie, body, is_json, source, udp = payload
        reply = self.control.handle_parsed(NgRequest(cookie, body, is_json), source)
        if reply is not None:
            self.control.send_udp(udp, reply, source)

    def _owned(self, payload: Handed) -> bytes | None:
        cookie, body, is_json, source = payload
        return self.control.handle_parsed(NgRequest(cookie, body, is_json), source)

    def _part(self, command: str) -> Any:
        return self.commands.part(command)
