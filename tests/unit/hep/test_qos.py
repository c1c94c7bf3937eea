"""Sampled QoS: windows open and close on time, merging gives exact totals and the windows'
loss rate and jitter (recorder.rtpstats.RtpStats per window, as the daemon uses it)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from hep.qos import SampledQos, merge_windows
from recorder.rtpstats import RtpStats


def rtp(seq: int, ts: int, ssrc: int = 0x1234, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + b"\xff" * 160


def feed(q: SampledQos, seconds: float, drop_every: int = 0, start: float = 1000.0) -> int:
    """50 packets/s for `seconds`, every `drop_every`-th lost; returns packets delivered."""
    delivered = 0
    for i in range(int(seconds * 50)):
        now = start + i * 0.02
        q.tick(now)
        if drop_every and i % drop_every == drop_every - 1:
            continue
        delivered += 1
        if q.stats is not None:
            q.stats.update(rtp(i, i * 160), now)
    return delivered


def test_one_window_covering_everything_is_exact() -> None:
    q = SampledQos(1000.0, 1.0, 1.0, RtpStats)  # on >= period: every packet analysed
    delivered = feed(q, 4, drop_every=10)
    snap = merge_windows(q.windows(), delivered, delivered * 172)
    assert (snap["packets"], snap["sampled"], snap["lost"]) == (180, 180, 19)
    assert snap["loss_pct"] == round(100 * 19 / 199, 3)  # the last loss is after the last packet


def test_windows_sample_two_seconds_in_ten_and_estimate_the_loss() -> None:
    q = SampledQos(1000.0, 2.0, 10.0, RtpStats)
    delivered = feed(q, 40, drop_every=10)
    windows = q.windows()
    assert len(windows) == 4 and all(90 <= w["packets"] <= 91 for w in windows)
    snap = merge_windows(windows, delivered, delivered * 172)
    assert snap["packets"] == delivered == 1800 and snap["sampled"] < 400
    # every 10th packet lost; a loss at a window's edge is not seen (about 1 in 100 packets)
    assert 8.5 < snap["loss_pct"] <= 10.0
    assert 170 <= snap["lost"] <= 200
    assert snap["payload_types"] == [0] and snap["g711"] and snap["ssrc"] == 0x1234


def test_window_closes_and_reopens_on_schedule() -> None:
    q = SampledQos(0.0, 1.0, 5.0, RtpStats)
    assert q.stats is not None and q.tick(0.0)
    q.stats.update(rtp(1, 160), 0.01)
    assert q.tick(0.5)
    assert not q.tick(1.0) and q.stats is None and len(q.closed) == 1
    assert not q.tick(4.99)
    assert q.tick(5.0) and q.stats is not None


def test_first_window_waits_for_the_first_packet() -> None:
    """Media that starts after the first window's length still has its first packet time and
    an analysed window (the hang-up report's FIRST_TS, loss and jitter)."""
    q = SampledQos(1000.0, 2.0, 10.0, RtpStats)
    for i in range(13):  # 3 s without packets, ticked every 0.25 s
        q.tick(1000.0 + i * 0.25)
    delivered = feed(q, 5, start=1003.1)
    windows = q.windows()
    assert windows[0]["first"] == 1003.1 and 95 <= windows[0]["packets"] <= 101
    snap = merge_windows(windows, delivered, delivered * 172)
    assert snap["first"] == 1003.1 and snap["sampled"] == windows[0]["packets"]


def test_last_is_the_streams_last_packet_not_the_last_windows() -> None:
    """A window analyses 2 s in 10: the stream's last packet (the relay's own counter) may come
    long after the last window closed, and the report's LAST_TS must be that packet."""
    q = SampledQos(1000.0, 2.0, 10.0, RtpStats)
    delivered = feed(q, 5)
    windows = q.windows()
    last_in_window = max(w["last"] for w in windows if w["last"])
    assert last_in_window < 1002.1
    snap = merge_windows(windows, delivered, delivered * 172, 1004.98)
    assert (snap["first"], snap["last"]) == (1000.0, 1004.98)
    assert merge_windows(windows, delivered, delivered * 172, None)["last"] == last_in_window


def test_no_packets_gives_empty_merge() -> None:
    snap = merge_windows([RtpStats().snapshot()], 0, 0)
    assert (snap["packets"], snap["lost"], snap["loss_pct"], snap["g711"]) == (0, 0, 0.0, False)


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), max_size=8),
       st.integers(0, 10_000))  # fmt: skip
def test_merge_never_negative_and_keeps_the_totals(windows: list[tuple[int, int]],
                                                   total: int) -> None:  # fmt: skip
    snaps = [{"packets": p, "lost": lost, "payload_types": [0], "mos": 4.0} for p, lost in windows]
    snap = merge_windows(snaps, total, total * 3)
    assert snap["packets"] == total and snap["bytes"] == total * 3
    assert snap["lost"] >= 0 and 0.0 <= snap["loss_pct"] <= 100.0
