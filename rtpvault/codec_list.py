"""`rtpvault run --codecs`: the codec support table, printed as `rtpengine --codecs` prints its
own (right-aligned name, colon, support), then exit.

The rows are the RTP codecs rtpengine 10.5 lists on this machine, in its order; the support
column is rtpvault's (relay.transcode.support: what PyAV's FFmpeg encodes and decodes).
"""

from __future__ import annotations

from relay.transcode.support import SUPPLEMENTARY, can_decode, can_encode

# (name as rtpengine prints it, RTP clock rate)
RTP_CODECS = (
    ("PCMA", 8000), ("PCMU", 8000), ("G723", 8000), ("G722", 8000), ("QCELP", 8000),
    ("G729", 8000), ("G729a", 8000), ("speex", 8000), ("GSM", 8000), ("iLBC", 8000),
    ("opus", 48000), ("EVRC", 8000), ("AMR", 8000), ("AMR-WB", 16000),
    ("telephone-event", 8000), ("CN", 8000),
)


def support(name: str, clock: int) -> str:
    if name.lower() in SUPPLEMENTARY or can_encode(name, clock):
        return "fully supported"
    if can_decode(name, clock):
        return "supported for decoding only"
    return "not supported"


def codec_lines() -> list[str]:
    return [f"{name:>20}: {support(name, clock)}" for name, clock in RTP_CODECS]


def wants_codecs(argv: list[str]) -> bool:
    """`--codecs` (or `--codecs=true`/`=1`/`=yes`) on the command line."""
    for arg in argv:
        if arg == "--codecs":
            return True
        if arg.startswith("--codecs="):
            return arg.split("=", 1)[1].lower() in ("1", "true", "yes", "on")
    return False
