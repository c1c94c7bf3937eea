"""What the media commands do to RTP from one party before it is forwarded: `block media`
drops it, `silence media` replaces its payload with the codec's silence, `block DTMF` drops its
telephone-event packets (docs/spec/ng-protocol.md §9.5-9.7).

A `Gate` sits on the stream that receives the party's packets (`Stream.gate`); a stream with a
gate is read by the secure reader (relay.media.secure.reader), so plain pairs without one keep
the fast path. RTCP never passes through a gate (rtpengine's codec handlers see RTP only).
Pure: bytes in, bytes (or None for a drop) out.
"""

from __future__ import annotations

SILENCE = {"pcmu": 0xFF, "pcma": 0xD5}
"""One-byte silence patterns of the codecs that have one (µ-law and A-law zero)."""


class Gate:
    """The media-command state applied to RTP from one party."""

    __slots__ = ("block", "silence", "block_dtmf", "dtmf_pts", "silence_bytes", "dropped")

    def __init__(self) -> None:
        self.block = False
        self.silence = False
        self.block_dtmf = False
        self.dtmf_pts: frozenset[int] = frozenset()
        """Payload types the party sends telephone-event under."""
        self.silence_bytes: dict[int, int] = {}
        """Payload type → its codec's one-byte silence pattern."""
        self.dropped = 0
        """RTP packets this gate dropped."""

    @property
    def active(self) -> bool:
        return self.block or self.silence or self.block_dtmf

    def filter(self, data: bytes) -> bytes | None:
        """The RTP packet to forward instead of `data`, or None to drop it."""
        if self.block:
            self.dropped += 1
            return None
        if len(data) < 12:
            return data
        pt = data[1] & 0x7F
        if self.block_dtmf and pt in self.dtmf_pts:
            self.dropped += 1
            return None
        if self.silence:
            pattern = self.silence_bytes.get(pt)
            if pattern is not None:
                start, end = _payload_bounds(data)
                if start < end:
                    return data[:start] + bytes((pattern,)) * (end - start) + data[end:]
        return data


def _payload_bounds(data: bytes) -> tuple[int, int]:
    """Where the payload of RTP packet `data` starts and ends (RFC 3550 §5.1, §5.3.1)."""
    start = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= start + 4:
        start += 4 + 4 * int.from_bytes(data[start + 2 : start + 4], "big")
    end = len(data)
    if data[0] & 0x20 and end > start:
        end -= data[-1]
    return start, max(start, end)
