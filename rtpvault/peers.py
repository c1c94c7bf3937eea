"""Messages between the worker processes of one daemon (`num-threads` > 1).

Each worker has an inbox: one end of a datagram socketpair the supervisor makes before forking
(`Channels`); every worker keeps the other ends, so any worker can post to any inbox. The pairs
outlive a worker: one killed with -9 and forked again finds what was queued for it meanwhile, and
no other program can reach them (no address, only inherited descriptors), which is why the
messages may be pickles of our own tuples.

A message is `(kind, token, origin, payload)`. `post` sends and forgets; `ask` waits for the
handler's return value (kind `reply`, same token; `failed` with the error text raises
RuntimeError), or gives up after `timeout` (the worker died:
its calls are gone, as in a crash of rtpengine); `gather` asks every worker, itself included
(called directly, no message), and returns the answers in worker order, without the missing ones.
Handlers (`serve`) run on the loop, like an ng command.

A message larger than FRAGMENT (a whole-daemon answer over thousands of calls: `list sessions`,
`forwarding`) is compressed and, if still larger, cut into numbered fragments, reassembled by
the inbox (datagrams between two processes arrive in order, so a fragment of a newer message
from the same worker means the older one was cut short and is dropped).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import pickle
import socket
import struct
import zlib
from collections.abc import Callable
from typing import Any

from relay.ratelog import RateLimitedLog

__all__ = ["Channels", "Peers"]

log = logging.getLogger("rtpvault.peers")

ASK_TIMEOUT = 2.0
"""Seconds a worker waits for another's answer (a live worker answers in microseconds)."""
BUFFER = 4 << 20
"""Socket buffer per inbox: an ng burst queues here while the owner is busy."""
MAX_MESSAGE = 64 << 20
"""Largest message (pickled); larger ones are not sent (counted in `dropped`)."""
FRAGMENT = 256 << 10
"""Largest datagram: larger messages are compressed, then fragmented."""
_FRAGMENT_HEAD = struct.Struct("!cHIII")  # b"F", origin, message id, fragment index, count

Handler = Callable[[Any], Any]


class Channels:
    """The inboxes of `count` workers, made by the supervisor before it forks them."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        for _ in range(count):
            inbox, door = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            for sock in (inbox, door):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
                sock.setblocking(False)
            self.pairs.append((inbox, door))

    def close(self) -> None:
        for inbox, door in self.pairs:
            inbox.close()
            door.close()


class Peers:
    """This worker's side of the channels: its inbox and the doors of all the others."""

    def __init__(self, channels: Channels, index: int) -> None:
        self.index = index
        self.count = channels.count
        self._inbox = channels.pairs[index][0]
        self._doors = [door for _, door in channels.pairs]
        self._handlers: dict[str, Handler] = {}
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._tokens = itertools.count(1)
        self._buffer = bytearray(FRAGMENT + _FRAGMENT_HEAD.size)
        self._view = memoryview(self._buffer)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = RateLimitedLog(log, logging.WARNING)
        self._ids = itertools.count(1)
        self._partial: dict[int, tuple[int, list[bytes]]] = {}
        """origin → (message id, fragments so far) of the message being reassembled."""
        self.dropped = 0
        """Messages this worker could not post (an inbox full, or too large)."""

    def serve(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self._inbox.fileno(), self._receive)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._inbox.fileno())
            self._loop = None
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()

    # --- sending ------------------------------------------------------------------------------

    def post(self, to: int, kind: str, payload: Any, token: int = 0) -> bool:
        """Send without waiting; False (and counted) when it could not be queued."""
        data = pickle.dumps((kind, token, self.index, payload), pickle.HIGHEST_PROTOCOL)
        try:
            if len(data) > MAX_MESSAGE:
                raise OSError(f"message of {len(data)} bytes")
            if len(data) <= FRAGMENT:
                self._doors[to].send(data)
            else:
                self._send_large(to, zlib.compress(data, 1))
        except OSError as exc:  # BlockingIOError: that worker's inbox is full (it is stuck)
            self.dropped += 1
            self._log.log(("post", to), "cannot pass %s to worker %d: %s", kind, to, exc)
            return False
        return True

    def _send_large(self, to: int, packed: bytes) -> None:
        ident = next(self._ids) & 0xFFFFFFFF
        count = -(-len(packed) // FRAGMENT)
        for i in range(count):
            head = _FRAGMENT_HEAD.pack(b"F", self.index, ident, i, count)
            self._doors[to].send(head + packed[i * FRAGMENT:(i + 1) * FRAGMENT])

    async def ask(self, to: int, kind: str, payload: Any, timeout: float = ASK_TIMEOUT) -> Any:
        """The return value of worker `to`'s handler for `kind`; TimeoutError if none comes."""
        if to == self.index:
            return self._handlers[kind](payload)
        assert self._loop is not None, "Peers.start() first"
        token = next(self._tokens)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._waiting[token] = future
        try:
            if not self.post(to, kind, payload, token):
                raise TimeoutError(f"worker {to} unreachable")
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(token, None)

    async def gather(self, kind: str, payload: Any, timeout: float = ASK_TIMEOUT) -> list[Any]:
        """Every worker's answer, in worker order; a worker that does not answer is left out."""
        asks = [self.ask(i, kind, payload, timeout) for i in range(self.count)]
        answers = await asyncio.gather(*asks, return_exceptions=True)
        out = []
        for i, answer in enumerate(answers):
            if isinstance(answer, BaseException):
                if not isinstance(answer, TimeoutError):
                    raise answer
                self._log.log(("gather", i), "worker %d did not answer %s", i, kind)
                continue
            out.append(answer)
        return out

    # --- receiving ----------------------------------------------------------------------------

    def _receive(self) -> None:
        # Into one buffer kept for the inbox's life: recv(FRAGMENT) allocates a 256 KB object
        # per message and shrinks it, up to 30 µs a message depending on the allocator's state
        # (docs/PERFORMANCE.md, "Issue 18: workers"). Unpickling copies what it keeps.
        recv_into, view = self._inbox.recv_into, self._view
        for _ in range(64):  # a batch per loop turn, so a flood cannot starve the media
            try:
                size = recv_into(view)
            except (BlockingIOError, InterruptedError):
                return
            data: bytes | memoryview = view[:size]
            if data[:1] == b"F":
                whole = self._reassemble(bytes(data))
                if whole is None:
                    continue
                data = whole
            try:
                kind, token, origin, payload = pickle.loads(data)
            except Exception:  # noqa: BLE001 - only our own processes write here
                log.exception("undecodable message between workers")
                continue
            if kind in ("reply", "failed"):
                future = self._waiting.get(token)
                if future is not None and not future.done():
                    if kind == "reply":
                        future.set_result(payload)
                    else:
                        future.set_exception(RuntimeError(f"worker {origin}: {payload}"))
                continue
            self._dispatch(kind, token, origin, payload)

    def _reassemble(self, data: bytes) -> bytes | None:
        """The whole message once its last fragment is in, else None."""
        _, origin, ident, index, count = _FRAGMENT_HEAD.unpack_from(data)
        seen = self._partial.get(origin)
        if seen is None or seen[0] != ident:
            if index != 0:  # its beginning was lost (an inbox full): the rest is useless
                return None
            seen = self._partial[origin] = (ident, [])
        chunks = seen[1]
        if index != len(chunks):
            del self._partial[origin]
            return None
        chunks.append(data[_FRAGMENT_HEAD.size:])
        if len(chunks) < count:
            return None
        del self._partial[origin]
        try:
            return zlib.decompress(b"".join(chunks))
        except zlib.error:
            log.exception("undecodable message between workers")
            return None

    def _dispatch(self, kind: str, token: int, origin: int, payload: Any) -> None:
        handler = self._handlers.get(kind)
        if handler is None:
            log.error("no handler for %r from worker %d", kind, origin)
            return
        try:
            result = handler(payload)
        except Exception as exc:
            log.exception("handling %r from worker %d failed", kind, origin)
            if token:
                self.post(origin, "failed", f"{type(exc).__name__}: {exc}", token)
            return
        if token:
            self.post(origin, "reply", result, token)
