"""A stream's SRTP contexts, DTLS session and ICE link, and what it does with each datagram
that is not forwarded as is (see the package docstring)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from relay.dtls import DtlsError, DtlsGarbage, FingerprintMismatch, HandshakeTimeout
from relay.dtls.cert import Fingerprint
from relay.dtls.demux import Kind, classify
from relay.dtls.session import DtlsSession, Role, State
from relay.ice import DropReason, Inbound
from relay.media.stream import Address, Stream
from relay.srtp import SrtpAuthError, SrtpContext, SrtpError, SrtpReplay, Suite, open_context
from relay.srtp.suites import suite as suite_named

if TYPE_CHECKING:
    from relay.media.secure.icelink import IceLink

logger = logging.getLogger("rtpvault.media.secure")

EARLY_MAX = 8
"""DTLS datagrams kept while our role is open (a ClientHello flight and a few resends)."""

__all__ = ["DROP_CAUSES", "DTLS_SUITES", "KeysCallback", "Transport"]

KeysCallback = Callable[[Stream, Suite], None]

DTLS_SUITES = {
    "SRTP_AES128_CM_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "SRTP_AES128_CM_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "SRTP_AEAD_AES_128_GCM": "AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM",
}
"""RFC 5764 §4.1.2 / RFC 7714 §14.2 profile → the SDES suite with the same transform."""

DROP_CAUSES = (
    "srtp_auth", "srtp_replay", "srtp_error", "stun", "dtls", "dtls_fingerprint",
    "dtls_timeout", "no_keys", "not_selected",
)  # fmt: skip
"""The causes `Transport.drops` reports (docs/spec/metrics.md §4.1:
rtpvault_secure_packets_dropped_total{cause})."""


class Transport:
    """SRTP contexts, DTLS session and ICE link of one stream, with its drop counters."""

    __slots__ = (
        "stream", "srtp", "srtp_in", "srtp_out", "dtls", "on_keys", "ice", "ice_key",
        "srtp_auth_failures", "srtp_replays", "srtp_errors", "stun_bad", "dtls_errors",
        "no_keys", "not_selected", "dtls_mismatches", "dtls_timeouts", "_loop", "_dtls_timer",
        "_dtls_peer", "primary", "keys_from", "held", "_early",
    )  # fmt: skip

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.srtp = False
        """The leg uses SRTP (SDES or DTLS): nothing in or out in the clear."""
        self.srtp_in: SrtpContext | None = None
        self.srtp_out: SrtpContext | None = None
        self.dtls: DtlsSession | None = None
        self.keys_from: DtlsSession | None = None
        """The DTLS session whose keys `srtp_in`/`srtp_out` hold (None: SDES or none). It may
        be an earlier session than `dtls` while a new handshake runs (relay.media.secure
        `attach_dtls(keep_keys=True)`)."""
        self.on_keys: KeysCallback | None = None
        self.held = False
        """Our DTLS role is still open (our actpass offer is not answered): what the peer sends
        waits in `_early` until the answer says who is client (`release_early`). Answering an
        early ClientHello as server breaks a peer that the answer then makes server: rtpengine
        10.5 takes our ServerHello as an unexpected message and drops its DTLS context
        (docs/spec/sdp.md §1.12b)."""
        self._early: list[tuple[bytes, Address]] = []
        self.ice: IceLink | None = None
        self.ice_key = 0
        self.srtp_auth_failures = 0
        self.srtp_replays = 0
        self.srtp_errors = 0
        """Other SRTP/SRTCP failures: too short, a packet that cannot be protected."""
        self.stun_bad = 0
        self.dtls_errors = 0
        """DTLS datagrams dropped (not DTLS, no DTLS on this leg) and failed handshakes, the
        two below included."""
        self.dtls_mismatches = 0
        """Handshakes whose peer certificate did not match its a=fingerprint."""
        self.dtls_timeouts = 0
        """Handshakes that did not complete in time."""
        self.no_keys = 0
        """Media dropped because the SRTP keys do not exist yet (DTLS not done)."""
        self.not_selected = 0
        """Media dropped because ICE has no selected pair for it (either direction)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dtls_timer: asyncio.TimerHandle | None = None
        self._dtls_peer: Address | None = None
        self.primary: Stream | None = None
        """Set on a socket of another address of an ICE agent's logical interface: media and
        DTLS arriving here take that stream's path (its SRTP, DTLS session, counters, sink);
        STUN goes to the agent under this socket's own key (relay.call.ice_media)."""

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

    def drops(self) -> list[tuple[str, int]]:
        """(cause, count) in DROP_CAUSES order; "dtls" without the fingerprint mismatches and
        timeouts, which have their own."""
        other_dtls = self.dtls_errors - self.dtls_mismatches - self.dtls_timeouts
        return [
            ("srtp_auth", self.srtp_auth_failures), ("srtp_replay", self.srtp_replays),
            ("srtp_error", self.srtp_errors), ("stun", self.stun_bad), ("dtls", other_dtls),
            ("dtls_fingerprint", self.dtls_mismatches), ("dtls_timeout", self.dtls_timeouts),
            ("no_keys", self.no_keys), ("not_selected", self.not_selected),
        ]  # fmt: skip

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
            self.stream.errors += 1
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
        # rtpengine counts a received packet it drops in the stream's errors (measured,
        # docs/spec/ng-protocol.md §4.4), so query, statistics and /metrics show it
        self.stream.errors += 1
        return None

    def accepts(self, source: Address) -> bool:
        """Media from `source` may enter: with ICE only over the selected pair."""
        link = self.ice
        if link is None or link.agent.is_selected_source(self.ice_key, source):
            return True
        self.not_selected += 1
        self.stream.errors += 1
        return False

    def send(self, data: bytes, rtcp: bool) -> None:
        """Protect (when SRTP) and send a packet towards this stream's party.
        (`destination`, inline: per packet, without the tuple it makes.)"""
        s = self.stream
        link = self.ice
        if link is None:
            sock, peer = s.sock, s.peer
            if peer is None:
                return
        else:
            route = link.route(self)  # first: protecting advances the SRTP state
            if route is None:
                self.not_selected += 1
                return
            sock, peer = route
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
            sock.sendto(data, peer)
        except OSError:
            s.send_errors += 1

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
            owner = self if self.primary is None else self.primary.transport
            if owner is None:
                self.dtls_errors += 1
                return
            owner._dtls(data, source, now)
        else:
            self.stream.errors += 1
            self.note("unknown", "datagram of no known protocol (%s): dropped", kind.value)

    def _stun(self, data: bytes, source: Address, now: float) -> None:
        link = self.ice
        if link is None:
            self.stream.errors += 1  # measured: rtpengine counts it (an SRTP/RTP error there)
            self.stun_bad += 1
            self.note("stun-no-ice", "STUN on a stream without ICE: dropped")
            return
        result = link.agent.receive(data, self.ice_key, source, now)
        if isinstance(result, DropReason):
            self.stream.errors += 1
            self.stun_bad += 1
            self.note(f"stun-{result.value}", "STUN dropped: %s", result.value)
        elif result is Inbound.MEDIA:
            self.stream.errors += 1
            self.stun_bad += 1
            self.note("stun-malformed", "datagram in the STUN range that is not STUN: dropped")
        link.pump(now)

    def _dtls(self, data: bytes, source: Address, now: float) -> None:
        session = self.dtls
        if session is None:
            self.stream.errors += 1  # measured: rtpengine counts it (an SRTP/RTP error there)
            self.dtls_errors += 1
            self.note("dtls-unexpected", "DTLS on a stream without DTLS-SRTP: dropped")
            return
        if self.held and session.state is State.NEW:
            if len(self._early) < EARLY_MAX:
                self._early.append((data, source))
            return
        try:
            out = session.receive(data, now)
        except DtlsGarbage as exc:
            self.stream.errors += 1
            self.dtls_errors += 1  # and its source is not remembered as the DTLS peer
            self.note("dtls-garbage", "DTLS datagram dropped: %s", exc)
            return
        except DtlsError as exc:
            out = self._dtls_failed(exc)
        self._dtls_peer = source
        self._send_dtls(out)
        self._check_keys()
        self._arm_dtls()

    def release_early(self) -> None:
        """The answer made us the DTLS server of this session: handle what the peer sent
        while our role was open (its retransmissions would come anyway, only later)."""
        self.held = False
        early, self._early = self._early, []
        now = self._loop.time() if self._loop is not None else time.monotonic()
        for data, source in early:
            self._dtls(data, source, now)

    def remote_fingerprint(self, fingerprint: Fingerprint) -> None:
        """The peer's a=fingerprint arrived (its answer) after the DTLS session was made: check a
        finished handshake now; keys only on a match (a mismatch is counted, logged once)."""
        session = self.dtls
        if session is None:
            return
        try:
            session.set_remote_fingerprint(fingerprint)
        except DtlsError as exc:
            self._dtls_failed(exc)
            return
        self._check_keys()

    def _dtls_failed(self, exc: DtlsError) -> list[bytes]:
        self.dtls_errors += 1
        if isinstance(exc, FingerprintMismatch):
            self.dtls_mismatches += 1
        elif isinstance(exc, HandshakeTimeout):
            self.dtls_timeouts += 1
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
            except OSError as exc:
                # not a stream error: rtpengine 10.5 shows 0 errors in query for a DTLS client
                # whose ClientHello cannot leave (measured: sec_query_both_offered)
                self.note("dtls-send", "DTLS datagram not sent: %s", exc)

    def _check_keys(self) -> None:
        session = self.dtls
        if session is None or session.keys is None or self.keys_from is session:
            return
        self.keys_from = session
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
        """One log line per call and cause; the counters (query errors, /metrics
        rtpvault_secure_packets_dropped_total) say how many followed."""
        s = self.stream
        if cause in s.notes:  # one set per call (relay.call gives its streams the call's)
            return
        s.notes.add(cause)
        logger.warning(
            "%s:%d (call %s, tag %s): " + msg + " (counted; not logged again for this call)",
            s.local_address, s.local_port, s.call_id, s.tag, *args,
            extra={"call_id": s.call_id, "tag": s.tag},
        )  # fmt: skip
