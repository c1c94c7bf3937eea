"""recorder.rtpstats: RFC 3550 counters, jitter and MOS over generated streams."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.rtpstats import RtpStats, clock_rate_for, mos_g107


def rtp(
    seq: int, ts: int, ssrc: int = 0xAAAA0001, pt: int = 0, payload: bytes = b"\xff" * 160
) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def test_perfect_stream() -> None:
    st_ = RtpStats()
    for i in range(50):
        st_.update(rtp(100 + i, 160 * i), 10.0 + 0.02 * i)
    snap = st_.snapshot()
    assert snap["ssrc"] == 0xAAAA0001
    assert snap["packets"] == 50
    assert snap["bytes"] == 50 * 172
    assert (snap["lost"], snap["out_of_order"], snap["duplicates"]) == (0, 0, 0)
    assert snap["jitter_ms"] == pytest.approx(0.0, abs=1e-6)
    assert snap["loss_pct"] == 0.0
    assert snap["mos"] == pytest.approx(4.41, abs=0.01)
    assert snap["first"] == 10.0 and snap["last"] == pytest.approx(10.98)
    assert snap["payload_types"] == [0]


def test_jitter_follows_rfc3550() -> None:
    # alternating +5/-5 ms arrival error: |D| = 10 ms = 80 units each step after the first
    s = RtpStats()
    j = 0.0
    for i in range(40):
        err = 0.005 if i % 2 else -0.005
        s.update(rtp(i, 160 * i), 1.0 + 0.02 * i + err)
        if i:
            j += (80.0 - j) / 16.0
    assert s.jitter_ms() == pytest.approx(j / 8.0, rel=1e-6)
    assert s.snapshot()["jitter_ms"] == round(j / 8.0, 3)
    assert s.snapshot()["max_jitter_ms"] >= s.snapshot()["jitter_ms"]


def test_sequence_wraps() -> None:
    s = RtpStats()
    for i in range(20):
        s.update(rtp(65530 + i, 160 * i), 0.02 * i)
    assert s.snapshot()["lost"] == 0 and s.expected() == 20


def test_non_rtp_ignored() -> None:
    s = RtpStats()
    rtcp_sr = struct.pack("!BBHI", 0x80, 200, 6, 0x1234) + b"\0" * 20
    for junk in (b"", b"\x00\x01\x00\x00", rtcp_sr, b"\x16\xfe\xfd" + b"\0" * 20, b"\x00" * 12):
        s.update(junk, 1.0)
    assert s.snapshot()["packets"] == 0
    assert s.snapshot()["ssrc"] is None and s.snapshot()["mos"] is None


def test_ssrc_change_restarts_sequence() -> None:
    s = RtpStats()
    for i in range(10):
        s.update(rtp(i, 160 * i, ssrc=1), 0.02 * i)
    for i in range(10):
        s.update(rtp(5000 + i, 160 * i, ssrc=2), 1 + 0.02 * i)
    snap = s.snapshot()
    assert snap["ssrc"] == 2 and snap["packets"] == 20 and snap["lost"] == 0


def test_large_jump_needs_two_packets() -> None:
    s = RtpStats()
    for i in range(10):
        s.update(rtp(i, 160 * i), 0.02 * i)
    s.update(rtp(30000, 0), 1.0)  # stray: not accepted as the new max
    assert s.expected() == 10
    s.update(rtp(40000, 0), 1.1)
    s.update(rtp(40001, 160), 1.12)  # two in a row: resync
    # RFC 3550 A.1: the sequence restarts at the second packet, 40000 itself is not counted
    assert s.snapshot()["lost"] == 0 and s.expected() == 11


def test_clock_rates() -> None:
    assert clock_rate_for(0) == 8000 and clock_rate_for(9) == 8000 and clock_rate_for(31) == 90000
    assert clock_rate_for(111) == 8000 and clock_rate_for(111, {111: 48000}) == 48000
    s = RtpStats()
    s.set_clock_rate(111, 48000)
    for i in range(5):
        s.update(rtp(i, 960 * i, pt=111), 0.02 * i)
    assert s.snapshot()["jitter_ms"] == pytest.approx(0.0, abs=1e-6)
    assert s.snapshot()["mos"] is None  # not G.711


def test_mos_bounds() -> None:
    assert mos_g107(0, 0) == pytest.approx(4.41, abs=0.01)
    assert mos_g107(5, 20) < mos_g107(1, 20) < mos_g107(0, 20) < mos_g107(0, 0)
    assert mos_g107(100, 500) == 1.0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_never_raise(data: bytes) -> None:
    s = RtpStats()
    s.update(data, 0.0)
    s.update(data, 1.0)
    snap = s.snapshot()
    assert snap["packets"] in (0, 2)
    assert snap["lost"] >= 0


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 65535),
    n=st.integers(1, 200),
    data=st.data(),
)
def test_loss_reorder_duplicates(start: int, n: int, data: st.DataObject) -> None:
    seqs = list(range(n))
    # keep first and last so the expected range is known; drop some in between
    dropped = (
        set(data.draw(st.sets(st.integers(1, max(1, n - 2)), max_size=n // 3))) if n > 2 else set()
    )
    kept = [i for i in seqs if i not in dropped]
    # local swaps (reordering by at most a few places) and a few duplicates
    order = list(kept)
    for _ in range(data.draw(st.integers(0, 5))):
        if len(order) > 3:
            k = data.draw(st.integers(1, len(order) - 2))
            order[k], order[k + 1] = order[k + 1], order[k]
    # duplicates are recognised up to MAX_MISORDER (100) behind the highest sequence number
    dups = data.draw(st.lists(st.sampled_from([i for i in kept if i > n - 100]), max_size=5))
    s = RtpStats()
    for j, i in enumerate(order):
        s.update(rtp(start + i, 160 * i), 0.02 * j)
    for j, i in enumerate(dups):
        s.update(rtp(start + i, 160 * i), 10 + 0.02 * j)
    snap = s.snapshot()
    assert snap["packets"] == len(order) + len(dups)
    assert snap["duplicates"] == len(dups)
    if order[0] == 0 and order[-1] == n - 1:
        assert snap["lost"] == len(dropped)
    assert snap["lost"] + len(kept) >= s.expected() or snap["lost"] == 0
