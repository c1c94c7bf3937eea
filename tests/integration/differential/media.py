"""Client media sockets for scenarios that send RTP through the relay.

`${port:NAME}` in a request becomes the port of a UDP socket bound on 127.0.0.1 for NAME (one
per scenario run), so an SDP can advertise it. A step

    {"rtp": {"from": "a", "to": "{P2}", "count": 3, "ssrc": 286331153, "expect_at": "b"}}

sends `count` PCMU-sized RTP packets from NAME's socket to the relay port that the replies so
far called `{P2}`, then reads `count` packets at `expect_at` (if given). Its result records how
many arrived and from which relay port, normalised like everything else.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from .normalise import ScenarioState

PAYLOAD = b"\xff" * 160


def rtp_packet(seq: int, timestamp: int, ssrc: int, payload_type: int = 0) -> bytes:
    """RFC 3550 §5.1 fixed header (V=2, no padding/extension/CSRC) plus a G.711 frame."""
    return struct.pack("!BBHII", 0x80, payload_type & 0x7F, seq, timestamp, ssrc) + PAYLOAD


class Clients:
    """The scenario's client sockets, by name; their ports are registered in the state."""

    def __init__(self, st: ScenarioState) -> None:
        self.st = st
        self.socks: dict[str, socket.socket] = {}

    def port(self, name: str) -> int:
        if name not in self.socks:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.settimeout(3.0)  # a guard against packets that never come, not a measurement
            self.socks[name] = s
            self.st.clients[int(s.getsockname()[1])] = f"{{port:{name}}}"
        return int(self.socks[name].getsockname()[1])

    def close(self) -> None:
        for s in self.socks.values():
            s.close()

    def rtp(self, spec: dict[str, Any]) -> dict[str, Any]:
        target = self.st.port_number(spec["to"])
        if target is None:
            return {"error": f"no relay port called {spec['to']} yet"}
        count = int(spec.get("count", 1))
        ssrc = int(spec.get("ssrc", 0x11111111))
        src = self.socks[spec["from"]] if spec["from"] in self.socks else None
        if src is None:
            self.port(spec["from"])
            src = self.socks[spec["from"]]
        for i in range(count):
            src.sendto(rtp_packet(1000 + i, 160 * i, ssrc), ("127.0.0.1", target))
        result: dict[str, Any] = {"sent": count}
        if "expect_at" in spec:
            dst = self.socks[spec["expect_at"]]
            received, sources, intact = 0, set(), True
            try:
                while received < count:
                    data, addr = dst.recvfrom(65535)
                    received += 1
                    sources.add(str(self.st.port(int(addr[1]))))
                    intact = intact and data[12:] == PAYLOAD
            except TimeoutError:
                pass
            result.update(received=received, sources=sorted(sources), intact=intact)
        return result
