"""What a relay needs to write its own RTCP reports (rtpengine's `generate-RTCP`,
docs/spec/ng-protocol.md §8): reception statistics per source (RFC 3550 A.1 sequence numbers,
A.8 interarrival jitter), send counts per forwarded source, and the compound packet built from
them (SR with report blocks + SDES CNAME, the layout rtpengine 10.5 sends). Pure: the caller
passes arrival times and the wall clock, and sends the bytes.

Hand-written because no library here keeps these figures for packets it does not terminate
(aiortc's are inside its receiver); the packet itself is made by rtp.rtcp's classes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rtp.rtcp import ReportBlock, SdesChunk, SdesItem, SenderReport, SourceDescription

__all__ = ["NTP_EPOCH", "ReceiveStats", "SendStats", "middle32", "ntp", "read_header", "report"]

NTP_EPOCH = 2208988800
"""Seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)."""
MAX_DROPOUT = 3000
MAX_MISORDER = 100
SEQ_MOD = 1 << 16
MAX_BLOCKS = 30
"""rtpengine 10.5 puts at most 30 report blocks into one SR."""
_HDR = struct.Struct("!HII")  # sequence number, timestamp, SSRC at byte 2


def ntp(wall: float) -> tuple[int, int]:
    """(seconds, fraction) of the 64-bit NTP timestamp for Unix time `wall`."""
    secs = int(wall)
    usec = int(round((wall - secs) * 1_000_000))
    if usec >= 1_000_000:
        secs, usec = secs + 1, usec - 1_000_000
    return (secs + NTP_EPOCH) & 0xFFFFFFFF, (0xFFFFFFFF * usec) // 1_000_000


def middle32(msw: int, lsw: int) -> int:
    """The middle 32 bits of an NTP timestamp: an RR block's LSR (RFC 3550 §6.4.1)."""
    return (msw & 0xFFFF) << 16 | lsw >> 16


class ReceiveStats:
    """RTP received from one SSRC: extended highest sequence number, losses, jitter (in
    timestamp units, RFC 3550 A.8), and the last SR that source sent (for LSR/DLSR)."""

    __slots__ = (
        "ssrc", "clock_rate", "received", "base_seq", "max_seq", "cycles", "bad_seq",
        "transit", "jitter", "sr_middle", "sr_at",
    )  # fmt: skip

    def __init__(self, ssrc: int, seq: int, clock_rate: int = 8000) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.received = 0
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.bad_seq = SEQ_MOD + 1
        self.transit: float | None = None
        self.jitter = 0.0
        self.sr_middle = 0
        self.sr_at = 0.0

    def update(self, seq: int, timestamp: int, arrival: float) -> None:
        """One RTP packet of this source arrived at `arrival` (seconds, any monotonic base)."""
        delta = (seq - self.max_seq) % SEQ_MOD
        if self.received and delta == 0:
            return  # a duplicate
        if delta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = seq
        elif delta <= SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:  # two in a row: the source restarted
                self.base_seq = self.max_seq = seq
                self.cycles, self.received, self.transit = 0, 0, None
            else:
                self.bad_seq = (seq + 1) % SEQ_MOD
                return
        self.received += 1
        transit = arrival * self.clock_rate - timestamp
        if self.transit is not None:
            d = abs(transit - self.transit)
            if d < (1 << 31):  # a timestamp jump is not jitter
                self.jitter += (d - self.jitter) / 16
        self.transit = transit

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def lost(self) -> int:
        """Expected minus received (RFC 3550 A.3), never below zero."""
        return max(0, self.extended_max - self.base_seq + 1 - self.received)

    def sender_report(self, msw: int, lsw: int, at: float) -> None:
        """This source's last SR had NTP time (msw, lsw) and arrived at `at`."""
        self.sr_middle, self.sr_at = middle32(msw, lsw), at

    def block(self, now: float) -> ReportBlock:
        """The report block about this source at `now` (same clock as the arrivals). The
        fraction lost is cumulative, lost / (received + lost), as rtpengine 10.5 writes it."""
        lost = self.lost
        fraction = lost * 256 // (self.received + lost) if self.received + lost else 0
        dlsr = int((now - self.sr_at) * 65536) if self.sr_middle else 0
        return ReportBlock(self.ssrc, min(fraction, 255), min(lost, 0x7FFFFF),
                           self.extended_max & 0xFFFFFFFF, int(self.jitter),
                           self.sr_middle, max(0, dlsr) & 0xFFFFFFFF)  # fmt: skip


@dataclass(slots=True)
class SendStats:
    """RTP of one SSRC sent towards a party: packets, octets (whole RTP packets, as rtpengine
    counts them) and the last RTP timestamp."""

    packets: int = 0
    octets: int = 0
    timestamp: int = 0


def read_header(packet: bytes) -> tuple[int, int, int] | None:
    """(sequence number, timestamp, SSRC) of an RTP v2 packet, None if it is not one."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    seq, ts, ssrc = _HDR.unpack_from(packet, 2)
    return seq, ts, ssrc


def count_sent(sent: dict[int, SendStats], packet: bytes, most: int) -> int | None:
    """Count RTP `packet` in its SSRC's SendStats (a new SSRC only while fewer than `most` are
    kept); its SSRC, or None when it is not RTP v2 or was not counted."""
    head = read_header(packet)
    if head is None:
        return None
    st = sent.get(head[2])
    if st is None:
        if len(sent) >= most:
            return None
        st = sent[head[2]] = SendStats()
    st.packets += 1
    st.octets += len(packet)
    st.timestamp = head[1]
    return head[2]


def report(ssrc: int, sent: SendStats, ntp_time: tuple[int, int], blocks: list[ReportBlock],
           cname: bytes) -> bytes:  # fmt: skip
    """The compound RTCP packet rtpengine 10.5 generates for one forwarded `ssrc`: an SR with
    `ntp_time` (see `ntp`), the last forwarded timestamp and the send counts, up to 30 report
    blocks, then SDES with one chunk (that SSRC, CNAME `cname`)."""
    msw, lsw = ntp_time
    sr = SenderReport(ssrc, msw, lsw, sent.timestamp & 0xFFFFFFFF, sent.packets & 0xFFFFFFFF,
                      sent.octets & 0xFFFFFFFF, tuple(blocks[:MAX_BLOCKS]))  # fmt: skip
    sdes = SourceDescription((SdesChunk(ssrc, (SdesItem(1, cname),)),))
    return bytes(sr) + bytes(sdes)
