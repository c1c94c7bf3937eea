"""A worker that is still starting gets requests from the others (issue 18).

The workers start side by side; the first one serving answers Kamailio and hands on requests
for calls of a worker still binding its listeners. Those wait in the owner's inbox
(rtpvault.peers) and are answered from its `listen-ng` socket once it serves. In-process: the
worker's Daemon with a real ng socket and real channels, the other worker played by `Peers`.
"""

from __future__ import annotations

import asyncio
import os
import socket

from relay.config import load_settings, parse_args
from relay.limits import DaemonLimits
from relay.ng.codec import bencode_decode
from rtpvault.daemon import Daemon, _secure_context
from rtpvault.peers import Channels, Peers
from rtpvault.supervisor import WorkerSetup
from tests.support.tools import free_port, free_port_range


def test_request_handed_on_before_the_owner_serves_is_answered() -> None:
    port = free_port()
    pmin, pmax = free_port_range(10)
    argv = ["--config-file=none", "--interface=lo/127.0.0.1", "--table=-1",
            f"--listen-ng=127.0.0.1:{port}", f"--port-min={pmin}",
            f"--port-max={pmax}"]  # fmt: skip
    settings, _ = load_settings(parse_args(argv))
    channels = Channels(2)
    ready_r, ready_w = os.pipe()
    worker = WorkerSetup(0, 2, channels, ready_w,
                         {"secure": _secure_context(settings), "settings": settings,
                          "limits": DaemonLimits(2, settings)})  # fmt: skip
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.setblocking(False)
    source = client.getsockname()

    async def run() -> bytes:
        loop = asyncio.get_running_loop()
        daemon = Daemon(settings, loop, worker)
        # worker 1 got this ping on its listen-ng socket before worker 0 bound its own
        other = Peers(channels, 1)
        assert other.post(0, "ng-udp", (b"c00kie", {"command": "ping"}, False, source, 0))
        try:
            await daemon.start()
            return await asyncio.wait_for(loop.sock_recv(client, 4096), 10)
        finally:
            daemon.shutdown()

    try:
        reply = asyncio.run(run())
    finally:
        client.close()
        channels.close()
        os.close(ready_r)
        os.close(ready_w)
    cookie, _, body = reply.partition(b" ")
    assert cookie == b"c00kie" and bencode_decode(body) == {"result": "pong"}
