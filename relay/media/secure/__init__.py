"""Per-stream secure transport of the userspace plane: SDES or DTLS-SRTP, and ICE (issue 17,
items 5-7, media side; RFC 3711, 5764, 7983, 8445).

The call model attaches a `Transport` to a `Stream` and then tells the plane (`plane.add` or
`plane.update`); the plane then reads that stream, and the stream whose sink it is, with the
secure reader of relay.media.secure.reader instead of the plain one. Plain pairs keep the plain
reader and pay nothing for this module. API::

    attach_sdes(stream, inbound_ctx, outbound_ctx)   # SDES keys (relay.srtp.open_context)
    attach_dtls(stream, session, on_keys=None)       # DTLS-SRTP (relay.dtls.session.DtlsSession)
    attach_ice(stream, agent, key)                   # ICE (relay.ice.IceAgent), `key` = the
                                                     # LocalSocket key of this stream's socket
    detach(stream)                                   # back to plain (timers cancelled)
    detach_ice(stream)                               # ICE off, SRTP/DTLS kept
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
`srtp_replays`, `srtp_errors`, `stun_bad`, `dtls_errors` with `dtls_mismatches` and
`dtls_timeouts`, `no_keys`, `not_selected`; `drop_counts(stream)` by cause, what /metrics
shows, docs/spec/metrics.md §4.1), a dropped received datagram also in the stream's `errors`
as rtpengine counts it (docs/spec/ng-protocol.md §4.4), with one log line per call and cause
(`Stream.notes`, one set per call); nothing raises out of the reader. Keys and ICE passwords
are never logged. ICE and DTLS run on the loop's clock (`loop.time()`).
"""

from relay.media.secure.attach import (
    attach_dtls,
    attach_ice,
    attach_sdes,
    detach,
    detach_ice,
    drop_counts,
)
from relay.media.secure.icelink import IceLink
from relay.media.secure.reader import handle, secure_reader
from relay.media.secure.transport import DROP_CAUSES, KeysCallback, Transport

__all__ = [
    "IceLink",
    "DROP_CAUSES",
    "KeysCallback",
    "Transport",
    "attach_dtls",
    "attach_ice",
    "attach_sdes",
    "detach",
    "detach_ice",
    "drop_counts",
    "handle",
    "secure_reader",
]
