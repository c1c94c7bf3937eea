"""The userspace plane's reader for a stream that has a secure transport, or whose sink has one
(relay.media.secure), that generates RTCP (relay.media.reports) or transcodes
(relay.media.transcoder). Plain pairs never run this code: `UserspacePlane.add`/`update`
choose it.

Per datagram, after `recvfrom_into` (same adaptive batch as the plain reader):

0. the stream has a transport and the first byte is not RTP/RTCP (RFC 7983 §7): STUN, DTLS or
   unknown, handed to `Transport.control` (never tapped, never forwarded);
1. with ICE, media only from the selected pair; a socket on another address of the agent
   (`Transport.primary`) hands it on to its own stream, which counts, records and forwards it;
   with SRTP, unprotected (failures counted and dropped: an unauthenticated packet neither
   latches, nor is recorded, nor forwarded);
2. the tap gets the plaintext (recording and HEP see decrypted RTP/RTCP, as rtpengine records);
3. latching as in the plain reader (not with ICE: the selected pair is the peer);
4. counters; with generate-RTCP the packet updates the side's reports (the party's RTCP stops
   here) and RTP leaving towards a side with reports is counted there;
5. a media-command gate (relay.media.gate) may drop RTP or silence its payload;
6. on a transcoded direction (`stream.transcoder`, relay.media.transcoder), RTP goes through
   the codec chain and what it returns is sent instead (each packet as below); the party's
   RTCP is rewritten for the other leg (docs/spec/transcoding.md §2); with a DTX buffer
   (`dtx-delay`) a timer on the loop sends what the chain makes when it is due (`dtx_timer`);
7. out through the sink (RTCP through `rtcp_sink` when the stream has one,
   docs/spec/sdp.md §4.1): its transport protects and picks the ICE pair, or a
   plain sink gets `sendto(sink.peer)` as in the plain reader.

A last `except Exception` around each datagram keeps a bug or an unforeseen library error from
leaving the reader: counted in `stream.errors`, logged once per stream.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from relay.media.latch import apply, decide
from relay.media.stream import Address, Stream
from rtp.demux import looks_like_rtcp
from rtp.header import SSRC_OFFSET, read_u32

logger = logging.getLogger("rtpvault.media.secure")

BATCH = 64
GROW_AFTER = 4
RECV_SIZE = 8192
"""Most bytes of a datagram read, as the plain reader and rtpengine 10.5 (a larger one is cut
off there; docs/spec/transcode-media.md §1): a huge datagram cannot make a transcoding chain
decode and encode seconds of audio at once on the worker's loop."""


def is_rtcp_on(stream: Stream, packet: bytes) -> bool:
    """RTCP on an RTCP socket, or by its packet type on a muxed one (RFC 5761 §4, 192-223 as
    rtpengine's demux; SRTCP keeps its header in the clear). Inline: one byte compare."""
    return stream.is_rtcp or (len(packet) >= 8 and 192 <= packet[1] <= 223)


def handle(
    s: Stream,
    data: bytes,
    src: Address,
    loop: asyncio.AbstractEventLoop,
    clock: Callable[[], float],
    now: float,
) -> None:
    """One received datagram on secure-reader stream `s` (see the module docstring)."""
    t = s.transport
    if t is not None and not (data and 128 <= data[0] <= 191):
        t.control(data, src, loop.time())
        return
    size = len(data)  # counted as received (UDP payload), as the plain reader counts
    rtcp = s.is_rtcp or (size >= 8 and 192 <= data[1] <= 223)  # is_rtcp_on, inline
    if t is not None:
        if t.ice is not None and not t.accepts(src):
            return
        if t.primary is not None:
            # another address's socket of the ICE agent: on through its own stream's path
            s, t = t.primary, t.primary.transport
            if t is None:
                return
        plain = t.unprotect(data, rtcp)
        if plain is None:
            return
        data = plain
        size = len(data)  # rtpengine counts the decrypted length (docs/spec/ng-protocol.md §4.4)
    if s.tap is not None:
        try:
            s.tap(s, data, src, now)
        except Exception:  # a recorder bug must not stop the media
            s.tap_errors += 1
    if (t is None or t.ice is None) and not (s.confirmed and src == s.peer):
        if not apply(s, decide(s, src, clock(), looks_like_rtcp(data, len(data)))):
            return
    s.packets += 1
    s.bytes += size
    s.last_packet = now
    if not rtcp and len(data) >= 12 and data[0] & 0xC0 == 0x80:
        s.ssrc = read_u32(data, SSRC_OFFSET)[0]
    if s.reports is not None and not s.reports.received(data, rtcp, now):
        return  # generate-RTCP: the party's RTCP is taken in, not forwarded
    if s.gate is not None and not rtcp:
        gated = s.gate.filter(data)  # block/silence media, block DTMF (relay.media.gate)
        if gated is None:
            return
        data = gated
    sink = s.rtcp_sink if rtcp and s.rtcp_sink is not None else s.sink
    if sink is None or sink.send_blocked:
        return
    tc = s.transcoder
    if tc is not None:
        if rtcp:
            data = tc.rtcp(data)  # describes the other leg now (docs/spec/transcoding.md §2)
        else:
            for out in tc.feed(data, now):  # the chain never raises (counted in tc.errors)
                _send(sink, out, False)
            if tc.dtx is not None and tc.timer is None:
                dtx_timer(s, loop, now)
            return
    _send(sink, data, rtcp)


def dtx_timer(s: Stream, loop: asyncio.AbstractEventLoop, now: float) -> None:
    """Arm the timer of `s`'s transcoder's DTX buffer for its next tick (`now`: the time on
    the clock the chain is fed with, the reader's wall clock): the tick sends what the chain
    makes then through the stream's sink of that moment and arms the next one; none while the
    buffer sleeps (max-dtx) or after the transcoder closed."""
    tc = s.transcoder
    if tc is None or tc.dtx is None or tc.closed:
        return
    at = tc.dtx.next_at()
    if at is None:
        tc.timer = None
        return

    armed = loop.time()

    def fire() -> None:
        tc.timer = None
        if tc.closed or s.transcoder is not tc:
            return
        t = now + (loop.time() - armed)
        try:
            out = tc.tick(t)
            sink = s.sink
            if sink is not None and not sink.send_blocked:
                for packet in out:
                    _send(sink, packet, False)
        except Exception:  # a bug must never leave the loop's callback
            s.errors += 1
        dtx_timer(s, loop, t)

    tc.timer = loop.call_at(armed + max(0.0, at - now), fire)


def _send(sink: Stream, data: bytes, rtcp: bool) -> None:
    """`data` leaves towards the sink's party: counted for its reports (RTP), protected by its
    transport (which picks the ICE pair), or sent to its peer on a plain leg."""
    if sink.reports is not None and not rtcp:
        sink.reports.forwarded(data)
    st = sink.transport
    if st is not None:
        st.send(data, rtcp)
    elif sink.peer is not None:
        try:
            sink.sock.sendto(data, sink.peer)
        except OSError:
            sink.send_errors += 1


def secure_reader(
    stream: Stream,
    loop: asyncio.AbstractEventLoop,
    clock: Callable[[], float],
    wallclock: Callable[[], float],
) -> Callable[[], None]:
    """The socket callback for `stream`.

    It reads with `recvfrom`, not into the plane's shared buffer as the plain reader does: the
    crypto libraries take `bytes`, and one `recvfrom` is cheaper than `recvfrom_into` plus a
    copy out of the buffer (one allocation instead of two, 0.3 µs less per packet here)."""
    recv = stream.sock.recvfrom
    v6 = stream.family == socket.AF_INET6
    limit = 1
    full = 0
    s = stream
    failed = False

    def on_readable() -> None:
        nonlocal limit, full, failed
        for _ in range(limit):
            try:
                data, src = recv(RECV_SIZE)
            except BlockingIOError:
                full = 0
                if limit > 1:
                    limit >>= 1
                return
            except OSError:
                s.errors += 1
                return
            try:
                handle(s, data, src[:2] if v6 else src, loop, clock, wallclock())
            except Exception:  # bad input or a bug: never out of the reader
                s.errors += 1
                if not failed:
                    failed = True
                    logger.exception("%s:%d (call %s): packet dropped by an unexpected error "
                                     "(counted; not logged again)", s.local_address,
                                     s.local_port, s.call_id)  # fmt: skip
        full += 1
        if full >= GROW_AFTER and limit < BATCH:
            limit <<= 1
            full = 0

    return on_readable
