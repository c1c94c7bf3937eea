"""rtp.payload_types: RFC 3551 §6 static payload types, one table for relay, recorder and export."""

from __future__ import annotations

from rtp.payload_types import STATIC_CLOCK_RATES, STATIC_NAMES, STATIC_PAYLOAD_TYPES


def test_rfc3551_tables_4_and_5() -> None:
    assert STATIC_PAYLOAD_TYPES[0] == ("PCMU", 8000) and STATIC_PAYLOAD_TYPES[8] == ("PCMA", 8000)
    assert STATIC_PAYLOAD_TYPES[9] == ("G722", 8000)  # 8000 by RFC 3551's historical error
    assert STATIC_PAYLOAD_TYPES[11] == ("L16", 44100)  # rtpengine prints no channel count
    assert sorted(STATIC_PAYLOAD_TYPES) == [0, *range(3, 19), 25, 26, 28, *range(31, 35)]


def test_derived_tables_agree() -> None:
    assert STATIC_CLOCK_RATES == {pt: r for pt, (_, r) in STATIC_PAYLOAD_TYPES.items()}
    assert STATIC_NAMES == {pt: n for pt, (n, _) in STATIC_PAYLOAD_TYPES.items()}


def test_every_part_uses_this_table() -> None:
    from recorder import rtpstats, sdpinfo, wav
    from relay.sdp import model

    assert model.STATIC_PAYLOAD_TYPES is STATIC_PAYLOAD_TYPES
    assert rtpstats.STATIC_CLOCK_RATES is STATIC_CLOCK_RATES
    assert sdpinfo.STATIC_PAYLOAD_TYPES is STATIC_PAYLOAD_TYPES
    assert wav.STATIC_PT == {pt: (n.upper(), r) for pt, (n, r) in STATIC_PAYLOAD_TYPES.items()}
