"""rtpengine 10.5's DTX buffer (`dtx-delay`, `max-dtx`, `dtx-buffer`, `dtx-lag`, `dtx-shift`;
docs/spec/config.md §2.9) as bookkeeping: which input packet goes into the chain at each tick
of a timer, and when the chain must make up a frame because the sender sent none.

Sans-IO: `push(packet, now)` holds a packet, `due(now)` returns what is due by `now` (packets,
and `FILL` for each frame the chain makes up), `next_at()` when to call `due` next. The caller
(relay.media.transcoder, driven by the userspace plane's timer) owns the clock and the chain.

As rtpengine's `__buffer_dtx` / `__dtx_send_later` (codec.c), learnt from, not copied:

* the timer starts `delay` after the first packet arrives and ticks once per input frame
  (`tspp` ticks: what the last decoded packet held, `set_frame`; 20 ms until then);
* a tick hands over the oldest held packet if its timestamp is at most one frame past the
  last one handed over (or the first, or a timestamp reset: backwards, or further ahead than
  max(20 × delay, 200 ms)); otherwise it is a `FILL`, and the expected timestamp moves on;
* drift, when a packet is handed over, with `shift` > 0: it arrived less than `delay` ago
  (the timer caught up with reception) → the timer moves `shift` later; its timestamp is less
  than a frame past the previous one (not a repeated telephone-event) → `shift` later and the
  packet is dropped; `max_packets` or more still held spanning `max_lag` or more → `shift`
  earlier. With `shift` 0: the expected timestamp steps back a frame instead, and an
  overflowing packet is dropped;
* `FILL`s stop when the whole-second wall-clock time is `max_dtx` seconds past that of the
  last packet pushed (rtpengine compares `tv_sec`); the buffer then sleeps until the next
  packet, which starts it again as a first one. A new SSRC starts it again too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FILL", "DtxBuffer", "DtxSettings"]

FILL = None
"""A `due` entry: the chain makes up one input frame here."""
DEFAULT_FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class DtxSettings:
    delay: float = 0.0
    """`dtx-delay` in seconds; 0: no DTX buffer."""
    max_dtx: float = 30.0
    """`max-dtx` in seconds; <= 0: no limit."""
    max_packets: int = 10
    """`dtx-buffer`."""
    max_lag: float = 0.1
    """`dtx-lag` in seconds."""
    shift: float = 0.005
    """`dtx-shift` in seconds."""


def _signed(delta: int) -> int:
    return (delta + 0x80000000) % 0x100000000 - 0x80000000


class DtxBuffer:
    """The held packets of one direction. `audio_clock(pt)`: the RTP clock of an audio payload
    type, None for telephone-event, CN and unknown ones (their timestamps may repeat)."""

    def __init__(self, settings: DtxSettings, audio_clock: Callable[[int], int | None]) -> None:
        self.settings = settings
        self._clock_of = audio_clock
        self._held: deque[tuple[int, bool, float, bytes]] = deque()  # ts, audio, arrival, packet
        self._ssrc: int | None = None
        self._clock = 8000
        self._tspp = 160  # input ticks per frame
        self._head: int | None = None  # timestamp last handed over (or made up); None: first
        self._next: float | None = None  # time of the next tick; None: asleep
        self._pushed = 0.0  # when the last packet was pushed
        self.fills = 0
        self.discarded = 0
        self.shifts = 0

    def next_at(self) -> float | None:
        return self._next

    def held(self) -> int:
        return len(self._held)

    def set_frame(self, ticks: int, clock: int) -> None:
        """The input frame: `ticks` at `clock` (the chain's last decoded packet)."""
        if 0 < ticks <= clock // 5:
            self._tspp, self._clock = ticks, clock

    def push(self, data: bytes, now: float) -> bool:
        """Hold an RTP packet; False (not held: hand it over now) for one that is not RTP."""
        if len(data) < 12 or data[0] & 0xC0 != 0x80:
            return False
        ts, ssrc = int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big")
        clock = self._clock_of(data[1] & 0x7F)
        if clock is not None and clock != self._clock:
            self._clock, self._tspp = clock, clock * DEFAULT_FRAME_MS // 1000
        if ssrc != self._ssrc:
            self._ssrc, self._head, self._next = ssrc, None, None
            self._held.clear()
        self._pushed = now
        self._held.append((ts, clock is not None, now, data))
        if self._next is None:
            self._next = now + self.settings.delay
        return True

    def due(self, now: float) -> list[bytes | None]:
        """Every packet and FILL due by `now`, in order."""
        out: list[bytes | None] = []
        while self._next is not None and self._next <= now:
            out += self._tick(self._next)
        return out

    def _ready(self, ts: int) -> bool:
        if self._head is None:
            return True
        diff = _signed(ts - self._head)
        far = max(20 * self.settings.delay, 0.2) * self._clock
        return diff < 0 or diff > far or diff < 2 * self._tspp

    def _tick(self, at: float) -> list[bytes | None]:
        assert self._next is not None
        out: list[bytes | None] = []
        while self._held and self._ready(self._held[0][0]):
            ts, audio, arrived, data = self._held.popleft()
            ts_diff = self._tspp if self._head is None else _signed(ts - self._head)
            self._head = ts
            if not self._drift(ts, audio, at - arrived, ts_diff):
                out.append(data)
                break
            self.discarded += 1
        if not out:
            limit = self.settings.max_dtx
            if limit > 0 and int(at) - int(self._pushed) >= limit:
                self._next = self._head = None  # max-dtx: asleep until the next packet
                return out
            assert self._head is not None
            self._head = (self._head + self._tspp) & 0xFFFFFFFF
            out.append(FILL)
            self.fills += 1
        self._next += self._tspp / self._clock
        return out

    def _drift(self, ts: int, audio: bool, waited: float, ts_diff: int) -> bool:
        """Timer corrections for the packet handed over; True: drop it."""
        s = self.settings
        repeated_event = ts_diff == 0 and not audio
        behind = ts_diff < self._tspp and not repeated_event
        overflow = False
        if len(self._held) >= s.max_packets:
            overflow = _signed(self._held[-1][0] - ts) >= s.max_lag * self._clock
        assert self._next is not None
        if s.shift > 0:
            if waited < s.delay:  # reception caught up with the timer
                self._next += s.shift
                self.shifts += 1
            elif behind:
                self._next += s.shift
                self.shifts += 1
                return True
            elif overflow:
                self._next -= s.shift
                self.shifts += 1
            return False
        if behind:
            assert self._head is not None
            self._head = (self._head - self._tspp) & 0xFFFFFFFF
        elif overflow:
            return True
        return False
