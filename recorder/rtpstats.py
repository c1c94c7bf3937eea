"""Per-stream RTP statistics after RFC 3550 (sequence tracking of appendix A.1, interarrival
jitter of A.8) and an estimated MOS from a simplified ITU-T G.107 E-model.

Pure: the caller gives each packet's bytes and its arrival time (seconds, any epoch); there is no
clock, socket or logging here. One `RtpStats` follows one stream; when the SSRC changes (a new
source on the same port) the sequence and jitter state start over while the counters go on.
Hand-written rather than dpkt.rtp: this runs once per relayed packet, and one `unpack_from` of the
fixed header is several times cheaper than building a dpkt object.
"""

from __future__ import annotations

import struct
from typing import Any

from rtp.demux import RTCP_MARKED_PTS
from rtp.payload_types import STATIC_CLOCK_RATES

__all__ = ["RtpStats", "clock_rate_for", "mos_g107", "STATIC_CLOCK_RATES"]

_HEADER = struct.Struct("!BBHII")

DEFAULT_CLOCK_RATE = 8000
# PTs 72-76 read as RTCP SR..APP with the marker bit set: two comparisons, not a range lookup
_MARKED_FIRST, _MARKED_LAST = RTCP_MARKED_PTS[0], RTCP_MARKED_PTS[-1]

# RFC 3550 A.1 constants.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
SEQ_MOD = 1 << 16
# How far back duplicates are recognised (sequence numbers behind the highest one seen).
DUP_WINDOW = MAX_MISORDER + 1
_DUP_MASK = (1 << DUP_WINDOW) - 1

G711_PTS = frozenset((0, 8))


def clock_rate_for(pt: int, dynamic: dict[int, int] | None = None) -> int:
    """The RTP clock rate of payload type `pt`: `dynamic` first, then RFC 3551, else 8000."""
    if dynamic and pt in dynamic:
        return dynamic[pt]
    return STATIC_CLOCK_RATES.get(pt, DEFAULT_CLOCK_RATE)


def mos_g107(loss_pct: float, jitter_ms: float, delay_ms: float = 0.0) -> float:
    """Estimated MOS (1.0–4.5) of a G.711 stream, simplified E-model (ITU-T G.107).

    R = 93.2 − Id − Ie,eff with Ie = 0 and Bpl = 25.1 for G.711 with packet-loss concealment
    (G.113 appendix I), Ppl the loss in percent; the one-way delay Id uses the common
    simplification d = delay + 2·jitter + 10 ms (a jitter buffer twice the jitter plus one frame).
    """
    d = delay_ms + 2.0 * jitter_ms + 10.0
    i_d = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ppl = max(0.0, min(100.0, loss_pct))
    ie_eff = 95.0 * ppl / (ppl + 25.1)
    r = 93.2 - i_d - ie_eff
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6


class RtpStats:
    """RFC 3550 receive statistics of one RTP stream; feed it with `update`."""

    __slots__ = (
        "clock_rates", "ssrc", "packets", "bytes", "out_of_order", "duplicates",
        "first", "last", "payload_types", "_max", "_base", "_bad", "_received",
        "_prior_expected", "_prior_received", "_window", "_jitter", "_max_jitter",
        "_last_arrival", "_last_ts", "_started", "_accepted", "_pt", "_rate",
    )  # fmt: skip

    def __init__(self, clock_rates: dict[int, int] | None = None) -> None:
        self.clock_rates: dict[int, int] = dict(clock_rates or {})
        self.ssrc: int | None = None
        self.packets = 0
        self.bytes = 0
        self.out_of_order = 0
        self.duplicates = 0
        self.first: float | None = None
        self.last: float | None = None
        self.payload_types: list[int] = []
        self._started = False
        self._max = 0  # highest extended sequence number seen
        self._base = 0  # extended sequence number of the first packet (after a resync)
        self._bad = -1  # RFC 3550 A.1 bad_seq: the next expected after a big jump
        self._received = 0  # unique packets since the last resync
        self._prior_expected = 0  # expected / received before the last resync
        self._prior_received = 0
        self._window = 0  # bit i set: sequence number _max - i was seen
        self._jitter = 0.0  # in timestamp units, RFC 3550 A.8
        self._max_jitter = 0.0  # in milliseconds
        self._last_arrival = 0.0
        self._last_ts = 0
        self._accepted = True  # the last packet advanced the sequence (feeds the jitter)
        self._pt = -1  # payload type of the last packet and its clock rate
        self._rate = DEFAULT_CLOCK_RATE

    def set_clock_rate(self, pt: int, rate: int) -> None:
        """Clock rate of a dynamic payload type (from the SDP's a=rtpmap)."""
        self.clock_rates[pt] = rate
        self._pt = -1

    def update(self, packet: bytes, arrival: float) -> None:
        """Account one received datagram; anything not RTP v2 (RTCP, STUN, DTLS, junk) is
        ignored without raising."""
        if len(packet) < 12:
            return
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(packet)
        pt = b1 & 0x7F
        if b0 & 0xC0 != 0x80 or _MARKED_FIRST <= pt <= _MARKED_LAST:  # not v2, or RTCP
            return
        self.packets += 1
        self.bytes += len(packet)
        self.last = arrival
        if pt != self._pt:
            self._pt = pt
            self._rate = self.clock_rates.get(pt) or STATIC_CLOCK_RATES.get(pt, DEFAULT_CLOCK_RATE)
            if pt not in self.payload_types:
                self.payload_types.append(pt)
        if ssrc != self.ssrc or not self._started:
            if self.first is None:
                self.first = arrival
            self._restart(ssrc, seq)
            self._jitter_start(arrival, ts)
            return
        delta = (seq - self._max) & 0xFFFF
        if 0 < delta < MAX_DROPOUT:  # the common case, inlined: in order, maybe after a gap
            self._max += delta
            self._window = ((self._window << delta) | 1) & _DUP_MASK
            self._received += 1
            self._bad = -1
            # RFC 3550 A.8, inlined as _jitter_step
            rate = self._rate
            dts = (ts - self._last_ts) & 0xFFFFFFFF
            if dts >= 0x80000000:
                dts -= 0x100000000
            d = (arrival - self._last_arrival) * rate - dts
            jitter = self._jitter = self._jitter + ((d if d >= 0 else -d) - self._jitter) / 16.0
            self._last_arrival = arrival
            self._last_ts = ts
            jms = jitter * 1000.0 / rate
            if jms > self._max_jitter:
                self._max_jitter = jms
            return
        self._sequence(seq)
        if self._accepted:
            self._jitter_step(arrival, ts, pt)

    # -- RFC 3550 A.1 ------------------------------------------------------------------------
    def _restart(self, ssrc: int, seq: int) -> None:
        if self._started:
            self._prior_expected += self._max - self._base + 1
            self._prior_received += self._received
        self._started = True
        self.ssrc = ssrc
        self._max = seq
        self._base = seq
        self._bad = -1
        self._received = 1
        self._window = 1
        self._jitter = 0.0

    def _sequence(self, seq: int) -> None:
        delta = (seq - self._max) % SEQ_MOD
        if 0 < delta < MAX_DROPOUT:  # in order, maybe after a gap
            self._max += delta
            self._window = ((self._window << delta) | 1) & _DUP_MASK
            self._received += 1
            self._bad = -1
            self._accepted = True
            return
        self._accepted = False
        back = (SEQ_MOD - delta) % SEQ_MOD
        if back <= MAX_MISORDER:  # at or behind the highest: duplicate or late
            bit = 1 << back
            if self._window & bit:
                self.duplicates += 1
                return
            self._window |= bit
            self.out_of_order += 1
            self._received += 1
            return
        # a very large jump: accept it only when the next packet follows it (A.1 bad_seq)
        if seq == self._bad:
            self._prior_expected += self._max - self._base + 1
            self._prior_received += self._received
            self._max = self._base = seq
            self._received = 1
            self._window = 1
            self._bad = -1
        else:
            self._bad = (seq + 1) % SEQ_MOD

    # -- RFC 3550 A.8 ------------------------------------------------------------------------
    def _jitter_start(self, arrival: float, ts: int) -> None:
        self._last_arrival = arrival
        self._last_ts = ts

    def _jitter_step(self, arrival: float, ts: int, pt: int) -> None:
        rate = self._rate
        dts = (ts - self._last_ts) & 0xFFFFFFFF
        if dts >= 0x80000000:
            dts -= 0x100000000
        d = (arrival - self._last_arrival) * rate - dts
        if d < 0:
            d = -d
        self._jitter += (d - self._jitter) / 16.0
        self._last_arrival = arrival
        self._last_ts = ts
        jms = self._jitter * 1000.0 / rate
        if jms > self._max_jitter:
            self._max_jitter = jms

    # -- results -----------------------------------------------------------------------------
    def expected(self) -> int:
        if not self._started:
            return 0
        return self._prior_expected + self._max - self._base + 1

    def lost(self) -> int:
        return max(0, self.expected() - self._prior_received - self._received)

    def jitter_ms(self) -> float:
        if not self.payload_types:
            return 0.0
        pt = self.payload_types[-1]
        rate = self.clock_rates.get(pt) or STATIC_CLOCK_RATES.get(pt, DEFAULT_CLOCK_RATE)
        return self._jitter * 1000.0 / rate

    def snapshot(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict (keys of the sidecar's `streams` entries)."""
        expected = self.expected()
        lost = self.lost()
        loss_pct = round(100.0 * lost / expected, 3) if expected else 0.0
        jitter = self.jitter_ms()
        # G.711 with comfort noise (13) or telephone-event (dynamic) alongside still counts
        pts = self.payload_types
        g711 = any(pt in G711_PTS for pt in pts) and all(
            pt in G711_PTS or pt == 13 or pt >= 96 for pt in pts
        )
        return {
            "ssrc": self.ssrc,
            "packets": self.packets,
            "bytes": self.bytes,
            "lost": lost,
            "out_of_order": self.out_of_order,
            "duplicates": self.duplicates,
            "jitter_ms": round(jitter, 3),
            "max_jitter_ms": round(self._max_jitter, 3),
            "loss_pct": loss_pct,
            "mos": round(mos_g107(loss_pct, jitter), 2) if g711 else None,
            "first": self.first,
            "last": self.last,
            "payload_types": list(self.payload_types),
        }
