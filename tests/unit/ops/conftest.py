"""A real rtpvault Daemon (userspace plane on loopback, no listeners started) for the ops units,
and logging restored after each test (setup_logging changes the process's root logger)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import bencode
import pytest

from relay.config import load_settings, parse_args
from rtpvault.daemon import Daemon
from tests.integration.recording.media import sdp
from tests.support.tools import free_port_range

SOURCE = ("127.0.0.1", 5060)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {n: logging.getLogger(n).level for n in ("relay.control", "relay.ng", "relay.sdp",
                                                      "rtpvault.ctl", "rtpvault.http",
                                                      "rtpvault.rtcp")}  # fmt: skip
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    for n, lv in named.items():
        logging.getLogger(n).setLevel(lv)
    rtcp = logging.getLogger("rtpvault.rtcp")
    for h in list(rtcp.handlers):
        rtcp.removeHandler(h)
    rtcp.propagate = True


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    pmin, pmax = free_port_range(100)
    settings, _ = load_settings(parse_args([
        "--config-file=none", "--interface=lo/127.0.0.1", "--listen-ng=127.0.0.1:1",
        f"--port-min={pmin}", f"--port-max={pmax}", "--table=-1", "--delete-delay=0",
    ]))  # fmt: skip
    loop = asyncio.new_event_loop()
    d = Daemon(settings, loop)
    yield d
    d.shutdown()
    loop.close()


def ng(d: Daemon, message: dict[str, Any], source: tuple[str, int] = SOURCE) -> Any:
    """One ng request through the daemon's control server (counters, observers, codec)."""
    cookie = f"c{next(_COOKIES)} ".encode()  # a new cookie: a repeated one gets the cached reply
    reply = d.control.handle(cookie + bencode.encode(message), source)
    assert reply is not None and reply.startswith(cookie)
    return dict(bencode.decode(reply[len(cookie) :]))


_COOKIES = itertools.count()


def offer(d: Daemon, call_id: str, port: int = 40000, source: tuple[str, int] = SOURCE) -> Any:
    return ng(d, {"command": "offer", "call-id": call_id, "from-tag": "ft",
                  "sdp": sdp(port, 1, "alice")}, source)  # fmt: skip


def answer(d: Daemon, call_id: str, port: int = 40100) -> Any:
    return ng(d, {"command": "answer", "call-id": call_id, "from-tag": "ft", "to-tag": "tt",
                  "sdp": sdp(port, 2)})  # fmt: skip
