"""ICE agents for the streams facing a party we sent our own ICE lines to (issue 17,
RFC 8445, docs/spec/sdp.md §1.9, §1.9a).

When: as soon as an SDP with our a=ice-ufrag/a=ice-pwd has gone to a party (offer or answer),
the streams of that party's side answer its binding requests with those credentials: a browser
starts its checks before its answer reaches us through the SIP proxy. Once the party's own
ufrag/pwd and candidates are known (its SDP), the agent gets them and runs its checks.

Role as rtpengine 10.5 sets it (`__ice_offer`): controlling towards the party that received the
first offer (`MediaSide.ice_controlling`), controlled towards the offerer; a lite agent of ours
(`ICE-lite` flag) is never controlling, and a full one always controls a lite peer.

Re-offers keep the agent (same credentials: rtpengine keeps its own ufrag/pwd, §1.9a); a new
remote ufrag is the peer's ICE restart, which `IceAgent.set_remote` handles (media stays on the
old pair until a new one is nominated). New local ports (re-allocation) or another component
count (rtcp-mux settled by the answer) make a new agent. rtcp-mux: one component on the RTP
stream; otherwise RTP is component 1 and RTCP component 2. The agent's local sockets are those
components on every address our candidates name (`MediaSide.ice_addresses`: the side's own, and
sockets of their own on the logical interface's other addresses, whose media and DTLS take the
own stream's path through `Transport.primary`). Without ICE towards the party
(ICE=remove, a plain SDP): no agent. Never logs the passwords.
"""

from __future__ import annotations

import logging

from relay.call.model import MediaSide
from relay.call.secure import SecureContext
from relay.ice import IceAgent, LocalSocket
from relay.ice.own_lines import rtpengine_priority
from relay.media.plane import ForwardingPlane
from relay.media.secure import attach_ice, detach_ice
from relay.media.stream import Stream

logger = logging.getLogger("relay.calls")

HOST_TYPE_PREFERENCE = 126
"""Our candidates are host candidates (§1.9a): local preference 65535 − the address's index."""


def _own(side: MediaSide) -> list[tuple[Stream, int]]:
    """(stream, ICE component) of the side's own sockets: RTP alone when RTCP is muxed
    (required in our lines, or settled by the answer), else RTP 1 and RTCP 2."""
    rtp, rtcp = side.rtp, side.rtcp
    if rtp is None or not rtp.local_port:
        return []
    single = side.secure.ice_components == 1 or side.rtcp_mux and side.sdp is not None and (
        side.sdp.rtcp_mux
    )
    if single or rtcp is None or not rtcp.local_port:
        return [(rtp, 1)]
    return [(rtp, 1), (rtcp, 2)]


def components(side: MediaSide) -> list[tuple[Stream, int, int]]:
    """(stream, ICE component, address index) of every socket our candidates towards the
    side's party name: the side's own on its address's index, then the same components on
    each other address of its logical interface (`MediaSide.ice_addresses`)."""
    own = _own(side)
    if not own or not side.ice_addresses:
        return [(s, comp, 0) for s, comp in own]
    out = []
    for address in side.ice_addresses:
        if address.rtp is None:
            out += [(s, comp, address.index) for s, comp in own]
            continue
        extra = {1: address.rtp, 2: address.rtcp}
        out += [(st, comp, address.index) for _, comp in own
                if (st := extra[comp]) is not None]  # fmt: skip
    return out


def socket_key(stream: Stream, index: int) -> int:
    """The agent's key of a socket: unique per address index and port (two addresses often
    have the same port number)."""
    return index << 16 | stream.local_port


def _sockets(pairs: list[tuple[Stream, int, int]]) -> list[LocalSocket]:
    return [
        LocalSocket(socket_key(s, index), (s.local_address, s.local_port), comp,
                    rtpengine_priority(HOST_TYPE_PREFERENCE, 65535 - index, comp))
        for s, comp, index in pairs
    ]  # fmt: skip


def _new_agent(side: MediaSide, sockets: list[LocalSocket], ctx: SecureContext) -> IceAgent:
    state = side.secure
    assert state.ice_credentials is not None
    ufrag, pwd = state.ice_credentials
    return IceAgent(
        ufrag=ufrag, pwd=pwd, sockets=sockets,
        controlling=side.ice_controlling and not state.ice_lite_self,
        tie_breaker=ctx.rng.getrandbits(64), lite=state.ice_lite_self,
    )  # fmt: skip


def _remote(side: MediaSide, agent: IceAgent) -> None:
    """What the party said of its ICE: credentials, candidates, end of candidates."""
    state = side.secure
    if state.remote_ice is None or not state.ice_remote:
        return
    ufrag, pwd = state.remote_ice
    if (agent.remote_ufrag, agent.remote_pwd, agent.remote_lite) != (ufrag, pwd,
                                                                     state.remote_lite):
        # a changed ufrag: the peer's ICE restart; a lite peer: we control (RFC 8445 §6.1.1)
        agent.set_remote(ufrag, pwd, lite=state.remote_lite)
    agent.add_remote_candidates(state.remote_candidates)
    media = side.sdp
    if media is not None and (media.end_of_candidates or not media.ice_trickle):
        agent.end_of_candidates()  # without trickle the SDP lists them all


def _drop(side: MediaSide, plane: ForwardingPlane) -> None:
    for stream in side.all_streams():
        if stream.transport is not None and stream.transport.ice is not None:
            detach_ice(stream)
            plane.update(stream)
    side.secure.ice_agent = None


def wire_side(side: MediaSide, plane: ForwardingPlane, ctx: SecureContext) -> None:
    """Give (or take away) the ICE agent of the streams facing `side`'s party; call after every
    SDP that passed this m= line, for both of its sides."""
    state = side.secure
    pairs = components(side) if state.ice_out and state.ice_credentials else []
    if not pairs:
        _drop(side, plane)
        return
    sockets = _sockets(pairs)
    agent = state.ice_agent
    if (
        agent is None or set(agent.sockets) != {s.key for s in sockets}
        or (agent.ufrag, agent.pwd) != state.ice_credentials
    ):  # new ports, or our new ufrag/pwd answering the party's ICE restart
        _drop(side, plane)
        agent = state.ice_agent = _new_agent(side, sockets, ctx)
    _remote(side, agent)
    for stream, comp, index in pairs:
        key = socket_key(stream, index)
        t = stream.transport
        if t is None or t.ice is None or t.ice.agent is not agent or t.ice_key != key:
            if t is not None and t.ice is not None:
                detach_ice(stream)
            t = attach_ice(stream, agent, key)
        if stream is not side.rtp and stream is not side.rtcp:
            # another address's socket: what arrives there takes the path of the side's own
            # stream of that component (its SRTP, DTLS, counters, sink)
            t.primary = side.rtp if comp == 1 else side.rtcp
        plane.update(stream)  # binds the link again: checks with new candidates start now
    for stream in side.all_streams():
        if all(stream is not s for s, _, _ in pairs) and stream.transport is not None:
            detach_ice(stream)  # RTCP muxed now: its sockets leave the agent
            plane.update(stream)
