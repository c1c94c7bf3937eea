"""The plain SIP-side party of the browser call: one UDP socket on loopback that answers with
PCMU, sends its own tone as RTP every 20 ms and keeps the PCMU payloads it receives."""

from __future__ import annotations

import socket
import struct
import threading
import time

from rtp.demux import is_rtcp
from rtp.header import RtpError, RtpHeader
from tests.support.tone import ulaw_tone

PCMU = 0
FRAME = 160  # samples per 20 ms at 8 kHz


class PlainPeer:
    """A plain RTP/AVP phone on 127.0.0.1. `start(relay)` begins sending its tone to the relay
    and collecting what comes back, in a thread bounded by `lifetime` seconds."""

    def __init__(self, hz: float, ssrc: int = 0x5EE5_0001, lifetime: float = 30.0) -> None:
        self.hz = hz
        self.ssrc = ssrc
        self.lifetime = lifetime
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.005)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[tuple[int, int, bytes]] = []
        """(sequence, payload type, payload) of each RTP packet from the relay, in arrival order."""
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def answer(self, offer: str) -> str:
        """Its answer to `offer`: PCMU, and rtcp-mux when offered (RFC 5761; docs/spec/sdp.md
        §1.8 M1). A browser requires mux, so a peer without it needs rtcp-mux flags (M5/M6)."""
        mux = "a=rtcp-mux\r\n" if "\r\na=rtcp-mux\r\n" in offer else ""
        return (
            "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.port} RTP/AVP {PCMU}\r\na=rtpmap:{PCMU} PCMU/8000\r\na=ptime:20\r\n"
            f"{mux}a=sendrecv\r\n"
        )

    def start(self, relay: tuple[str, int]) -> None:
        self._thread = threading.Thread(target=self._run, args=(relay,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sock.close()

    def payloads(self) -> list[bytes]:
        """PCMU payloads received, in arrival order (loopback does not reorder)."""
        with self._lock:
            return [p for _, pt, p in self.received if pt == PCMU]

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def _run(self, relay: tuple[str, int]) -> None:
        start = next_send = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - start < self.lifetime:
            now = time.monotonic()
            if now >= next_send:
                out = struct.pack("!BBHII", 0x80, PCMU, self.sent & 0xFFFF,
                                  (self.sent * FRAME) & 0xFFFFFFFF, self.ssrc)  # fmt: skip
                self.sock.sendto(out + ulaw_tone(self.hz, self.sent * FRAME), relay)
                self.sent += 1
                next_send += FRAME / 8000
            try:
                data = self.sock.recv(2048)
            except (TimeoutError, BlockingIOError):
                continue
            if is_rtcp(data):
                continue
            try:
                head = RtpHeader.parse(data)
            except RtpError:
                continue
            with self._lock:
                self.received.append((head.sequence, head.payload_type, data[head.size :]))
