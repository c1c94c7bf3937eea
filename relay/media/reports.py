"""RTCP reports the relay writes itself: rtpengine's `generate-RTCP` (docs/spec/ng-protocol.md
§8). One `Reports` per media side with the flag (the streams facing one party), created and
linked by the call model (relay.call.rtcp_media) and kept on the side, so it outlives a port
re-allocation. Per-call state only; its one timer runs on the plane's loop.

What it does, as rtpengine 10.5 does it:

* RTP from the party (after SRTP, on the reader that handles such streams) updates that
  source's reception statistics (rtp.reports.ReceiveStats); RTCP from the party is consumed:
  its SRs are noted for LSR/DLSR, nothing is forwarded (both sides have the flag, so neither
  party's RTCP crosses);
* RTP sent towards the party is counted per SSRC (packets, octets of the whole RTP packet, last
  timestamp);
* a timer fires 5-7 s after the side is first read, then every 10-14 s (rtpengine adds its
  5 s + up to 2 s twice per run); each run sends, for every SSRC forwarded to the party so far,
  one compound SR (+ report blocks about each source the party sends) + SDES CNAME, to the
  party's RTCP port, or its RTP port when the side muxes, protected when the leg is SRTP; the
  SR's NTP time is then the other side's LSR for that SSRC (rtpengine's own SR counts as the
  "last SR" of the source it describes).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from relay.media.stream import Stream
from rtp.reports import ReceiveStats, SendStats, count_sent, ntp, read_header, report

__all__ = ["FIRST", "MAX_SENT", "MAX_SOURCES", "NEXT", "Reports"]

FIRST = (5.0, 7.0)
"""Seconds from the first read to the first report (rtpengine: 5 s + random below 2 s)."""
NEXT = (10.0, 14.0)
"""Seconds between later reports (rtpengine adds 5 s + random below 2 s twice)."""
MAX_SENT = 4
"""SSRCs reported per side (rtpengine tracks a few outgoing SSRCs per stream); later new ones
are not counted, so a party spraying SSRCs cannot grow the state without bound."""
MAX_SOURCES = 30
"""Sources with statistics per side: the most report blocks one SR carries."""


class Reports:
    """generate-RTCP state of one media side: what its party sends, what it is sent."""

    __slots__ = (
        "cname", "rng", "rtp", "rtcp", "mux", "other", "sources", "sent", "_timer", "_loop",
        "_wallclock", "generated", "consumed",
    )  # fmt: skip

    def __init__(self, cname: bytes, rng: random.Random | None = None) -> None:
        self.cname = cname
        self.rng = rng or random.Random()
        self.rtp: Stream | None = None
        self.rtcp: Stream | None = None
        self.mux = False
        """The side muxes RTCP: reports go to the RTP port."""
        self.other: Reports | None = None
        """The opposite side's reports (its sources get our SRs as their last SR)."""
        self.sources: dict[int, ReceiveStats] = {}
        self.sent: dict[int, SendStats] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wallclock: Callable[[], float] | None = None
        self.generated = 0
        """Reports sent to the party."""
        self.consumed = 0
        """RTCP packets from the party taken in instead of forwarded."""

    # -- per packet (the full reader: relay.media.secure.reader.handle) --------------------

    def received(self, data: bytes, rtcp: bool, now: float) -> bool:
        """A plaintext packet from the party; False when it is consumed (RTCP)."""
        if rtcp:
            self.consumed += 1
            if len(data) >= 20 and data[1] == 200:
                src = self.sources.get(int.from_bytes(data[4:8], "big"))
                if src is not None:
                    src.sender_report(int.from_bytes(data[8:12], "big"),
                                      int.from_bytes(data[12:16], "big"), now)  # fmt: skip
            return False
        head = read_header(data)
        if head is not None:
            seq, ts, ssrc = head
            src = self.sources.get(ssrc)
            if src is None:
                if len(self.sources) >= MAX_SOURCES:
                    return True
                src = self.sources[ssrc] = ReceiveStats(ssrc, seq)
            src.update(seq, ts, now)
        return True

    def forwarded(self, data: bytes) -> None:
        """An RTP packet leaves towards the party."""
        count_sent(self.sent, data, MAX_SENT)

    # -- timer ------------------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop, wallclock: Callable[[], float]) -> None:
        """The plane reads the side on `loop`: start the timer once."""
        self._loop, self._wallclock = loop, wallclock
        if self._timer is None:
            self._timer = loop.call_later(self.rng.uniform(*FIRST), self._due)

    def unbind(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None

    def _due(self) -> None:
        loop, wallclock = self._loop, self._wallclock
        self._timer = None
        if loop is None or wallclock is None:
            return
        self._timer = loop.call_later(self.rng.uniform(*NEXT), self._due)
        self.send_reports(wallclock())

    def send_reports(self, now: float) -> None:
        """One report per SSRC sent to the party so far (none before any)."""
        stream = self.rtp if self.mux or self.rtcp is None else self.rtcp
        if stream is None or stream.send_blocked:
            return
        blocks = [s.block(now) for s in self.sources.values() if s.received]
        other = self.other.sources if self.other is not None else {}
        for ssrc, sent in self.sent.items():
            msw, lsw = ntp(now)
            packet = report(ssrc, sent, (msw, lsw), blocks, self.cname)
            t = stream.transport
            if t is not None:
                t.send(packet, True)
            elif stream.peer is not None:
                try:
                    stream.sock.sendto(packet, stream.peer)
                except OSError:
                    stream.send_errors += 1
                    continue
            else:
                continue
            self.generated += 1
            described = other.get(ssrc)
            if described is not None:
                described.sender_report(msw, lsw, now)
