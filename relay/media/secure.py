"""Per-stream secure transport of the userspace plane: SDES or DTLS-SRTP, and ICE (issue 17,
items 5-7, media side; RFC 3711, 5764, 7983, 8445).

The call model attaches a `Transport` to a `Stream` and then tells the plane (`plane.add` or
`plane.update`); the plane then reads that stream, and the stream whose sink it is, with the
secure reader of relay.media.secure_reader instead of the plain one. Plain pairs keep the plain
reader and pay nothing for this module. API::

    attach_sdes(stream, inbound_ctx, outbound_ctx)   # SDES keys (relay.srtp.open_context)
    attach_dtls(stream, session, on_keys=None)       # DTLS-SRTP (relay.dtls.session.DtlsSession)
    attach_ice(stream, agent, key)                   # ICE (relay.ice.IceAgent), `key` = the
                                                     # LocalSocket key of this stream's socket
    detach(stream)                                   # back to plain (timers cancelled)
    plane.update(stream)                             # after any of the above

One `IceAgent` may serve several streams (RTP and RTCP components, several interfaces): attach
each with its own key; they share one timer and the agent's replies leave from the socket the
agent names. `on_keys(stream, suite)` runs once when DTLS has exported the SRTP keys.

What the transport does per datagram on its socket (RFC 7983 first-byte demultiplexing):

* STUN → the ICE agent; its answers and checks are sent at once, its timer re-armed
  (`loop.call_at(agent.next_timer())`). A selected pair sets the stream's `peer`.
* DTLS → the DTLS session; handshake datagrams go back to the peer (the ICE pair when there
  is one); once keys exist, SRTP contexts for both directions are made from them.
* RTP/RTCP → unprotected with the inbound context (when the leg uses SRTP), then recorded
  (tap: plaintext only, never STUN or DTLS) and forwarded; on the way out the sink's transport
  protects with its outbound context and, with ICE, sends only to the selected pair.

A leg that asked for SRTP never receives plaintext and sends nothing before it has keys. Bad
input is dropped and counted in plain ints on the transport (`srtp_auth_failures`,
`srtp_replays`, `srtp_errors`, `stun_bad`, `dtls_errors`, `no_keys`, `not_selected`), with one
log line per stream and cause; nothing raises out of the reader. Keys and ICE passwords are
never logged. ICE and DTLS run on the loop's clock (`loop.time()`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Callable

from relay.dtls import DtlsError, DtlsGarbage
from relay.dtls.demux import Kind, classify
from relay.dtls.session import DtlsSession, Role, State
from relay.ice import DropReason, IceAgent, IceState, Inbound
from relay.media.stream import Address, Stream
from relay.srtp import SrtpAuthError, SrtpContext, SrtpError, SrtpReplay, Suite, open_context
from relay.srtp.suites import suite as suite_named

logger = logging.getLogger("rtpvault.media.secure")

__all__ = ["IceLink", "KeysCallback", "Transport", "attach_dtls", "attach_ice", "attach_sdes",
           "detach"]  # fmt: skip

KeysCallback = Callable[[Stream, Suite], None]

DTLS_SUITES = {
    "SRTP_AES128_CM_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "SRTP_AES128_CM_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "SRTP_AEAD_AES_128_GCM": "AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM",
}
"""RFC 5764 §4.1.2 / RFC 7714 §14.2 profile → the SDES suite with the same transform."""


class Transport:
    """SRTP contexts, DTLS session and ICE link of one stream, with its drop counters."""

    __slots__ = (
        "stream", "srtp", "srtp_in", "srtp_out", "dtls", "on_keys", "ice", "ice_key",
        "srtp_auth_failures", "srtp_replays", "srtp_errors", "stun_bad", "dtls_errors",
        "no_keys", "not_selected", "_loop", "_dtls_timer", "_dtls_peer", "_logged",
    )  # fmt: skip

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.srtp = False
        """The leg uses SRTP (SDES or DTLS): nothing in or out in the clear."""
        self.srtp_in: SrtpContext | None = None
        self.srtp_out: SrtpContext | None = None
        self.dtls: DtlsSession | None = None
        self.on_keys: KeysCallback | None = None
        self.ice: IceLink | None = None
        self.ice_key = 0
        self.srtp_auth_failures = 0
        self.srtp_replays = 0
        self.srtp_errors = 0
        """Other SRTP/SRTCP failures: too short, a packet that cannot be protected."""
        self.stun_bad = 0
        self.dtls_errors = 0
        self.no_keys = 0
        """Media dropped because the SRTP keys do not exist yet (DTLS not done)."""
        self.not_selected = 0
        """Media dropped because ICE has no selected pair for it (either direction)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dtls_timer: asyncio.TimerHandle | None = None
        self._dtls_peer: Address | None = None
        self._logged: set[str] = set()

    # -- what query/statistics read -----------------------------------------------------------

    @property
    def suite(self) -> str | None:
        """The SRTP suite in use (both directions share it), None before keys."""
        return self.srtp_out.suite.name if self.srtp_out is not None else None

    @property
    def dtls_state(self) -> str | None:
        return self.dtls.state.value if self.dtls is not None else None

    @property
    def ice_state(self) -> str | None:
        return self.ice.agent.state.value if self.ice is not None else None

    # -- loop binding (by the plane) ------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The plane reads this stream on `loop`: run timers there, start a DTLS client."""
        self._loop = loop
        if self.ice is not None:
            self.ice.bind(self, loop)
        self.maybe_start_dtls()
        self._arm_dtls()

    def unbind(self) -> None:
        """The plane stopped reading the stream: cancel its timers."""
        self.cancel_dtls_timer()
        if self.ice is not None:
            self.ice.release(self)
        self._loop = None

    # -- media (called by the secure reader) ----------------------------------------------------

    def unprotect(self, data: bytes, rtcp: bool) -> bytes | None:
        """The plaintext of a received packet, or None when dropped (counted)."""
        if not self.srtp:
            return data
        ctx = self.srtp_in
        if ctx is None:
            self.no_keys += 1
            return None
        try:
            return ctx.unprotect_rtcp(data) if rtcp else ctx.unprotect_rtp(data)
        except SrtpAuthError:
            self.srtp_auth_failures += 1
            self.note("srtp-auth", "SRTP authentication failed: dropped")
        except SrtpReplay:
            self.srtp_replays += 1
            self.note("srtp-replay", "SRTP replayed or too old packet: dropped")
        except SrtpError as exc:
            self.srtp_errors += 1
            self.note("srtp-error", "SRTP packet dropped: %s", exc)
        return None

    def accepts(self, source: Address) -> bool:
        """Media from `source` may enter: with ICE only over the selected pair."""
        link = self.ice
        if link is None or link.agent.is_selected_source(self.ice_key, source):
            return True
        self.not_selected += 1
        return False

    def send(self, data: bytes, rtcp: bool) -> None:
        """Protect (when SRTP) and send a packet towards this stream's party."""
        dest = self.destination()  # first: protecting advances the SRTP state
        if dest is None:
            if self.ice is not None:
                self.not_selected += 1
            return
        if self.srtp:
            ctx = self.srtp_out
            if ctx is None:
                self.no_keys += 1
                return
            try:
                data = ctx.protect_rtcp(data) if rtcp else ctx.protect_rtp(data)
            except SrtpError as exc:
                self.srtp_errors += 1
                self.note("srtp-protect", "packet for the SRTP leg cannot be protected: %s", exc)
                return
        try:
            dest[0].sendto(data, dest[1])
        except OSError:
            self.stream.send_errors += 1

    def destination(self) -> tuple[socket.socket, Address] | None:
        """(socket, address) media leaves through: the ICE pair, else the stream's peer."""
        s = self.stream
        if self.ice is not None:
            return self.ice.route(self)
        return None if s.peer is None else (s.sock, s.peer)

    # -- STUN, DTLS, anything else (not RTP/RTCP) ---------------------------------------------

    def control(self, data: bytes, source: Address, now: float) -> None:
        """A datagram whose first byte is not RTP/RTCP (RFC 7983 §7)."""
        kind = classify(data)
        if kind is Kind.STUN:
            self._stun(data, source, now)
        elif kind is Kind.DTLS:
            self._dtls(data, source, now)
        else:
            self.stream.errors += 1
            self.note("unknown", "datagram of no known protocol (%s): dropped", kind.value)

    def _stun(self, data: bytes, source: Address, now: float) -> None:
        link = self.ice
        if link is None:
            self.stun_bad += 1
            self.note("stun-no-ice", "STUN on a stream without ICE: dropped")
            return
        result = link.agent.receive(data, self.ice_key, source, now)
        if isinstance(result, DropReason):
            self.stun_bad += 1
            self.note(f"stun-{result.value}", "STUN dropped: %s", result.value)
        elif result is Inbound.MEDIA:
            self.stun_bad += 1
            self.note("stun-malformed", "datagram in the STUN range that is not STUN: dropped")
        link.pump(now)

    def _dtls(self, data: bytes, source: Address, now: float) -> None:
        session = self.dtls
        if session is None:
            self.dtls_errors += 1
            self.note("dtls-unexpected", "DTLS on a stream without DTLS-SRTP: dropped")
            return
        try:
            out = session.receive(data, now)
        except DtlsGarbage as exc:
            self.dtls_errors += 1  # and its source is not remembered as the DTLS peer
            self.note("dtls-garbage", "DTLS datagram dropped: %s", exc)
            return
        except DtlsError as exc:
            out = self._dtls_failed(exc)
        self._dtls_peer = source
        self._send_dtls(out)
        self._check_keys()
        self._arm_dtls()

    def _dtls_failed(self, exc: DtlsError) -> list[bytes]:
        self.dtls_errors += 1
        self.note(f"dtls-{type(exc).__name__}", "DTLS-SRTP failed: %s", exc)
        return list(exc.outgoing)

    def maybe_start_dtls(self) -> None:
        """A DTLS client starts once it knows where to send (ICE pair or the SDP peer)."""
        session, loop = self.dtls, self._loop
        if session is None or loop is None or session.role is not Role.CLIENT:
            return
        if session.state is not State.NEW or self.destination() is None:
            return
        self._send_dtls(session.start(loop.time()))
        self._arm_dtls()

    def _send_dtls(self, datagrams: list[bytes]) -> None:
        if not datagrams:
            return
        dest = self.destination()
        if dest is None or self.ice is None and self._dtls_peer is not None:
            # no ICE: answer where the handshake comes from (the SDP peer may be behind NAT)
            peer = self._dtls_peer or self.stream.peer
            if peer is None:
                return  # nowhere yet: the retransmission timer tries again
            dest = (self.stream.sock, peer)
        for d in datagrams:
            try:
                dest[0].sendto(d, dest[1])
            except OSError:
                self.stream.send_errors += 1

    def _check_keys(self) -> None:
        session = self.dtls
        if session is None or session.keys is None or self.srtp_in is not None:
            return
        keys = session.keys
        suite = suite_named(DTLS_SUITES[keys.profile.openssl_name])
        self.srtp_in = open_context(suite, keys.remote(session.role), outbound=False)
        self.srtp_out = open_context(suite, keys.local(session.role), outbound=True)
        s = self.stream
        logger.info("DTLS-SRTP established on %s:%d (call %s), suite %s", s.local_address,
                    s.local_port, s.call_id, suite.name)  # fmt: skip
        if self.on_keys is not None:
            self.on_keys(s, suite)

    def cancel_dtls_timer(self) -> None:
        if self._dtls_timer is not None:
            self._dtls_timer.cancel()
            self._dtls_timer = None

    def _arm_dtls(self) -> None:
        self.cancel_dtls_timer()
        session, loop = self.dtls, self._loop
        due = None if session is None else session.next_timeout()
        if due is not None and loop is not None:
            self._dtls_timer = loop.call_at(due, self._dtls_due)

    def _dtls_due(self) -> None:
        self._dtls_timer = None
        session, loop = self.dtls, self._loop
        if session is None or loop is None:
            return
        try:
            out = session.handle_timeout(loop.time())
        except DtlsError as exc:
            out = self._dtls_failed(exc)
        self._send_dtls(out)
        self._arm_dtls()

    def note(self, cause: str, msg: str, *args: object) -> None:
        """One log line per stream and cause; the counters say how many followed."""
        if cause in self._logged:
            return
        self._logged.add(cause)
        s = self.stream
        logger.warning(
            "%s:%d (call %s, tag %s): " + msg + " (counted; not logged again for this stream)",
            s.local_address, s.local_port, s.call_id, s.tag, *args,
            extra={"call_id": s.call_id, "tag": s.tag},
        )  # fmt: skip


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
            if route is not None and t.stream.peer != route[1]:
                t.stream.peer = route[1]
                t.stream.confirmed = True
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


_links: weakref.WeakKeyDictionary[IceAgent, IceLink] = weakref.WeakKeyDictionary()


def _transport(stream: Stream) -> Transport:
    if stream.transport is None:
        stream.transport = Transport(stream)
    return stream.transport


def attach_sdes(stream: Stream, inbound: SrtpContext, outbound: SrtpContext) -> Transport:
    """SDES-keyed SRTP on `stream`'s leg: unprotect what arrives, protect what leaves.
    Replaces DTLS-SRTP if the leg had it (the answer chose SDES)."""
    t = _transport(stream)
    t.srtp, t.srtp_in, t.srtp_out = True, inbound, outbound
    if t.dtls is not None:
        t.dtls = t.on_keys = None
        t.cancel_dtls_timer()
    return t


def attach_dtls(
    stream: Stream, session: DtlsSession, on_keys: KeysCallback | None = None
) -> Transport:
    """DTLS-SRTP on `stream`'s leg: no media either way until `session` has exported keys."""
    t = _transport(stream)
    t.cancel_dtls_timer()
    t.srtp, t.srtp_in, t.srtp_out = True, None, None
    t.dtls, t.on_keys, t._dtls_peer = session, on_keys, None
    return t


def attach_ice(stream: Stream, agent: IceAgent, key: int) -> Transport:
    """ICE on `stream`'s socket, which is `agent`'s LocalSocket `key`."""
    if key not in agent.sockets:
        raise ValueError(f"ICE agent has no local socket {key}; it has {sorted(agent.sockets)}")
    t = _transport(stream)
    link = _links.get(agent)
    if link is None:
        link = _links[agent] = IceLink(agent)
    t.ice, t.ice_key = link, key
    link.transports[key] = t
    return t


def detach(stream: Stream) -> None:
    """Back to a plain stream (timers cancelled); call `plane.update(stream)` after."""
    t = stream.transport
    if t is None:
        return
    t.unbind()
    if t.ice is not None:
        t.ice.transports.pop(t.ice_key, None)
    stream.transport = None
