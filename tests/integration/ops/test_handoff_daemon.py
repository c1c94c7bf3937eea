"""Issue 18, a real daemon with `num-threads = 2`: requests from many client sockets (the kernel
spreads them over both workers' `listen-ng` sockets) for calls of both workers, each sent
twice with the same cookie. The owner answers the first (handed to it, decoded, when another
worker received it) and its reply cache answers the second, byte for byte; every call exists
once."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from rtpvault.shard import owner_of
from tests.support import daemons
from tests.support.ng import encode_ordered
from tests.support.wait import wait_for

pytestmark = pytest.mark.integration

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)


def _call_ids(count: int) -> list[str]:
    """`count` call-ids, alternately owned by worker 0 and worker 1."""
    out: list[str] = []
    i = 0
    while len(out) < count:
        i += 1
        cid = f"handoff-{i}"
        if owner_of(cid, 2) == len(out) % 2:
            out.append(cid)
    return out


def test_retransmissions_get_the_owners_cached_reply_from_any_worker(tmp_path: Path) -> None:
    d = daemons.start("rtpvault", tmp_path, extra=["--num-threads=2", "--log-level=6"])
    try:
        # ping answered by one worker; a request handed to a worker that has not opened its
        # listen-ng socket yet would get no reply (the client would have to retransmit)
        assert wait_for(lambda: "Startup complete, rtpvault (2 workers)" in d.log(), 20)
        call_ids = _call_ids(16)
        for n, cid in enumerate(call_ids):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(5)
            try:
                sock.connect(("127.0.0.1", d.ng_port))  # as Kamailio: replies must come from it
                datagram = b"ck%d " % n + encode_ordered(
                    {"command": "offer", "call-id": cid, "from-tag": "a", "sdp": SDP}
                )
                sock.send(datagram)
                first = sock.recv(65535)
                sock.send(datagram)
                second = sock.recv(65535)
            finally:
                sock.close()
            assert b"6:result2:ok" in first, first[:200]
            assert second == first, cid
        c = d.client()
        try:
            listed = c.call({"command": "list", "limit": 100})["calls"]
        finally:
            c.close()
        assert sorted(listed) == sorted(call_ids)
        assert d.log().count("as a duplicate") == len(call_ids)
    finally:
        d.stop()
