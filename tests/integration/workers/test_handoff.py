"""Requests that reach a worker which does not own their call (issue 18, "Retransmitted ng
requests to a non-owner worker get the owner's cached reply"), over UDP, TCP and HTTP.

Two workers. The kernel gives each client socket (each TCP connection) to one worker; a socket
asking for a call of worker 0 and a call of worker 1 always reaches a non-owner for one of them,
and the receiving worker's log line (workers.handed) says which. A retransmission (same cookie,
same bytes, same socket) is handed on again and answered from the owner's reply cache: the same
bytes, the command executed once. Over UDP the reply comes from `listen-ng` itself: the client
socket is connected to it, as Kamailio's is, so the kernel drops anything from elsewhere.
"""

from __future__ import annotations

import http.client
import socket
from pathlib import Path
from typing import Any

import bencodepy
import pytest

from tests.support import daemons
from tests.support.ng import encode_ordered, to_str
from tests.support.tools import free_port

from .workers import handed, owned_call_ids

pytestmark = pytest.mark.integration

TIMEOUT = 5.0  # a hang guard: a live worker answers in milliseconds


def offer(call_id: str, port: int = 16000) -> dict[str, Any]:
    return {
        "command": "offer", "call-id": call_id, "from-tag": "ft", "replace": ["origin"],
        "sdp": "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
               f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
    }  # fmt: skip


def decode(reply: bytes, cookie: bytes) -> dict[str, Any]:
    assert reply.startswith(cookie + b" "), reply[:80]
    return dict(to_str(bencodepy.decode(reply[len(cookie) + 1 :])))


def statistics(d: daemons.Daemon) -> dict[str, Any]:
    c = d.client()
    try:
        return c.call({"command": "statistics"})["statistics"]
    finally:
        c.close()


def listed(d: daemons.Daemon) -> list[str]:
    c = d.client()
    try:
        return sorted(c.call({"command": "list"})["calls"])
    finally:
        c.close()


def test_udp_retransmissions_to_a_non_owner_get_the_owners_cached_reply(tmp_path: Path) -> None:
    d = daemons.start("rtpvault", tmp_path, num_threads=2)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.connect(("127.0.0.1", d.ng_port))
        sock.settimeout(TIMEOUT)
        port = sock.getsockname()[1]
        calls = {owner: owned_call_ids(owner, 1, f"udp{port}")[0] for owner in (0, 1)}
        replies: dict[int, list[bytes]] = {}
        for owner, call_id in calls.items():
            cookie = f"rt{owner}".encode()
            datagram = cookie + b" " + encode_ordered(offer(call_id))
            replies[owner] = []
            for _ in range(4):  # the request and three retransmissions
                sock.send(datagram)
                replies[owner].append(sock.recv(65535))
            first = decode(replies[owner][0], cookie)
            assert first["result"] == "ok", first
            assert replies[owner] == [replies[owner][0]] * 4
        mine = [h for h in handed(d) if h.source == ("127.0.0.1", port)]
        # every copy of the other worker's offer went through the hand-off, and nothing else
        [receiver] = {h.receiver for h in mine}
        other = 1 - receiver
        expected = [("offer", calls[other], other)] * 4
        assert [(h.command, h.call_id, h.owner) for h in mine] == expected
        # executed once each: two offers, six duplicates answered from the owners' caches
        control = statistics(d)["controlstatistics"]
        assert int(control["totaloffercount"]) == 2, control
        assert d.log().count("Detected command from 127.0.0.1 as a duplicate") == 6
        assert listed(d) == sorted(calls.values())
    finally:
        sock.close()
        assert d.stop() == 0


def tcp_exchange(sock: socket.socket, message: bytes) -> bytes:
    """One ng message over TCP and its reply (a complete bencode dictionary after the cookie)."""
    sock.sendall(message)
    data = b""
    cookie = message.split(b" ", 1)[0]
    while True:
        data += sock.recv(65535)
        try:
            bencodepy.decode(data[len(cookie) + 1 :])
        except bencodepy.BencodeDecodeError:
            continue
        return data


def test_tcp_ng_requests_for_both_workers_on_one_connection(tmp_path: Path) -> None:
    d = daemons.start("rtpvault", tmp_path, num_threads=2, tcp=True)
    assert d.tcp_ng_port is not None
    try:
        with socket.create_connection(("127.0.0.1", d.tcp_ng_port), timeout=TIMEOUT) as sock:
            port = sock.getsockname()[1]
            calls = {owner: owned_call_ids(owner, 1, f"tcp{port}")[0] for owner in (0, 1)}
            for owner, call_id in calls.items():
                cookie = f"tc{owner}".encode()
                message = cookie + b" " + encode_ordered(offer(call_id))
                first = tcp_exchange(sock, message)
                assert decode(first, cookie)["result"] == "ok", first
                assert tcp_exchange(sock, message) == first  # a resend: the cached reply
        mine = [h for h in handed(d) if h.source == ("127.0.0.1", port)]
        [receiver] = {h.receiver for h in mine}
        assert [(h.call_id, h.owner) for h in mine] == [(calls[1 - receiver], 1 - receiver)] * 2
        assert int(statistics(d)["controlstatistics"]["totaloffercount"]) == 2
        assert listed(d) == sorted(calls.values())
    finally:
        assert d.stop() == 0


def http_ng(port: int, body: bytes) -> tuple[bytes, int]:
    """POST /ng on a new connection: (reply body, the client's port)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.connect()
        assert conn.sock is not None
        client_port = int(conn.sock.getsockname()[1])
        conn.request("POST", "/ng", body, {"Content-Type": "application/x-rtpengine-ng"})
        response = conn.getresponse()
        assert response.status == 200
        return response.read(), client_port
    finally:
        conn.close()


def test_http_ng_requests_are_answered_by_the_owner(tmp_path: Path) -> None:
    http_port = free_port(socket.SOCK_STREAM)
    d = daemons.start("rtpvault", tmp_path, num_threads=2,
                      extra=[f"--listen-http=127.0.0.1:{http_port}"])  # fmt: skip
    try:
        # each request is a new connection, given to either worker: go on until both workers
        # have handed a request on (each attempt is a coin toss; 64 bound a broken hand-off)
        sent: dict[int, tuple[bytes, bytes]] = {}
        handed_by: set[int] = set()
        for n in range(64):
            owner = n % 2
            [call_id] = owned_call_ids(owner, 1, f"http{n}")
            cookie = f"ht{n}".encode()
            body = cookie + b" " + encode_ordered(offer(call_id))
            reply, client_port = http_ng(http_port, body)
            assert decode(reply, cookie)["result"] == "ok", reply
            sent[n] = (body, reply)
            handed_by |= {h.receiver for h in handed(d) if h.source[1] == client_port}
            if handed_by == {0, 1}:
                break
        assert handed_by == {0, 1}, d.log()[-3000:]
        # a resend of each (any worker gets it): the owner's cached reply, nothing executed
        for body, reply in sent.values():
            assert http_ng(http_port, body)[0] == reply
        assert int(statistics(d)["controlstatistics"]["totaloffercount"]) == len(sent)
        assert len(listed(d)) == len(sent)
    finally:
        assert d.stop() == 0


def test_calls_named_under_another_call_id_spelling_live_with_their_owner(tmp_path: Path) -> None:
    """`offer` reads the call-id under any spelling ("call ID", the last one counting), `query`
    under `call-id` alone: the hand-off must route by what the command reads, or a call is set
    up in a worker that does not own it and the next request cannot find it."""
    d = daemons.start("rtpvault", tmp_path, num_threads=2)
    client = d.client()
    try:
        calls = [owned_call_ids(owner, 1, f"spelt{owner}")[0] for owner in (0, 1)]
        for call_id in calls:  # one socket: one of the two reaches the non-owner
            body = offer(call_id)
            del body["call-id"]
            r = client.call({"call-id": "decoy@192.0.2.1", **body, "call ID": call_id})
            assert r["result"] == "ok", r
        for call_id in calls:
            r = client.call({"command": "query", "call-id": call_id})
            assert r["result"] == "ok", r
        assert listed(d) == sorted(calls)
    finally:
        client.close()
        assert d.stop() == 0
