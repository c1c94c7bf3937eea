"""Ships encoded HEP packets to a capture server over UDP or TCP without ever blocking the caller.

`send(packet)` is called on the event loop (from the media tap or an ng observer): it only puts
the bytes on a bounded queue (`put_nowait`) and returns; a full queue drops the packet and counts
it. One worker thread owns the socket: UDP datagrams one per packet; TCP packets back to back on
one connection (HEP needs no other framing), reconnecting with exponential backoff (0.5 s → 30 s)
after a failure — a partially written packet is lost, the rest of the queue is kept. Counters are
plain ints, each written by one thread only (`+=` from two threads could lose counts): the
caller's queue-full drops and the worker's send-side drops are kept apart and summed on read.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time

__all__ = ["HepSender"]

logger = logging.getLogger("rtpvault.hep")

_STOP = b""


class HepSender:
    def __init__(self, host: str, port: int, protocol: str = "udp", max_queue: int = 10000,
                 backoff_max: float = 30.0) -> None:  # fmt: skip
        self.host = host
        self.port = port
        self.protocol = protocol
        self.backoff_max = backoff_max
        self._queue: queue.Queue[bytes] = queue.Queue(max_queue)
        self.sent = 0
        self.full = 0  # dropped because the queue was full (caller's thread)
        self.failed = 0  # dropped because the receiver was unreachable (worker thread)
        self.errors = 0
        self.connects = 0
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name=f"hep-{protocol}", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self.full + self.failed

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def send(self, packet: bytes) -> None:
        try:
            self._queue.put_nowait(packet)
        except queue.Full:
            self.full += 1

    def close(self, timeout: float = 2.0) -> None:
        """Stop after sending what is queued (up to `timeout`)."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()

    # -- worker ---------------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        kind = socket.SOCK_DGRAM if self.protocol == "udp" else socket.SOCK_STREAM
        sock = socket.socket(family, kind)
        sock.settimeout(5.0)
        try:
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.connects += 1
        if kind == socket.SOCK_STREAM:
            logger.info("HEP: connected to %s:%d (tcp)", self.host, self.port)
        return sock

    def _run(self) -> None:
        backoff = 0.5
        retry_at = 0.0
        while True:
            packet = self._queue.get()
            if packet == _STOP:
                return
            if self._sock is None:
                if time.monotonic() < retry_at:
                    self.failed += 1  # receiver down: drop, counted; the media path never waits
                    continue
                try:
                    self._sock = self._connect()
                    backoff = 0.5
                except OSError as exc:
                    self.errors += 1
                    self.failed += 1
                    retry_at = time.monotonic() + backoff
                    logger.warning("HEP: cannot reach %s:%d (%s): retry in %.1f s",
                                   self.host, self.port, exc.strerror or exc, backoff)  # fmt: skip
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
            try:
                self._sock.sendall(packet)
                self.sent += 1
            except OSError as exc:
                self.errors += 1
                self.failed += 1
                if self.protocol == "udp" and exc.errno == 111:
                    continue  # ICMP port unreachable from an earlier datagram; keep the socket
                logger.warning("HEP: send to %s:%d failed (%s): reconnecting",
                               self.host, self.port, exc.strerror or exc)  # fmt: skip
                self._sock.close()
                self._sock = None
                retry_at = time.monotonic() + backoff
                backoff = min(backoff * 2, self.backoff_max)
