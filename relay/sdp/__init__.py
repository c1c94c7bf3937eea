"""SDP parsing and rewriting, pure (no sockets, clock, randomness or logging).

Public API:

* `parse(text) -> SessionDescription` — every line kept with its own terminator, plus parsed
  views (`SessionDescription.origin/.session_name/.connection/.direction/.ice/.rtpengine_ids`,
  and per `MediaSection`: media_type, port, port_count, protocol, formats, payload_types,
  rtpmap/fmtp/rtcp_fb per PT, `codec(pt)`, connection, effective_connection, direction, ptime,
  rtcp_mux, rtcp_port, rtcp_connection, ice, crypto, fingerprint, setup, mid,
  end_of_candidates). Raises `SdpError` (a ValueError) naming the line rtpengine would refuse.
* `render(desc) -> str` — the exact input text back.
* `rewrite(desc, SessionPlan) -> str` — the outgoing SDP, edited as rtpengine 10.5 does
  (docs/spec/sdp.md §1); one `MediaPlan` per m= section, else `SdpError`.
"""

from relay.sdp.attributes import Connection, Rtpmap
from relay.sdp.errors import SdpError
from relay.sdp.model import Line, MediaSection, Origin, SessionDescription, render
from relay.sdp.parse import parse
from relay.sdp.plan import MediaPlan, SessionPlan
from relay.sdp.rewrite import rewrite

__all__ = [
    "Connection",
    "Line",
    "MediaPlan",
    "MediaSection",
    "Origin",
    "Rtpmap",
    "SdpError",
    "SessionDescription",
    "SessionPlan",
    "parse",
    "render",
    "rewrite",
]
