"""The text of rtpengine's metadata file (docs/spec/recording.md §3.2), byte for byte.

Pure: each function returns the bytes of one part; the caller appends them to
tmp/rtpengine-meta-<prefix>.tmp and renames the file to metadata/ at the end.
"""

from __future__ import annotations

import time

from rtp.redact import redact_sdp

__all__ = ["header", "sdp_block", "trailer", "local_iso"]


def header(pcap_path: str) -> bytes:
    return f"{pcap_path}\n\n".encode("utf-8", "surrogateescape")


def sdp_block(label: str | None, started: float, mode: str, packets_so_far: int, sdp: str) -> bytes:
    """One block per offer/answer while recording: label, the side's start time in ms with 3
    decimals, offer|answer, 1 + packets written so far, then the SDP as sent out, its keys and
    ICE password redacted (rtp.redact; rtpengine writes them, docs/recording.md says why not)."""
    parts = []
    if label:
        parts.append(f"\nLabel: {label}")
    parts.append(f"\nTimestamp started ms: {started * 1000.0:.3f}")
    parts.append(f"\nSDP mode: {mode}")
    parts.append(f"\nSDP before RTP packet: {packets_so_far + 1}\n\n")
    parts.append(redact_sdp(sdp))
    return "".join(parts).encode("utf-8", "surrogateescape")


def local_iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(when))


def trailer(terminated: float, call_start: float, call_end: float, metadata: str | None) -> bytes:
    """Termination time of the first side (0 if not terminated), call creation and finish time
    in local time, then the call-level metadata if any."""
    text = (
        f"\nTimestamp terminated ms(first monologue): {terminated * 1000.0:.3f}"
        f"\n\ncall start time: {local_iso(call_start)}\n"
        f"call end time: {local_iso(call_end)}\n"
    )
    if metadata:
        text += f"\n\n{metadata}\n"
    return text.encode("utf-8", "surrogateescape")
