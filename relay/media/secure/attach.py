"""The API the call model calls: attach SDES, DTLS-SRTP or ICE to a stream, or detach."""

from __future__ import annotations

import weakref

from relay.dtls.session import DtlsSession
from relay.ice import IceAgent
from relay.media.secure.icelink import IceLink
from relay.media.secure.transport import DROP_CAUSES, KeysCallback, Transport
from relay.media.stream import Stream
from relay.srtp import SrtpContext

__all__ = ["attach_dtls", "attach_ice", "attach_sdes", "detach", "detach_ice", "drop_counts"]


_links: weakref.WeakKeyDictionary[IceAgent, IceLink] = weakref.WeakKeyDictionary()


def _transport(stream: Stream) -> Transport:
    if stream.transport is None:
        stream.transport = Transport(stream)
    return stream.transport


def attach_sdes(
    stream: Stream, inbound: SrtpContext, outbound: SrtpContext | None
) -> Transport:
    """SDES-keyed SRTP on `stream`'s leg: unprotect what arrives, protect what leaves (no
    `outbound`: nothing leaves, counted as `no_keys`). Replaces DTLS-SRTP if the leg had it
    (the answer chose SDES)."""
    t = _transport(stream)
    t.srtp, t.srtp_in, t.srtp_out = True, inbound, outbound
    t.keys_from = None
    if t.dtls is not None:
        t.dtls = t.on_keys = None
        t.cancel_dtls_timer()
    return t


def attach_dtls(
    stream: Stream, session: DtlsSession, on_keys: KeysCallback | None = None,
    keep_keys: bool = False, held: bool = False,
) -> Transport:
    """DTLS-SRTP on `stream`'s leg: no media either way until `session` has exported keys;
    `keep_keys`: the keys of the session it replaces stay in use until then (a DTLS role
    change, as rtpengine 10.5 does: docs/spec/sdp.md §1.12b "Re-offers"); `held`: our role is
    open, the peer's datagrams wait for `Transport.release_early` (§1.12b, the racy case)."""
    t = _transport(stream)
    t.cancel_dtls_timer()
    if not (keep_keys and t.keys_from is not None):
        t.srtp_in = t.srtp_out = t.keys_from = None
    t.srtp = True
    t.dtls, t.on_keys, t._dtls_peer = session, on_keys, None
    t.held, t._early = held, []
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
    """Back to a plain stream (timers cancelled); call `plane.update(stream)` after. The
    transport's drop counts stay on the stream (`drop_counts`)."""
    t = stream.transport
    if t is None:
        return
    stream.retired_drops = dict(drop_counts(stream))
    t.unbind()
    if t.ice is not None:
        t.ice.transports.pop(t.ice_key, None)
    stream.transport = None


def drop_counts(stream: Stream) -> list[tuple[str, int]]:
    """(cause, count) of the secure drops on `stream` (DROP_CAUSES order): its transport's,
    plus those of transports detached from it before."""
    t = stream.transport
    now = t.drops() if t is not None else [(cause, 0) for cause in DROP_CAUSES]
    old = stream.retired_drops
    return now if old is None else [(cause, n + old.get(cause, 0)) for cause, n in now]


def detach_ice(stream: Stream) -> None:
    """No ICE on `stream` any more (its SRTP/DTLS stay); call `plane.update(stream)` after."""
    t = stream.transport
    if t is None or t.ice is None:
        return
    t.ice.release(t)
    t.ice.transports.pop(t.ice_key, None)
    t.ice = None
    if not t.srtp and t.dtls is None:
        detach(stream)
