"""`play media` / `stop media`: one player per party that sends a file's audio to that party
(docs/spec/ng-protocol.md §9.2-9.3).

As rtpengine 10.5: the player belongs to the party (created by the first `play media`, kept for
the call's life), has its own random SSRC, sequence number and timestamp that carry on from one
`play media` to the next, sets the marker bit on each playback's first packet, and sends from the
relay port facing the party, in the first codec of the party's m= line that rtpvault can encode,
one packet per ptime. The party's other media keeps flowing (two SSRCs at once).

Timing: one `loop.call_at` per packet at absolute times (no drift); a tick sends at most
`CATCH_UP` late packets, so a stalled loop never leads to a burst that blocks it. A packet leaves
through the stream's transport (SRTP protect, ICE pair) when the leg has one, else `sendto`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable

from relay.call.model import MediaSide, Party
from relay.media.stream import Stream
from relay.transcode.fileplay import FileSource, MediaError, encoding_for
from relay.transcode.plan import Codec

logger = logging.getLogger(__name__)

CATCH_UP = 3
"""Most packets one timer tick sends when the loop woke up late."""
SUPPLEMENTAL = ("telephone-event", "cn")


def playback_side(party: Party) -> MediaSide | None:
    """rtpengine's `media_player_play_init`: the first audio m= line with an RTP stream that
    the relay sends to."""
    for side in party.medias:
        if side.type == "audio" and side.send and side.rtp is not None:
            return side
    return None


def output_codec(side: MediaSide) -> tuple[int, Codec] | None:
    """The first non-supplemental codec of the party's m= line (its own SDP) rtpvault can
    encode, with its payload type, as rtpengine's `media_player_setup` takes the first of the
    media's codecs."""
    offered = side.sdp
    if offered is None:
        return None
    for pt in offered.formats:
        name = offered.codec_names.get(pt)
        if name is None:
            continue
        parts = name.split("/")
        if parts[0].lower() in SUPPLEMENTAL or len(parts) < 2 or not parts[1].isdigit():
            continue
        codec = Codec(parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else 1)
        if encoding_for(codec) is not None and pt.isdigit():
            return int(pt), codec
    return None


class Player:
    """The media player of one party."""

    def __init__(self, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        r = rng or random.SystemRandom()
        self.ssrc = r.randrange(1, 2**32)
        self.seq = r.randrange(2**16)
        self.ts = r.randrange(2**32)
        self._clock = clock
        self._source: FileSource | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._stream: Stream | None = None
        self._pt = 0
        self._ptime = 0.02
        self._marker = False
        self._last_sent = 0.0
        self._step = 160
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent = 0
        self.failed = False

    @property
    def playing(self) -> bool:
        return self._source is not None

    def play(self, loop: asyncio.AbstractEventLoop, party: Party, data: str | bytes,
             repeat: int) -> int:  # fmt: skip
        """Start playing `data` (a path, or a blob's bytes) to `party`; returns the duration
        in ms. MediaError when the party has nothing to play to or the file cannot be played."""
        self.stop()
        side = playback_side(party)
        if side is None or side.rtp is None:
            raise MediaError("no suitable SDP section for media playback")
        chosen = output_codec(side)
        if chosen is None:
            raise MediaError("no supported output codec in the party's SDP")
        pt, codec = chosen
        ptime = side.sdp.ptime if side.sdp is not None and side.sdp.ptime else 20
        source = FileSource(data, codec, ptime, repeat)
        if self._last_sent:  # timestamps go on at the clock rate across playbacks
            self.ts += int((self._clock() - self._last_sent) * codec.clock)
        self._source = source
        self._stream = side.rtp
        self._pt = pt
        self._ptime = source.ptime_ms / 1000
        self._step = source.ts_per_frame
        self._marker = True
        self._loop = loop
        self._tick(self._clock())
        return source.duration_ms

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._source is not None:
            self._source.close()
            self._source = None

    def _tick(self, due: float) -> None:
        self._handle = None
        try:
            for _ in range(CATCH_UP):
                if not self._send_one():
                    self.stop()
                    return
                due += self._ptime
                if due > self._clock():
                    break
            loop = self._loop
            assert loop is not None
            self._handle = loop.call_at(loop.time() + (due - self._clock()), self._tick, due)
        except Exception:  # a codec or socket surprise must never leave the loop's callback
            if not self.failed:
                logger.exception("media playback stopped by an unexpected error")
            self.failed = True
            self.stop()

    def _send_one(self) -> bool:
        source, stream = self._source, self._stream
        if source is None or stream is None or stream.sock.fileno() < 0:
            return False  # stopped, or the party's ports were released
        try:
            payload = source.next_payload()
        except MediaError:  # a file broken half-way: the playback ends there
            return False
        if payload is None:
            return False
        header = struct.pack("!BBHII", 0x80, self._pt | (0x80 if self._marker else 0),
                             self.seq, self.ts & 0xFFFFFFFF, self.ssrc)  # fmt: skip
        self._marker = False
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + self._step) & 0xFFFFFFFF
        self._last_sent = self._clock()
        packet = header + payload
        if stream.transport is not None:
            stream.transport.send(packet, False)
        elif stream.peer is not None and not stream.send_blocked:
            try:
                stream.sock.sendto(packet, stream.peer)
            except OSError:
                stream.send_errors += 1
        self.sent += 1
        return True
