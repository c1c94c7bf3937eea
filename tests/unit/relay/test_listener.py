"""relay.listener: TCP listeners that survive the open-files limit (issue 15 item 7), and the
rate-limited log (relay.ratelog). Real sockets and a real, lowered RLIMIT_NOFILE."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from relay.control import NgControlServer
from relay.listener import RETRY_DELAY, listen_tcp, stream_protocol
from relay.ng.errors import NgError
from relay.ratelog import RateLimitedLog


def ping_only(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
    if body["command"] == "ping":
        return {"result": "pong"}
    raise NgError("Unrecognized command")


@contextmanager
def descriptors_exhausted() -> Iterator[None]:
    """Every descriptor below a lowered soft RLIMIT_NOFILE taken: the next accept() is EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    fillers: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 4, hard))
    try:
        while True:
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


Start = Callable[[], Awaitable[tuple[tuple[str, int], Callable[[], None]]]]


async def _ng_tcp() -> tuple[tuple[str, int], Callable[[], None]]:
    server = NgControlServer(ping_only)
    await server.start_tcp("127.0.0.1", 0)
    return server.tcp_addresses()[0][:2], server.close


async def _stream_echo() -> tuple[tuple[str, int], Callable[[], None]]:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(b"c1 d6:result4:ponge" if line.startswith(b"c1 ") else b"?")
        await writer.drain()
        writer.close()

    listener = await listen_tcp("127.0.0.1", 0, stream_protocol(client), "CLI")
    return listener.sockets[0].getsockname()[:2], listener.close


async def _pending_connection_waits_out_the_limit(start: Start) -> tuple[int, float, bytes]:
    loop = asyncio.get_running_loop()
    failures = {"n": 0}
    loop.set_exception_handler(lambda _loop, _ctx: failures.__setitem__("n", failures["n"] + 1))
    address, close = await start()
    client = socket.create_connection(address, timeout=10)  # queued in the kernel's backlog
    client.setblocking(False)
    try:
        with descriptors_exhausted():
            began = time.monotonic()
            await asyncio.sleep(2.5)  # accept() fails throughout; count what gets logged
            elapsed = time.monotonic() - began
        await loop.sock_sendall(client, b"c1 d7:command4:pinge\n")
        reply = await asyncio.wait_for(loop.sock_recv(client, 100), 10)  # hang guard only
    finally:
        client.close()
        close()
    return failures["n"], elapsed, reply


@pytest.mark.parametrize("start", [_ng_tcp, _stream_echo], ids=["ng-tcp", "stream"])
def test_out_of_descriptors_pauses_logs_once_a_second_and_recovers(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handler_calls, elapsed, reply = asyncio.run(_pending_connection_waits_out_the_limit(start))
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert handler_calls == 0  # asyncio's "socket.accept() out of system resource" never ran
    assert lines, "the failed accept is logged"
    assert all("cannot accept a connection" in r.getMessage() for r in lines)
    assert "127.0.0.1:" in lines[0].getMessage() and "Too many open files" in lines[0].getMessage()
    assert len(lines) <= elapsed / RETRY_DELAY + 1
    assert reply == b"c1 d6:result4:ponge"  # the waiting connection was served afterwards


def test_rate_limited_log_counts_what_it_leaves_out(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    limited = RateLimitedLog(logging.getLogger("t"), clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="t")
    assert limited.log("k", "refused from %s", "10.0.0.1")
    assert not limited.log("k", "refused from %s", "10.0.0.2")
    assert not limited.log("k", "refused from %s", "10.0.0.3")
    assert limited.log("other", "other kind")
    now[0] += 1.0
    assert limited.log("k", "refused from %s", "10.0.0.4")
    assert [r.getMessage() for r in caplog.records] == [
        "refused from 10.0.0.1",
        "other kind",
        "refused from 10.0.0.4 (2 more like this in the last 1 s not logged)",
    ]


def test_bind_failure_names_the_address() -> None:
    async def scenario() -> str:
        first = await listen_tcp("127.0.0.1", 0, stream_protocol(_never), "CLI")
        port = first.sockets[0].getsockname()[1]
        try:
            await listen_tcp("127.0.0.1", port, stream_protocol(_never), "CLI")
        except OSError as exc:
            return f"{exc.strerror}"
        finally:
            first.close()
        return "bound twice"

    assert asyncio.run(scenario()).endswith(": address already in use")
    assert asyncio.run(scenario()).startswith("CLI on 127.0.0.1:")


async def _never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def test_a_connection_open_at_shutdown_ends_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # an idle client (no request yet) when the loop stops: asyncio.run cancels its handler
    async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async def main() -> None:
        server = await listen_tcp("127.0.0.1", 0, stream_protocol(idle), "HTTP")
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)  # the server has accepted and its handler waits
        writer.close()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
