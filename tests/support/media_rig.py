"""Two RTP parties that talk continuously through a relay while a test sends it ng commands, and
keep every RTP packet they receive (with its arrival time) for the test to decode afterwards.

Each party sends one 20-ms PCMU packet of its own tone every 20 ms (A 440 Hz, B 1000 Hz, unless
told otherwise) from a background thread; `events()` sends RFC 4733 telephone-event packets in
the same stream. Nothing here asserts timing: a test reads what arrived once it stopped.
"""

from __future__ import annotations

import select
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from relay.transcode import packet as rtp_packet

from .rtp_party import Party
from .tone import ulaw_tone


@dataclass(frozen=True)
class Rtp:
    """One received RTP packet, parsed (RFC 3550 §5.1)."""

    at: float
    source: tuple[str, int]
    marker: bool
    pt: int
    seq: int
    ts: int
    ssrc: int
    payload: bytes
    raw: bytes = b""
    """The datagram as received (an SRTP test decrypts it)."""

    @classmethod
    def parse(cls, at: float, source: tuple[str, int], data: bytes) -> Rtp | None:
        """None for RTCP (PT 192-223, on a muxed port) and for what the product's own parser
        (relay.transcode.packet) does not take as RTP."""
        if len(data) >= 2 and 192 <= data[1] <= 223:
            return None
        p = rtp_packet.parse(data)
        return None if p is None else cls(at, source, *p, raw=data)

    def event(self) -> tuple[int, bool, int, int]:
        """A telephone-event payload: (event, end bit, volume, duration)."""
        ev, flags, duration = struct.unpack_from("!BBH", self.payload)
        return ev, bool(flags & 0x80), flags & 0x3F, duration


@dataclass
class Talker:
    """A party that sends its tone every 20 ms while `sending` and records what it receives."""

    name: str
    ssrc: int
    hz: float
    pt: int = 0
    party: Party = field(default_factory=Party)
    sending: bool = True
    got: list[Rtp] = field(default_factory=list)
    seq: int = 0
    samples: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    protect: Callable[[bytes], bytes] | None = None
    """SRTP-protects what this party sends (an SDES leg); None: plain RTP."""

    def packet(self, pt: int, payload: bytes, marker: bool = False, ts: int | None = None) -> bytes:
        self.seq += 1
        stamp = self.samples if ts is None else ts
        return rtp_packet.build(marker, pt, self.seq, stamp, self.ssrc, payload)

    def tick(self) -> None:
        with self.lock:
            if self.sending:
                data = self.packet(self.pt, ulaw_tone(self.hz, self.samples))
                self.party.send_rtp(self.protect(data) if self.protect else data)
            self.samples += 160

    def send_event(self, event_pt: int, event: int, packets: int = 5) -> None:
        """One RFC 4733 event of `packets` updates (the last three with the end bit), sent
        in place of audio (the audio stream pauses meanwhile)."""
        with self.lock:
            start = self.samples
            self.sending = False
        for n in range(packets + 2):
            end = n >= packets - 1
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10,
                                  160 * min(n + 1, packets))  # fmt: skip
            with self.lock:
                self.party.send_rtp(self.packet(event_pt, payload, marker=n == 0, ts=start))
            time.sleep(0.02)
        with self.lock:
            self.samples = start + 160 * packets
            self.sending = True


class Conversation:
    """A and B talking (background thread) until `stop()`."""

    def __init__(self, a: Talker, b: Talker) -> None:
        self.a, self.b = a, b
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        socks = {self.a.party.rtp: self.a, self.b.party.rtp: self.b}
        for s in socks:
            s.setblocking(False)
        due = time.monotonic()
        while self.running:
            now = time.monotonic()
            if now >= due:
                due += 0.02
                self.a.tick()
                self.b.tick()
            ready, _, _ = select.select(list(socks), [], [], max(0.0, due - time.monotonic()))
            for s in ready:
                while True:
                    try:
                        data, src = s.recvfrom(4096)
                    except (BlockingIOError, OSError):
                        break
                    pkt = Rtp.parse(time.monotonic(), src, data)
                    if pkt is not None:
                        socks[s].got.append(pkt)

    def stop(self) -> None:
        self.running = False
        self.thread.join(5)

    def mark(self) -> tuple[int, int]:
        """How many packets A and B received so far (to slice `got` by phase)."""
        return len(self.a.got), len(self.b.got)
