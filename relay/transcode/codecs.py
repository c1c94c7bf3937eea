"""The codec table (rtp.codecs: FFmpeg names, sample rate versus RTP clock, re-exported here)
and Opus encoder options from fmtp (pure; PyAV itself is imported by relay.transcode.audio).

This package counts RTP time in clock ticks and audio in samples, and converts with
`AudioCodec.ticks_per_sample` (G.722: ½).

Opus (RFC 7587): the SDP always says `opus/48000/2`; whether the receiver wants stereo is
its fmtp `stereo=1`, so the encoder is mono unless that is set. rtpengine 10.5 (lib/codeclib.c
`opus_init`, `opus_set_enc_options`) sets only the bitrate (24 kbit/s mono, 32 kbit/s stereo)
and `frame_duration` = ptime (rounded to 5/10/20/40/60 ms), leaving complexity (10), VBR (on)
and application ("audio") at libopus' defaults; it reads no fmtp. We keep those defaults and
also honour the receiver's fmtp as RFC 7587 §6.1 asks: maxaveragebitrate caps the bitrate,
useinbandfec=1 turns in-band FEC on, usedtx=1 DTX, cbr=1 constant bitrate, maxplaybackrate
limits the coded bandwidth (docs/spec/transcode-media.md §2).
"""

from __future__ import annotations

from rtp.codecs import CODECS, AudioCodec, lookup

__all__ = [
    "AudioCodec", "CODECS", "OPUS_BANDWIDTHS", "lookup", "opus_channels", "opus_options",
    "opus_ptime", "parse_fmtp",
]  # fmt: skip


def parse_fmtp(fmtp: str) -> dict[str, str]:
    """`a=fmtp` parameters `k=v; k2=v2` → {k: v} (keys lower case); junk items are skipped."""
    out: dict[str, str] = {}
    for item in fmtp.split(";"):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[key.strip().lower()] = value.strip()
    return out


def _int(params: dict[str, str], key: str) -> int | None:
    try:
        return int(params[key])
    except (KeyError, ValueError):
        return None


def opus_channels(fmtp: str) -> int:
    """Channels to encode for a receiver with this fmtp: 2 only with `stereo=1`."""
    return 2 if parse_fmtp(fmtp).get("stereo") == "1" else 1


def opus_ptime(ptime: int) -> int:
    """The Opus frame length for a requested ptime, as rtpengine 10.5 rounds it."""
    for limit, frame in ((10, 5), (20, 10), (40, 20), (60, 40)):
        if ptime < limit:
            return frame
    return 60


OPUS_BANDWIDTHS = ((8000, 4000), (12000, 6000), (16000, 8000), (24000, 12000))
"""maxplaybackrate at most → libopus `cutoff` (Hz): narrow, medium, wide, super-wide band;
above 24000 full band (no cutoff set)."""


def opus_options(fmtp: str, ptime: int) -> tuple[int, dict[str, str]]:
    """(bit rate, libopus encoder options) for a receiver's fmtp and a ptime in ms."""
    params = parse_fmtp(fmtp)
    channels = opus_channels(fmtp)
    bitrate = 24000 if channels == 1 else 32000  # rtpengine 10.5's defaults
    cap = _int(params, "maxaveragebitrate")
    if cap is not None and 6000 <= cap < bitrate:
        bitrate = cap
    options = {"frame_duration": str(opus_ptime(ptime))}
    if params.get("useinbandfec") == "1":
        # libopus adds FEC only when it expects loss; 10 % is a common WebRTC figure
        options.update({"fec": "1", "packet_loss": "10"})
    if params.get("usedtx") == "1":
        options["dtx"] = "1"
    if params.get("cbr") == "1":
        options["vbr"] = "off"
    playback = _int(params, "maxplaybackrate")
    if playback is not None:
        for most, cutoff in OPUS_BANDWIDTHS:
            if playback <= most:
                options["cutoff"] = str(cutoff)
                break
    return bitrate, options
