"""RTP both ways on every call of a worker test (issues 18 and 19), from two threads: one sends
every few ms until `stop_sending`, one notes each packet the relay forwarded, so a test can kill
a worker mid-call and count what came through. Subclasses say what they send (`_send`), what
they keep per (call-id, direction) (`track`) and what they keep of a forwarded packet (`heard`).
"""

from __future__ import annotations

import selectors
import socket
import threading

from tests.integration.recording.media import Call

Key = tuple[str, str]
"""(call-id, direction): direction is "to-callee" or "to-caller"."""


class BothWays:
    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls
        self.stop = threading.Event()
        self.receiving = True
        self.sel = selectors.DefaultSelector()
        for c in calls:
            for leg, direction in ((c.callee, "to-callee"), (c.caller, "to-caller")):
                leg.rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                leg.rtp.setblocking(False)
                self.sel.register(leg.rtp, selectors.EVENT_READ, (c.call_id, direction))
                self.track((c.call_id, direction))
        self.threads = [threading.Thread(target=self._send), threading.Thread(target=self._recv)]
        for t in self.threads:
            t.start()

    def track(self, key: Key) -> None:
        """Start keeping what is sent and heard on `key` (before the threads start)."""
        raise NotImplementedError

    def _send(self) -> None:
        raise NotImplementedError

    def heard(self, key: Key, data: bytes) -> None:
        raise NotImplementedError

    def _recv(self) -> None:
        while self.receiving:
            for key, _ in self.sel.select(0.1):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                while True:
                    try:
                        data = sock.recv(2048)
                    except OSError:
                        break
                    self.heard(key.data, data)

    def stop_sending(self) -> None:
        self.stop.set()
        self.threads[0].join()

    def close(self) -> None:
        self.stop_sending()
        self.receiving = False
        self.threads[1].join()
        self.sel.close()
