"""A stand-in for one rtpvault worker process (issue 18) with the kernel plane attached to a
shared table: run inside the relay namespace as

    python -m tests.integration.media.kernel_worker TABLE INDEX COUNT RELAY_ADDR PEER_A PEER_B

where PEER_x is host:port. It opens the real planes (UserspacePlane wrapped by
open_kernel_plane(..., worker=(INDEX, COUNT))), binds two media sockets on RELAY_ADDR, links them
as one call between PEER_A and PEER_B as the call model does once both peers are confirmed, and
offloads both directions. It prints one JSON line {"ports": [facing A, facing B], "offloaded":
n, "why_not": text} and then serves its event loop until `close` arrives on stdin (then it stops
the plane and ends the call as the daemon's shutdown does, prints `closed` and exits) or it is
killed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys

from relay.media.kernel import KernelPlane, open_kernel_plane
from relay.media.stream import Stream
from relay.media.userspace import UserspacePlane


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def _stream(relay_addr: str, peer: tuple[str, int]) -> Stream:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((relay_addr, 0))
    sock.setblocking(False)
    s = Stream(sock, relay_addr, sock.getsockname()[1])
    s.peer = s.sdp_peer = peer
    s.confirmed = True
    s.filled = True
    return s


def main(argv: list[str]) -> int:
    table, index, count = int(argv[0]), int(argv[1]), int(argv[2])
    relay_addr, peer_a, peer_b = argv[3], _addr(argv[4]), _addr(argv[5])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    loop = asyncio.new_event_loop()
    plane, why_not = open_kernel_plane(loop, UserspacePlane(loop), table, worker=(index, count))
    to_a, to_b = _stream(relay_addr, peer_a), _stream(relay_addr, peer_b)
    to_a.sink, to_b.sink = to_b, to_a
    plane.add(to_a)
    plane.add(to_b)
    plane.update(to_a)  # both directions: the stream and its sink's partner
    offloaded = plane.offloaded if isinstance(plane, KernelPlane) else 0
    print(json.dumps({"ports": [to_a.local_port, to_b.local_port], "offloaded": offloaded,
                      "why_not": why_not}), flush=True)  # fmt: skip
    done = loop.create_future()

    def command() -> None:
        line = sys.stdin.readline()
        if line.strip() == "close" or not line:
            loop.remove_reader(sys.stdin.fileno())
            stop = getattr(plane, "stop", None)
            if stop is not None:  # as rtpvault.daemon shuts down: the plane, then the calls
                stop()
            plane.remove(to_a)
            plane.remove(to_b)
            plane.close()
            done.set_result(None)

    loop.add_reader(sys.stdin.fileno(), command)
    loop.run_until_complete(done)
    print("closed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
