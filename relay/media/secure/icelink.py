"""One ICE agent driven on the loop for the streams attached to it (RFC 8445): its datagrams
sent from the socket each names, its selection followed into the streams' `peer`, one timer."""

from __future__ import annotations

import asyncio
import logging
import socket

from relay.ice import IceAgent, IceState
from relay.media.secure.transport import Transport
from relay.media.stream import Address

logger = logging.getLogger("rtpvault.media.secure")

__all__ = ["IceLink"]


class IceLink:
    """One `IceAgent` shared by the streams attached to it: socket keys, one timer."""

    def __init__(self, agent: IceAgent) -> None:
        self.agent = agent
        self.transports: dict[int, Transport] = {}
        self.bound: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._state = agent.state

    def bind(self, transport: Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.bound.add(transport.ice_key)
        self._loop = loop
        self.pump(loop.time())

    def release(self, transport: Transport) -> None:
        self.bound.discard(transport.ice_key)
        if not self.bound and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def route(self, transport: Transport) -> tuple[socket.socket, Address] | None:
        """The selected pair of `transport`'s component: (local socket, remote address)."""
        sock = self.agent.sockets.get(transport.ice_key)
        selected = None if sock is None else self.agent.selected(sock.component)
        if selected is None:
            return None
        local = self.transports.get(selected[0])
        return None if local is None else (local.stream.sock, selected[1])

    def pump(self, now: float) -> None:
        """Send what the agent has to send, follow its selection, re-arm its timer."""
        for tx in self.agent.datagrams_to_send():
            t = self.transports.get(tx.socket)
            if t is None:
                continue
            try:
                t.stream.sock.sendto(tx.data, tx.addr)
            except OSError:
                t.stream.send_errors += 1
        for t in self.transports.values():
            route = self.route(t)
            if route is None:
                continue
            if t.stream.peer != route[1]:
                t.stream.peer = route[1]
                t.stream.confirmed = True
            # also when the pair is the SDP's peer already: a DTLS client waits for a pair
            t.maybe_start_dtls()
        self._log_state()
        self._arm()

    def _log_state(self) -> None:
        state = self.agent.state
        if state is self._state:
            return
        self._state = state
        level = logging.WARNING if state is IceState.FAILED else logging.INFO
        for t in self.transports.values():
            s = t.stream
            logger.log(level, "ICE %s on %s:%d (call %s)", state.value, s.local_address,
                       s.local_port, s.call_id)  # fmt: skip

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.agent.next_timer()
        if due is not None and self._loop is not None and self.bound:
            self._timer = self._loop.call_at(due, self._due)

    def _due(self) -> None:
        self._timer = None
        if self._loop is None:
            return
        now = self._loop.time()
        self.agent.handle_timer(now)
        self.pump(now)
