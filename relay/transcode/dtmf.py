"""RFC 4733 telephone-event payloads, DTMF tones as PCM, and the event → PCM "decoder" used
when the receiver has no telephone-event (pure, no PyAV).

rtpengine 10.5 (lib/codeclib.c `dtmf_decoder_input`, lib/dtmflib.c) treats telephone-event
as a codec whose decoder synthesises the tone: each event packet yields the samples between
the previous packet's duration and its own, starting at event start + previous duration, so
the repeated end packets add nothing. The tone is the digit's two frequencies (ITU-T Q.23),
each at full scale / (2 × 1.122018^volume), volume being the event's attenuation in dB
(docs/spec/transcode-media.md §4). We do the same.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

__all__ = [
    "DTMF_FREQS", "DtmfSynth", "Event", "EventError", "build_event", "parse_event", "tone_pcm",
]  # fmt: skip

DTMF_FREQS: tuple[tuple[int, int], ...] = (
    (941, 1336), (697, 1209), (697, 1336), (697, 1477), (770, 1209), (770, 1336),
    (770, 1477), (852, 1209), (852, 1336), (852, 1477), (941, 1209), (941, 1477),
    (697, 1633), (770, 1633), (852, 1633), (941, 1633),
)  # fmt: skip
"""Event code (0-9, * = 10, # = 11, A-D = 12-15) → (low, high) frequency in Hz."""

_EVENT = struct.Struct("!BBH")


class EventError(ValueError):
    """A telephone-event payload shorter than 4 bytes."""


@dataclass(frozen=True, slots=True)
class Event:
    """One RFC 4733 §2.3 event payload."""

    code: int
    end: bool
    volume: int
    duration: int


def parse_event(payload: bytes) -> Event:
    if len(payload) < 4:
        raise EventError(f"telephone-event payload of {len(payload)} bytes (needs 4)")
    code, flags, duration = _EVENT.unpack_from(payload)
    return Event(code, bool(flags & 0x80), flags & 0x3F, duration)


def build_event(ev: Event) -> bytes:
    return _EVENT.pack(ev.code & 0xFF, (0x80 if ev.end else 0) | (ev.volume & 0x3F),
                       ev.duration & 0xFFFF)  # fmt: skip


def tone_pcm(code: int, volume: int, offset: int, count: int, rate: int) -> bytes:
    """`count` s16 samples of the DTMF tone for `code` from sample index `offset` (rtpengine's
    level: each frequency at 32767 / (2 × 1.122018^volume)); silence for non-DTMF codes."""
    if not 0 <= code < len(DTMF_FREQS) or count <= 0:
        return bytes(2 * max(count, 0))
    low, high = DTMF_FREQS[code]
    amp = 32767 / (2 * 1.122018**volume)
    wl, wh = 2 * math.pi * low / rate, 2 * math.pi * high / rate
    return struct.pack(
        f"<{count}h",
        *(int(amp * (math.sin(wl * n) + math.sin(wh * n)))
          for n in range(offset, offset + count)),
    )  # fmt: skip


class DtmfSynth:
    """telephone-event packets of one source → (RTP timestamp, PCM at the event clock)."""

    __slots__ = ("rate", "_code", "_start", "_done", "ended")

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._code = -1
        self._start = -1
        self._done = 0
        self.ended = True
        """No event under way (none yet, or the last one's end packet came)."""

    def covers(self, ts: int, grace: int) -> bool:
        """An event is under way at RTP time `ts`: no end packet yet, and `ts` is within
        `grace` ticks of what the event has lasted so far. An event whose end packets were all
        lost thus ends once audio comes from past it."""
        if self.ended:
            return False
        ahead = (ts - self._start - self._done + 0x80000000) % 0x100000000 - 0x80000000
        if ahead > grace:
            self.ended = True
            return False
        return True

    def feed(self, ts: int, payload: bytes) -> tuple[int, bytes] | None:
        """The new samples this packet adds and the RTP timestamp they start at; None when
        it adds none (a repeated or end packet). EventError on a short payload."""
        ev = parse_event(payload)
        if ev.code != self._code or ts != self._start:
            self._code, self._start, self._done = ev.code, ts, 0
        self.ended = ev.end
        count = ev.duration - self._done
        if count <= 0 or count > self.rate:  # rtpengine refuses more than a second at once
            return None
        at = self._done
        self._done = ev.duration
        return (ts + at) & 0xFFFFFFFF, tone_pcm(ev.code, ev.volume, at, count, self.rate)
