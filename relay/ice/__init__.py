"""ICE (RFC 8445, 8839, 7675) as sans-IO parts: SDP attributes, rtpengine's own ICE lines, agent.

Nothing here owns a socket or a clock; the media plane feeds datagrams and `now` in and sends
what comes out. The call model runs one agent per side (relay.call.ice_media, issue 17).
"""

from relay.ice.agent import IceAgent, IceState, Inbound, Transmit
from relay.ice.checks import LocalSocket
from relay.ice.own_lines import CandidateKind, LocalInterface, OwnIce, render_own_ice
from relay.ice.sdp import Candidate, IceSdpError, parse_attribute, render_attribute
from relay.ice.stun import DropReason

__all__ = [
    "Candidate",
    "CandidateKind",
    "DropReason",
    "IceAgent",
    "IceSdpError",
    "IceState",
    "Inbound",
    "LocalInterface",
    "LocalSocket",
    "OwnIce",
    "Transmit",
    "parse_attribute",
    "render_attribute",
    "render_own_ice",
]
