"""The ng wire layer, byte for byte against the real rtpengine 10.5 (docs/spec/ng-protocol.md §1).

The same datagrams and TCP byte streams go to rtpengine and to an NgControlServer whose dispatch
knows only `ping`; every reply (or the absence of one) must be identical.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.control import NgControlServer
from relay.ng.errors import NgError
from tests.support.daemons import Daemon, start
from tests.unit.relay.ng.test_codec import JSON_CASES, LENIENCY
from tests.unit.relay.ng.test_codec_huge import HUGE, NINES, ZEROS

pytestmark = pytest.mark.integration

Address = tuple[str, int]


def ping_only(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
    if body["command"] == "ping":
        return {"result": "pong"}
    raise NgError("Unrecognized command")


class OurServer:
    """NgControlServer on loopback, its event loop in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = NgControlServer(ping_only)
        self._run(self.server.start_udp("127.0.0.1", 0))
        self._run(self.server.start_tcp("127.0.0.1", 0))
        self.udp: Address = self.server.udp_addresses()[0][:2]
        self.tcp: Address = self.server.tcp_addresses()[0][:2]

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


Targets = dict[str, tuple[Address, Address]]


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    daemon: Daemon = start("rtpengine", Path(tmp_path_factory.mktemp("rtpengine")), tcp=True)
    ours = OurServer()
    try:
        assert daemon.tcp_ng_port is not None
        yield {
            "rtpengine": (("127.0.0.1", daemon.ng_port), ("127.0.0.1", daemon.tcp_ng_port)),
            "rtpvault": (ours.udp, ours.tcp),
        }
    finally:
        ours.close()
        daemon.stop()


_sentinels = iter(range(1, 1_000_000))


def udp_exchange(addr: Address, datagrams: list[bytes], expect: int = 0) -> list[bytes]:
    """Send the datagrams, then a ping sentinel; the replies other than the sentinel's.

    Reading stops once the sentinel's reply and at least `expect` others have arrived, so "no
    reply" is observable without a waiting period. rtpengine answers from several threads, so
    a reply may overtake an earlier one: callers compare the replies as a sorted list.
    """
    sentinel = b"zz%d d6:result4:ponge" % next(_sentinels)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)  # a hang guard only, never reached when both sides agree
        sock.bind(("127.0.0.1", 0))
        for datagram in datagrams:
            sock.sendto(datagram, addr)
        sock.sendto(sentinel.replace(b"d6:result4:ponge", b"d7:command4:pinge"), addr)
        replies: list[bytes] = []
        seen_sentinel = False
        while not (seen_sentinel and len(replies) >= expect):
            reply = sock.recv(65535)
            if reply == sentinel:
                seen_sentinel = True
            else:
                replies.append(reply)
        return sorted(replies)


def both_udp(targets: Targets, datagrams: list[bytes]) -> list[bytes]:
    ours = udp_exchange(targets["rtpvault"][0], datagrams)  # one thread: replies come in order
    theirs = udp_exchange(targets["rtpengine"][0], datagrams, expect=len(ours))
    assert ours == theirs
    return ours


SPEC_ROWS = [
    b"ck1s d7:command4:pinge",
    b"d7:command4:pinge",
    b" d7:command4:pinge",
    b"ck17\td7:command4:pinge",
    b"",
    b"abc",
    b"ck1 ",
    b"ck2 garbage",
    b"ck16  d7:command4:pinge",
    b"ck4 l4:pinge",
    b"ck5 4:ping",
    b"ck14 [1,2]",
    b"ck6 de",
    b"ck9 d7:commandi5ee",
    b"ck8 d7:command5:boguse",
    b"ck10 d7:command4:PINGe",
    b"ck13 {\"command\":",
    b"ck11 {\"command\":\"ping\"}",
    b"ck12 {\"command\":\"bogus\"}",
    b"ck15 d7:command4:pinge trailing",
    b"ck3 d7:command4:ping",
    b"25:t7 d7:command4:pinge",
]


@pytest.mark.parametrize("datagram", SPEC_ROWS)
def test_malformed_input_rows(targets: Targets, datagram: bytes) -> None:
    both_udp(targets, [datagram])


@pytest.mark.parametrize(("index", "body"), list(enumerate(body for body, _ in LENIENCY)))
def test_bencode_leniency(targets: Targets, index: int, body: bytes) -> None:
    both_udp(targets, [b"len%d " % index + body])


@pytest.mark.parametrize(("index", "body"), list(enumerate(body for body, _ in JSON_CASES)))
def test_json_bodies(targets: Targets, index: int, body: bytes) -> None:
    both_udp(targets, [b"json%d " % index + body])


@pytest.mark.parametrize(("index", "body"), list(enumerate(body for body, _ in HUGE)))
def test_huge_numbers(targets: Targets, index: int, body: bytes) -> None:
    both_udp(targets, [b"huge%d " % index + body])


def test_retransmissions(targets: Targets) -> None:
    # The original is answered first: rtpengine's worker threads may otherwise run a
    # retransmission before the original, which is a race, not a rule.
    assert both_udp(targets, [b"dupA d7:command4:pinge"]) == [b"dupA d6:result4:ponge"]
    replies = both_udp(targets, [b"dupA d7:command4:liste", b'dupA {"command":"list"}'])
    assert replies == [b"dupA d6:result4:ponge"] * 2


def tcp_exchange(addr: Address, writes: list[bytes], *, sentinel: bool) -> bytes:
    """Everything the server sends back for `writes` (each its own send).

    With `sentinel`, a ping follows and reading stops at its reply; without, the client
    half-closes and reads to EOF (for streams the server never answers).
    """
    end = b"zt%d d6:result4:ponge" % next(_sentinels)
    with socket.create_connection(addr, timeout=10) as sock:
        for chunk in writes:
            sock.sendall(chunk)
        if sentinel:
            sock.sendall(end.replace(b"d6:result4:ponge", b"d7:command4:pinge"))
        else:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # already closed by the server
        got = b""
        while not (sentinel and got.endswith(end)):
            try:
                chunk = sock.recv(65535)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        return got[: -len(end)] if sentinel and got.endswith(end) else got


BIG = b"d7:command4:ping3:pad2000:" + b"x" * 2000 + b"e"
TCP_SCENARIOS = [
    ([b"t1 d7:command4:pinget2 d7:command4:pinge"], True),
    ([b"t3 d7:comm", b"and4:pinge"], True),
    ([b"t4 d7:command4:pinge\n", b"t5 d7:command4:pinge"], True),
    ([b"t8 l4:pinge"], True),
    ([b"t9 de"], True),
    ([b't6 {"command":"ping"}'], False),
    ([b"big1 " + BIG[:1500]], False),
    ([b"big2 " + BIG], True),
    ([b"huge1 d7:command4:ping1:xi" + NINES + b"ee"], True),
    ([b"huge2 d7:command4:ping1:x" + ZEROS + b"3:abce"], True),
    ([b"huge3 d7:command4:ping1:x" + NINES + b":abce"], False),  # waits, then > 1024: closed
    ([b"huge4 d" + NINES + b":abc7:command4:pinge"], False),
]


@pytest.mark.parametrize(("writes", "sentinel"), TCP_SCENARIOS)
def test_tcp_streams(targets: Targets, writes: list[bytes], sentinel: bool) -> None:
    theirs = tcp_exchange(targets["rtpengine"][1], writes, sentinel=sentinel)
    ours = tcp_exchange(targets["rtpvault"][1], writes, sentinel=sentinel)
    assert ours == theirs
