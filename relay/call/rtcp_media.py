"""generate-RTCP from the call model to the media plane (docs/spec/ng-protocol.md §8): after
every offer and answer, each media line whose sides have the flag gets a `Reports` per side
(relay.media.reports) on its RTP and RTCP streams, linked to the opposite side's; a side whose
flag was turned off loses it. The plane's next `update` picks the reader and starts the timer.

rtpengine 10.5 sets the flag on both sides of every m= line of the request that carries it
(`generate-RTCP` word, or the `generate-RTCP` key `on`; the key `off` clears it), so both
parties get reports and neither party's RTCP is forwarded while it is on.
"""

from __future__ import annotations

from relay.call.model import MediaSide
from relay.call.rng import CallRandom
from relay.media.reports import Reports


def apply_flag(s_side: MediaSide, r_side: MediaSide, flag: bool | None) -> None:
    """The request's generate-RTCP (None: not mentioned) on both sides of one line."""
    if flag is not None:
        s_side.rtcp_gen = r_side.rtcp_gen = flag


def wire_line(a: MediaSide, b: MediaSide, cname: str, rng: CallRandom | None = None) -> None:
    """Attach, re-link or remove the reports of the two sides of one media line; new reports
    time themselves with a generator derived from the call's `rng` (media-time draws must not
    move the call's signalling stream: relay.call.rng)."""
    for side in (a, b):
        streams = side.streams()
        if not side.rtcp_gen or side.rtp is None or not side.port:
            if side.reports is not None:
                side.reports.unbind()
                side.reports = None
            for s in streams:
                s.reports = None
            continue
        r = side.reports
        if r is None:
            timing = None if rng is None else rng.derive(f"rtcp {side.index} {side is a}")
            r = side.reports = Reports(cname.encode(), timing)
        r.rtp, r.rtcp, r.mux = side.rtp, side.rtcp, side.rtcp_mux
        for s in streams:
            s.reports = r
    if a.reports is not None and b.reports is not None:
        a.reports.other, b.reports.other = b.reports, a.reports
