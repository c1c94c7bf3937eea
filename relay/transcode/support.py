"""Which codecs rtpvault can decode and encode (pure table, no PyAV import here).

rtpengine 10.5 (`rtpengine --codecs` on this machine) fully supports PCMA, PCMU, G722, G723,
G729/G729a, speex, GSM, opus, telephone-event and CN. PyAV's FFmpeg (the `av` wheel) has
encoders and decoders for PCMU (pcm_mulaw), PCMA (pcm_alaw), G722, G723 (g723_1), opus
(libopus) and CN (comfortnoise), but only decoders for G729 and GSM: FFmpeg has no encoder for
them and the wheel is not built with libgsm/libspeex/bcg729. So rtpvault can transcode *from*
G729 and GSM but not *to* them. Speex is neither: FFmpeg's native speex decoder needs the Speex
header (Ogg extradata) that RTP does not carry; without it a 38-byte payload came out as 1.2 s
of audio (it cannot know the frames per packet), and no encoder here can make real speex to
prove otherwise, so speex is left out (docs/spec/transcode-media.md §6). The FFmpeg names and
rates are in rtp.codecs.
"""

from __future__ import annotations

ENCODE = frozenset({"pcmu/8000", "pcma/8000", "g722/8000", "g723/8000", "opus/48000"})
"""`name/clock` (lower case) rtpvault can encode to."""
DECODE = ENCODE | frozenset({"g729/8000", "g729a/8000", "gsm/8000"})
"""`name/clock` (lower case) rtpvault can decode."""
SUPPLEMENTARY = frozenset({"telephone-event", "cn"})
"""Handled without a codec library: RFC 4733 events and RFC 3389 comfort noise."""


def _key(name: str, clock: int) -> str:
    return f"{name.lower()}/{clock}"


def can_encode(name: str, clock: int) -> bool:
    return _key(name, clock) in ENCODE or name.lower() in SUPPLEMENTARY


def can_decode(name: str, clock: int) -> bool:
    return _key(name, clock) in DECODE or name.lower() in SUPPLEMENTARY
