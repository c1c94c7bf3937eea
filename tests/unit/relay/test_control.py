"""relay.control: the shared request path with exact bytes, and real loopback sockets."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.control import NgControlServer
from relay.ng.errors import NgError

SOURCE = ("127.0.0.1", 40000)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ping_only(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
    """rtpengine with nothing but ping: enough to compare wire behaviour."""
    if body["command"] == "ping":
        return {"result": "pong"}
    raise NgError("Unrecognized command")


def err(cookie: bytes, reason: bytes) -> bytes:
    return cookie + b" d6:result5:error12:error-reason%d:%se" % (len(reason), reason)


SPEC_ROWS: list[tuple[bytes, bytes | None]] = [
    (b"5323_1 d7:command4:pinge", b"5323_1 d6:result4:ponge"),
    (b"ck15 d7:command4:pinge trailing", b"ck15 d6:result4:ponge"),
    (b"ck3 d7:command4:ping", b"ck3 d6:result4:ponge"),
    (b"d7:command4:pinge", None),
    (b" d7:command4:pinge", None),
    (b"ck17\td7:command4:pinge", None),
    (b"", None),
    (b"abc", None),
    (b"ck1 ", err(b"ck1", b"Invalid data (no payload)")),
    (b"ck2 garbage", err(b"ck2", b"Invalid NG data format")),
    (b"ck16  d7:command4:pinge", err(b"ck16", b"Invalid NG data format")),
    (b"ck4 l4:pinge", err(b"ck4", b"Invalid NG data format")),
    (b"ck5 4:ping", err(b"ck5", b"Invalid NG data format")),
    (b"ck14 [1,2]", err(b"ck14", b"Invalid NG data format")),
    (b"ck6 de", err(b"ck6", b'Dictionary contains no key "command"')),
    (b"ck9 d7:commandi5ee", err(b"ck9", b'Dictionary contains no key "command"')),
    (b"ck8 d7:command5:boguse", err(b"ck8", b"Unrecognized command")),
    (b"ck10 d7:command4:PINGe", err(b"ck10", b"Unrecognized command")),
    (b"ck20 d7:command4:ping1:ae", err(b"ck20", b"Could not decode bencode dictionary")),
    (b'ck11 {"command":"ping"}', b'ck11 {"result":"pong"}'),
    (
        b'ck12 {"command":"bogus"}',
        b'ck12 {"result":"error","error-reason":"Unrecognized command"}',
    ),
    (
        b'ck13 {"command":',
        b'ck13 {"result":"error","error-reason":"Failed to parse JSON document"}',
    ),
    (
        b'ck19 {"command":5}',
        b'ck19 {"result":"error","error-reason":"Dictionary contains no key \\"command\\""}',
    ),
]


@pytest.mark.parametrize(("request_bytes", "reply"), SPEC_ROWS)
def test_spec_rows(request_bytes: bytes, reply: bytes | None) -> None:
    server = NgControlServer(ping_only, clock=Clock())
    assert server.handle(request_bytes, SOURCE) == reply


def test_retransmission_gets_stored_bytes_without_executing() -> None:
    calls: list[str] = []

    def counting(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        calls.append(body["command"])
        return ping_only(body, source)

    server = NgControlServer(counting, clock=Clock())
    pong = b"dupA d6:result4:ponge"
    assert server.handle(b"dupA d7:command4:pinge", SOURCE) == pong
    assert server.handle(b"dupA d7:command4:liste", SOURCE) == pong
    assert server.handle(b'dupA {"command":"list"}', SOURCE) == pong
    assert server.handle(b"dupA garbage", SOURCE) == pong
    assert calls == ["ping"]
    assert server.counters.duplicates == 3


def test_same_cookie_from_another_proxy_is_executed() -> None:
    server = NgControlServer(ping_only, clock=Clock())
    assert server.handle(b"0_1_1 d7:command4:pinge", ("127.0.0.1", 5060)) == (
        b"0_1_1 d6:result4:ponge"
    )
    assert server.handle(b"0_1_1 d7:command4:liste", ("127.0.0.2", 5060)) == (
        err(b"0_1_1", b"Unrecognized command")
    )
    # the same host retransmitting from another port is still a retransmission
    assert server.handle(b"0_1_1 d7:command4:liste", ("127.0.0.1", 5061)) == (
        b"0_1_1 d6:result4:ponge"
    )


def test_cache_expires_with_injected_clock() -> None:
    clock = Clock()
    server = NgControlServer(ping_only, clock=clock)
    server.handle(b"c1 d7:command4:pinge", SOURCE)
    clock.now += 35
    assert server.handle(b"c1 d7:command4:liste", SOURCE) == b"c1 d6:result4:ponge"
    clock.now += 30
    assert server.handle(b"c1 d7:command4:liste", SOURCE) == err(b"c1", b"Unrecognized command")


def test_empty_payload_is_answered_before_the_cache_and_replaces_it() -> None:
    # rtpengine checks for a payload before the cache lookup, then caches that error too.
    server = NgControlServer(ping_only, clock=Clock())
    server.handle(b"c2 d7:command4:pinge", SOURCE)
    no_payload = err(b"c2", b"Invalid data (no payload)")
    assert server.handle(b"c2 ", SOURCE) == no_payload
    assert server.handle(b"c2 d7:command4:pinge", SOURCE) == no_payload


def test_result_ok_is_appended_last() -> None:
    def offer(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return {"sdp": "v=0\r\n"}

    server = NgControlServer(offer, clock=Clock())
    assert server.handle(b"o1 d7:command5:offere", SOURCE) == b"o1 d3:sdp5:v=0\r\n6:result2:oke"
    assert server.handle(b'o2 {"command":"offer"}', SOURCE) == (
        b'o2 {"sdp":"v=0\\r\\n","result":"ok"}'
    )


def test_handler_bug_becomes_an_error_reply(caplog: pytest.LogCaptureFixture) -> None:
    def broken(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        return {"x": body["missing"]}

    server = NgControlServer(broken, clock=Clock())
    with caplog.at_level(logging.ERROR, logger="relay.control"):
        reply = server.handle(b"b1 d7:command5:offere", SOURCE)
    assert reply == err(b"b1", b"Internal error: KeyError")
    assert "Traceback" in caplog.text and "KeyError" in caplog.text
    assert server.counters.internal_errors == 1


def test_unencodable_reply_becomes_an_error_reply() -> None:
    server = NgControlServer(lambda body, source: {"x": 1.5}, clock=Clock())
    reply = server.handle(b"f1 d7:command5:offere", SOURCE)
    assert reply == err(b"f1", b"Internal error: BencodeError")


def test_counters_per_command_and_proxy() -> None:
    server = NgControlServer(ping_only, clock=Clock())
    server.handle(b"a d7:command4:pinge", ("127.0.0.1", 1))
    server.handle(b"b d7:command4:pinge", ("127.0.0.2", 1))
    server.handle(b"c d7:command5:boguse", ("127.0.0.2", 1))
    server.handle(b"d garbage", ("127.0.0.2", 1))
    assert server.counters.commands == {"ping": 2}
    assert server.counters.errors == 2
    assert server.counters.proxies["127.0.0.1"].commands == {"ping": 1}
    assert server.counters.proxies["127.0.0.2"].errors == 2


def test_allow_list_drops_silently_and_counts() -> None:
    allow = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    server = NgControlServer(ping_only, allow=allow, clock=Clock())
    assert server.handle(b"a d7:command4:pinge", ("192.0.2.1", 5060)) is None
    assert server.handle(b"a d7:command4:pinge", ("::ffff:127.0.0.1", 5060)) is not None
    assert server.handle(b"a d7:command4:pinge", ("::1", 5060)) is not None
    assert server.counters.denied == 1


@settings(max_examples=300)
@given(st.binary(max_size=120), st.sampled_from([b"", b"c ", b"c d", b"c {"]))
def test_server_never_raises(data: bytes, prefix: bytes) -> None:
    server = NgControlServer(ping_only, clock=Clock())
    reply = server.handle(prefix + data, SOURCE)
    assert reply is None or reply.startswith((prefix + data).split(b" ", 1)[0] + b" ")


# --- real sockets -------------------------------------------------------------------------


async def _udp_exchange(server: NgControlServer, host: str, datagrams: list[bytes]) -> list[bytes]:
    await server.start_udp(host, 0)
    addr = server.udp_addresses()[0]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    loop = asyncio.get_running_loop()
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, _addr: Any) -> None:
            replies.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Client, family=family, remote_addr=addr[:2])
    try:
        for datagram in datagrams:
            transport.sendto(datagram)
        # the last datagram is always answered, and UDP on loopback keeps order
        got = [await asyncio.wait_for(replies.get(), 5)]
        while got[-1].split(b" ", 1)[0] != datagrams[-1].split(b" ", 1)[0]:
            got.append(await asyncio.wait_for(replies.get(), 5))
        return got
    finally:
        transport.close()
        server.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_udp_socket_ping(host: str) -> None:
    server = NgControlServer(ping_only)
    got = asyncio.run(
        _udp_exchange(
            server, host, [b"no-cookie", b"5323_1 d7:command4:pinge", b'j {"command":"ping"}']
        )
    )
    # "no-cookie" gets no reply, so the first reply is the ping's
    assert got == [b"5323_1 d6:result4:ponge", b'j {"result":"pong"}']


async def _tcp_exchange(server: NgControlServer, host: str, writes: list[bytes]) -> bytes:
    await server.start_tcp(host, 0)
    addr = server.tcp_addresses()[0]
    reader, writer = await asyncio.open_connection(addr[0], addr[1])
    try:
        for chunk in writes:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.05)  # separate reads on the server, like separate writes
        if not writer.is_closing() and not reader.at_eof():
            try:
                writer.write_eof()
            except OSError:  # the server closed first (overflow)
                pass
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        server.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_tcp_socket_framing(host: str) -> None:
    server = NgControlServer(ping_only)
    writes = [
        b"t1 d7:command4:pinget2 d7:command4:pinge",
        b"t3 d7:comm",
        b"and4:pinge",
        b"t8 l4:pinge",
    ]
    got = asyncio.run(_tcp_exchange(server, host, writes))
    assert got == (
        b"t1 d6:result4:ponget2 d6:result4:ponge"
        b"t3 d6:result4:ponge"
        b"t8 d6:result5:error12:error-reason22:Invalid NG data formate"
    )


def test_tcp_overflow_closes_without_reply() -> None:
    server = NgControlServer(ping_only)
    message = b"big d7:command4:ping3:pad2000:" + b"x" * 2000 + b"e"
    # the rest of the message is never needed: 1500 unfinished bytes close the connection
    got = asyncio.run(_tcp_exchange(server, "127.0.0.1", [message[:1500]]))
    assert got == b""
    assert server.counters.tcp_overflows == 1


def test_tcp_large_message_in_one_write_is_answered() -> None:
    server = NgControlServer(ping_only)
    message = b"big d7:command4:ping3:pad2000:" + b"x" * 2000 + b"e"
    assert asyncio.run(_tcp_exchange(server, "127.0.0.1", [message])) == b"big d6:result4:ponge"


# --- work deferred until the reply is sent -------------------------------------------------


def _deferring_server(events: list[str]) -> NgControlServer:
    server: NgControlServer

    def dispatch(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
        server.defer(lambda: events.append(f"after {body['command']}"))
        if body["command"] == "fail":
            raise NgError("Unrecognized command")
        events.append(f"handled {body['command']}")
        return {"result": "pong"}

    server = NgControlServer(dispatch, clock=Clock())
    return server


def test_deferred_work_waits_for_run_deferred() -> None:
    events: list[str] = []
    server = _deferring_server(events)
    assert server.handle_deferring(b"d1 d7:command4:pinge", SOURCE) == b"d1 d6:result4:ponge"
    assert events == ["handled ping"]
    server.run_deferred()
    assert events == ["handled ping", "after ping"]
    server.run_deferred()  # runs once only
    assert events == ["handled ping", "after ping"]


def test_handle_runs_deferred_work_itself_even_after_an_error_reply() -> None:
    events: list[str] = []
    server = _deferring_server(events)
    server.handle(b"d2 d7:command4:faile", SOURCE)
    assert events == ["after fail"]


def test_defer_outside_a_request_runs_at_once() -> None:
    events: list[str] = []
    server = _deferring_server(events)
    server.defer(lambda: events.append("now"))
    assert events == ["now"]


def test_next_request_first_runs_what_the_last_one_left(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    server = _deferring_server(events)
    server.handle_deferring(b"d3 d7:command4:pinge", SOURCE)

    def boom() -> None:
        raise RuntimeError("cleanup bug")

    server.defer(boom)
    server.handle_deferring(b"d4 d7:command4:pinge", SOURCE)
    assert events == ["handled ping", "after ping", "handled ping"]
    assert "Deferred work after an ng reply failed" in caplog.text


def test_udp_reply_is_sent_before_deferred_work_runs() -> None:
    async def scenario() -> list[str]:
        events: list[str] = []
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)

        def reply_waiting() -> bool:
            try:
                return bool(client.recv(2048, socket.MSG_PEEK))
            except BlockingIOError:
                return False

        def dispatch(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
            server.defer(lambda: events.append(f"reply already sent: {reply_waiting()}"))
            return {"result": "pong"}

        server = NgControlServer(dispatch, clock=Clock())
        await server.start_udp("127.0.0.1", 0)
        port = server.udp_addresses()[0][1]
        loop = asyncio.get_running_loop()
        try:
            client.sendto(b"d5 d7:command4:pinge", ("127.0.0.1", port))
            reply = await asyncio.wait_for(loop.sock_recv(client, 2048), 5)
            assert reply == b"d5 d6:result4:ponge"
        finally:
            client.close()
            server.close()
        return events

    assert asyncio.run(scenario()) == ["reply already sent: True"]


def test_a_reply_for_a_listener_still_opening_leaves_once_it_is_open() -> None:
    """A worker still starting answers a request handed over by one already serving
    (rtpvault.shard): the reply waits for its `listen-ng` socket instead of being lost."""
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    port = client.getsockname()[1]

    async def scenario() -> tuple[bytes, Any]:
        server = NgControlServer(ping_only)
        server.send_udp(0, b"c1 d6:result2:oke", ("127.0.0.1", port))
        server.send_udp(-1, b"never", ("127.0.0.1", port))  # a stream's path: not UDP
        await server.start_udp("127.0.0.1", 0)
        try:
            data, sender = await asyncio.get_running_loop().run_in_executor(
                None, client.recvfrom, 100)
            return data, sender
        finally:
            server.close()

    try:
        data, sender = asyncio.run(scenario())
    finally:
        client.close()
    assert data == b"c1 d6:result2:oke" and sender[0] == "127.0.0.1"
