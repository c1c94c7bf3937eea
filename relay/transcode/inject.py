"""`play DTMF` on a transcoded direction: events put into the output RTP of one direction, as
rtpengine 10.5's `dtmf_inject` does (docs/spec/ng-protocol.md §9.4). Pure: packets in, packets
out; the transcoder on the stream runs it after the codec chain.

* The receiver accepts telephone-event (`dtmf_pt`): each output audio packet that falls within
  an event is **replaced** by an RFC 4733 packet (same SSRC, the next sequence number), all with
  the timestamp of the event's first packet, the marker on the first, the duration growing by
  one frame per packet; the first packet at or after the event's end becomes three end packets
  whose duration reaches one frame past it (300 ms at 8 kHz → 2560, 250 ms → 2240), then audio
  resumes.
* It does not: the audio packets' payloads within the event are the digit's tone (ITU-T Q.23
  pair, relay.transcode.dtmf's level), then silence for the `pause`, encoded in the output codec.

Events queued while one is playing are due at the previous one's end + `pause` (unrounded).
Sequence numbers stay contiguous (the extra end packets shift the ones after them).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from relay.transcode.dtmf import Event, build_event, tone_pcm

__all__ = ["DtmfInjector", "Injected"]

_HEADER = struct.Struct("!BBHII")
END_REPEATS = 3


@dataclass(slots=True)
class Injected:
    """One queued event, in output RTP clock ticks."""

    code: int
    event_volume: int
    """The RFC 4733 volume field (rtpengine: the given volume, 63 when none was given)."""
    tone_volume: int
    """dBm0 below full scale of the in-band tone (rtpengine: 15 when none was given)."""
    ticks: int
    pause: int
    start: int | None
    """Where it is due on the output time line; None: queued before any output, due at the
    next packet."""
    at: int | None = None
    """Timestamp of its first RFC 4733 packet (the first output packet at or after `start`,
    as rtpengine canonicalises it)."""

    @property
    def end(self) -> int:
        assert self.start is not None
        return (self.start + self.ticks) & 0xFFFFFFFF

    @property
    def pause_end(self) -> int:
        return (self.end + self.pause) & 0xFFFFFFFF


class DtmfInjector:
    """Injects events into one direction's output (`audio_pt` packets of `frame` ticks)."""

    def __init__(
        self, audio_pt: int, clock: int, frame: int, dtmf_pt: int | None = None,
        encode: Callable[[bytes], bytes] | None = None, rate: int = 8000,
    ) -> None:  # fmt: skip
        self.audio_pt = audio_pt
        self.clock = clock
        self.frame = frame
        self.dtmf_pt = dtmf_pt
        self.encode = encode
        """Mono s16 PCM of one frame at `rate` → the output codec's payload (in-band mode)."""
        self.rate = rate
        self.queue: deque[Injected] = deque()
        self.last_ts: int | None = None
        self._seq_shift = 0
        self.injected = 0

    @property
    def inband(self) -> bool:
        return self.dtmf_pt is None

    def schedule(self, code: int, event_volume: int, tone_volume: int, duration_ms: int,
                 pause_ms: int) -> None:  # fmt: skip
        """Queue one event: at the next output packet, or after the last queued one + pause."""
        ticks, pause = duration_ms * self.clock // 1000, pause_ms * self.clock // 1000
        start: int | None = None
        if self.queue:
            last = self.queue[-1]
            start = None if last.start is None else (last.end + pause) & 0xFFFFFFFF
            if start is None:  # after a not yet started one: placed when that one starts
                self.queue.append(Injected(code, event_volume, tone_volume, ticks, pause, None))
                return
        elif self.last_ts is not None:
            start = (self.last_ts + self.frame) & 0xFFFFFFFF
        self.queue.append(Injected(code, event_volume, tone_volume, ticks, pause, start))

    def process(self, packet: bytes) -> list[bytes]:
        """The packets to send instead of one output packet of the chain."""
        if len(packet) < 12 or packet[0] & 0xC0 != 0x80:
            return [packet]
        _, pt_m, seq, ts, ssrc = _HEADER.unpack_from(packet)
        if pt_m & 0x7F != self.audio_pt:
            return [self._shifted(packet, seq)]
        self.last_ts = ts
        while self.queue:
            ev = self.queue[0]
            if ev.start is None:  # queued before any output: starts at this packet
                self._place(ts)
            assert ev.start is not None
            if self.inband:
                if _before(ts, ev.start):
                    break
                if _before(ts, ev.pause_end):
                    return [self._tone(pt_m, seq, ts, ssrc, ev)]
            elif _before(ts, ev.end):
                if not _before(ts, ev.start):
                    return [self._event(seq, ssrc, ev, ts, False)]
                break
            else:
                self.queue.popleft()
                out = [self._event(seq, ssrc, ev, ts, True)]
                for _ in range(END_REPEATS - 1):
                    self._seq_shift += 1
                    out.append(self._event(seq, ssrc, ev, ts, True))
                return out
            self.queue.popleft()
        return [self._shifted(packet, seq)]

    def _place(self, ts: int) -> None:
        """Give the queued events without a start theirs, the first at `ts`."""
        start = ts
        for ev in self.queue:
            if ev.start is None:
                ev.start = start
            start = (ev.end + ev.pause) & 0xFFFFFFFF

    def _shifted(self, packet: bytes, seq: int) -> bytes:
        if not self._seq_shift:
            return packet
        return packet[:2] + struct.pack("!H", (seq + self._seq_shift) & 0xFFFF) + packet[4:]

    def _event(self, seq: int, ssrc: int, ev: Injected, ts: int, end: bool) -> bytes:
        assert self.dtmf_pt is not None
        marker = ev.at is None
        if ev.at is None:
            ev.at = ts
        self.injected += 1
        duration = ((ts - ev.at) & 0xFFFFFFFF) + self.frame
        payload = build_event(Event(ev.code, end, ev.event_volume, min(duration, 0xFFFF)))
        header = _HEADER.pack(0x80, self.dtmf_pt | (0x80 if marker else 0),
                              (seq + self._seq_shift) & 0xFFFF, ev.at, ssrc)  # fmt: skip
        return header + payload

    def _tone(self, pt_m: int, seq: int, ts: int, ssrc: int, ev: Injected) -> bytes:
        assert self.encode is not None and ev.start is not None
        samples = self.frame * self.rate // self.clock
        offset = ((ts - ev.start) & 0xFFFFFFFF) * self.rate // self.clock
        if _before(ts, ev.end):
            pcm = tone_pcm(ev.code, ev.tone_volume, offset, samples, self.rate)
        else:
            pcm = bytes(2 * samples)  # the pause after the event
        self.injected += 1
        header = _HEADER.pack(0x80, pt_m, (seq + self._seq_shift) & 0xFFFF, ts, ssrc)
        return header + self.encode(pcm)


def _before(a: int, b: int) -> bool:
    """RTP timestamp a comes before b (modulo 2^32)."""
    return 0 < (b - a) & 0xFFFFFFFF < 0x80000000
