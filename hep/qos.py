"""Per-stream quality report (RTP-derived, for endpoints that send no RTCP) as HEP JSON, pure.

The keys are those of the "rtpagent" MOS report (HEP protocol type 34, docs/spec/hep.md §1.3) that
heplify-server stores in `hep_proto_35_default` with `sid` = the correlation id, so Homer lists it
with the call's SIP messages. `TYPE` is `PERIODIC` during the call and `HANGUP` at its end.

Statistics are sampled in time windows (`SampledQos`): RFC 3550 statistics of every packet cost
about 0.5 µs per packet in Python, 5-8 % of the relay's whole per-packet CPU; analysing one
window of `on` seconds in every `period` keeps the loss rate and jitter estimates while the
packet and byte totals stay exact (they come from the relay's own counters).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["qos_report", "SampledQos", "StreamStats", "merge_windows"]


class StreamStats(Protocol):
    """What one analysis window needs (recorder.rtpstats.RtpStats has it)."""

    packets: int

    def update(self, packet: bytes, arrival: float) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


_SUMMED = ("packets", "bytes", "lost", "out_of_order", "duplicates")


def merge_windows(windows: list[dict[str, Any]], packets: int, octets: int,
                  last_packet: float | None = None) -> dict[str, Any]:  # fmt: skip
    """One snapshot for the whole stream from its windows' snapshots (oldest first) and the
    exact totals: loss is the windows' loss rate applied to the total, jitter the latest
    window's, max jitter the largest; `sampled` counts the packets analysed. `first` is the
    first window's first packet (the first window opens with the stream's first packet, see
    SampledQos); `last` is `last_packet` (the relay's own time of the stream's last packet,
    which may be after the last window) when it is later than the windows' last."""
    sums = {k: sum(int(w.get(k) or 0) for w in windows) for k in _SUMMED}
    expected = sums["packets"] + sums["lost"]
    fraction = sums["lost"] / expected if expected else 0.0
    if sums["packets"] >= packets:  # everything was analysed: the windows' counts are exact
        lost = sums["lost"]
    else:
        lost = round(packets * fraction / (1.0 - fraction)) if fraction < 1.0 else 0
    with_packets = [w for w in windows if w.get("packets")]
    last = with_packets[-1] if with_packets else {}
    pts: list[int] = []
    for w in with_packets:
        pts += [pt for pt in w.get("payload_types") or [] if pt not in pts]
    return {
        "ssrc": last.get("ssrc"),
        "packets": packets,
        "bytes": octets,
        "lost": lost,
        "loss_pct": round(100.0 * fraction, 3),
        "out_of_order": sums["out_of_order"],
        "duplicates": sums["duplicates"],
        "jitter_ms": float(last.get("jitter_ms") or 0.0),
        "max_jitter_ms": max((float(w.get("max_jitter_ms") or 0.0) for w in with_packets),
                             default=0.0),  # fmt: skip
        "payload_types": pts,
        "first": with_packets[0].get("first") if with_packets else None,
        "last": max((t for t in (last.get("last"), last_packet) if t), default=None),
        "sampled": sums["packets"],
        "g711": bool(with_packets) and all(w.get("mos") is not None for w in with_packets),
    }


class SampledQos:
    """Which time windows of one stream are analysed, and their statistics.

    The first window opens at `start` and stays open until the stream's first packet (so its
    first packet time is the stream's, however late the media starts); from then on one window
    of `on` seconds opens every `period` seconds. `tick(now)` moves the state on and returns
    whether a window is open; `stats` is the open window's statistics object (None between
    windows). With `on >= period` every packet is analysed.
    """

    __slots__ = ("start", "on", "period", "factory", "stats", "closed", "waiting")

    def __init__(self, start: float, on: float, period: float,
                 factory: Callable[[], StreamStats]) -> None:  # fmt: skip
        self.start = start
        self.on = on
        self.period = period
        self.factory = factory
        self.stats: StreamStats | None = factory()
        self.closed: list[dict[str, Any]] = []
        self.waiting = True
        """No packet yet: the first window stays open, its schedule starts at the last tick."""

    def wants(self, now: float) -> bool:
        return self.on >= self.period or (now - self.start) % self.period < self.on

    def tick(self, now: float) -> bool:
        if self.waiting:
            if self.stats is not None and not self.stats.packets:
                self.start = now
                return True
            self.waiting = False
        want = self.wants(now)
        if want and self.stats is None:
            self.stats = self.factory()
        elif not want and self.stats is not None:
            self.closed.append(self.stats.snapshot())
            self.stats = None
        return want

    def windows(self) -> list[dict[str, Any]]:
        """Snapshots of every window so far, the open one last."""
        return self.closed + ([self.stats.snapshot()] if self.stats is not None else [])


def qos_report(call_id: str, snap: dict[str, Any], src: tuple[str, int], dst: tuple[str, int],
               kind: str, now: float, party: str = "") -> bytes:  # fmt: skip
    """The rtpagent-style JSON of one stream; `snap` has `merge_windows`' keys (and `mos`)."""
    packets = int(snap.get("packets") or 0)
    lost = max(0, int(snap.get("lost") or 0))
    mos = snap.get("mos")
    pts = snap.get("payload_types") or []
    report = {
        "CORRELATION_ID": call_id,
        "RTP_SIP_CALL_ID": call_id,
        "REPORT_TS": round(now, 6),
        "TYPE": kind,
        "SSRC": snap.get("ssrc") or 0,
        "SRC_IP": src[0], "SRC_PORT": src[1], "DST_IP": dst[0], "DST_PORT": dst[1],
        "CODEC_PT": pts[0] if pts else None,
        "TOTAL_PK": packets,
        "EXPECTED_PK": packets + lost,
        "PACKET_LOSS": lost,
        "LOSS_PCT": round(float(snap.get("loss_pct") or 0.0), 3),
        "OUT_ORDER": int(snap.get("out_of_order") or 0),
        "DUPLICATES": int(snap.get("duplicates") or 0),
        "JITTER": round(float(snap.get("jitter_ms") or 0.0), 3),
        "MAX_JITTER": round(float(snap.get("max_jitter_ms") or 0.0), 3),
        "MOS": round(float(mos), 2) if mos is not None else None,
        "TL_BYTE": int(snap.get("bytes") or 0),
        "FIRST_TS": snap.get("first"),
        "LAST_TS": snap.get("last"),
        "SAMPLED_PK": int(snap.get("sampled", packets) or 0),
        "PARTY": party,
        "REPORT_NAME": "rtpvault",
    }  # fmt: skip
    return json.dumps(report, separators=(",", ":")).encode()
