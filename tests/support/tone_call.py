"""Parties that speak a tone at once, paced like a phone (one 20-ms PCMU packet per 20 ms),
and keep every RTP packet that reaches them, for tests that send audio through a transcoding
chain and analyse what came out (tests.support.tone)."""

from __future__ import annotations

import selectors
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .rtp_party import Party
from .tone import dominant_hz, rtp_ulaw_samples, snr_db, ulaw_tone

PTIME = 0.02
SAMPLES = 160


@dataclass
class Speaker:
    """A party, the tone it sends (Hz), its SSRC, and the RTP packets it received."""

    party: Party
    hz: float
    ssrc: int
    received: list[bytes] = field(default_factory=list)


def speak(speakers: Sequence[Speaker], seconds: float, tail: float = 0.5) -> None:
    """Each speaker sends `seconds` of its tone as PCMU (PT 0) to its relay, all paced on one
    clock; everything that arrives meanwhile and for `tail` seconds after is kept."""
    sel = selectors.DefaultSelector()
    for i, sp in enumerate(speakers):
        sp.party.rtp.setblocking(False)
        sel.register(sp.party.rtp, selectors.EVENT_READ, i)
    try:
        count = round(seconds / PTIME)
        start = time.monotonic()
        for n in range(count):
            for sp in speakers:
                head = struct.pack("!BBHII", 0x80, 0x80 if n == 0 else 0,
                                   n & 0xFFFF, (n * SAMPLES) & 0xFFFFFFFF, sp.ssrc)  # fmt: skip
                sp.party.send_rtp(head + ulaw_tone(sp.hz, n * SAMPLES))
            _collect(sel, speakers, start + (n + 1) * PTIME)
        _collect(sel, speakers, time.monotonic() + tail)
    finally:
        sel.close()
        for sp in speakers:
            sp.party.rtp.setblocking(True)
            sp.party.rtp.settimeout(sp.party.timeout)


def _collect(sel: selectors.BaseSelector, speakers: Sequence[Speaker], until: float) -> None:
    while (left := until - time.monotonic()) > 0:
        for key, _ in sel.select(left):
            sp = speakers[key.data]
            while True:
                try:
                    sp.received.append(sp.party.rtp.recv(4096))
                except BlockingIOError:
                    break


@dataclass(frozen=True)
class Heard:
    """What one party heard: pitch (Hz) and SNR (dB) of the steady part, and its length (s)."""

    hz: float
    snr_db: float
    seconds: float


def heard(packets: Sequence[bytes], expect_hz: float, skip: float = 0.5, pt: int = 0) -> Heard:
    """Pitch and SNR (against a sine at `expect_hz`) of a PCMU stream, without its first `skip`
    seconds (codec start-up) and its last 0.1 s."""
    samples = rtp_ulaw_samples(packets, pt)
    steady = samples[int(skip * 8000) : len(samples) - 800]
    if len(steady) < 1600:
        return Heard(0.0, float("-inf"), len(samples) / 8000)
    return Heard(dominant_hz(steady[:4000]), snr_db(steady, expect_hz), len(samples) / 8000)
