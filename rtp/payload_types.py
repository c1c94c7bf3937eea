"""Static RTP payload types (RFC 3551 §6, tables 4 and 5), as rtpengine 10.5 prints them
(lib/rtplib.c): `<name>/<clock rate>`, without a channel count even for PT 11 (two channels).
"""

from __future__ import annotations

__all__ = ["STATIC_PAYLOAD_TYPES", "STATIC_CLOCK_RATES", "STATIC_NAMES"]

STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000),
    3: ("GSM", 8000),
    4: ("G723", 8000),
    5: ("DVI4", 8000),
    6: ("DVI4", 16000),
    7: ("LPC", 8000),
    8: ("PCMA", 8000),
    9: ("G722", 8000),
    10: ("L16", 44100),
    11: ("L16", 44100),
    12: ("QCELP", 8000),
    13: ("CN", 8000),
    14: ("MPA", 90000),
    15: ("G728", 8000),
    16: ("DVI4", 11025),
    17: ("DVI4", 22050),
    18: ("G729", 8000),
    25: ("CelB", 90000),
    26: ("JPEG", 90000),
    28: ("nv", 90000),
    31: ("H261", 90000),
    32: ("MPV", 90000),
    33: ("MP2T", 90000),
    34: ("H263", 90000),
}
"""Payload type → (encoding name, RTP clock rate)."""

STATIC_CLOCK_RATES: dict[int, int] = {pt: rate for pt, (_, rate) in STATIC_PAYLOAD_TYPES.items()}
"""Payload type → RTP clock rate."""

STATIC_NAMES: dict[int, str] = {pt: name for pt, (name, _) in STATIC_PAYLOAD_TYPES.items()}
"""Payload type → encoding name as in SDP (`PCMU`, `G722`, …)."""
