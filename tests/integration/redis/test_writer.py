"""rtpvault.redis_writer against real Redis servers: only the newest document of a call is
written, and `redis-allowed-errors` pauses the writers as rtpengine (docs/spec/config.md
§2.10)."""

from __future__ import annotations

import logging
import socket

import pytest
import redis

from rtpvault.redis_writer import Health, Writer, call_key
from tests.support.tools import free_port
from tests.support.wait import wait_for


def test_newest_document_only(redis_db: tuple[int, redis.Redis]) -> None:
    _, client = redis_db
    writer = Writer(client, 60, 2, Health("127.0.0.1:6379", -1, 10, up=True))
    for n in range(5):
        writer.put("coalesced", b"doc %d" % n)
    writer.put("gone", b"x")
    writer.put("gone", None)
    assert writer.pending() == 2  # one per call, whatever came before the write
    writer.start()
    try:
        assert wait_for(lambda: writer.pending() == 0 and writer.writes + writer.deletes == 2, 10)
        assert client.get(call_key("coalesced")) == b"doc 4"
        assert client.exists(call_key("gone")) == 0
        assert (writer.writes, writer.deletes) == (1, 1)
    finally:
        assert writer.close(2.0) == 0


def test_allowed_errors_pause_the_writers(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port(socket.SOCK_STREAM)  # nothing listens
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5,
                         retry=None)  # fmt: skip
    health = Health(f"127.0.0.1:{port}", 1, 30, up=True)
    writer = Writer(client, 60, 1, health)
    caplog.set_level(logging.INFO, logger="rtpvault.redis_state")
    writer.put("c", b"doc")
    writer.start()
    try:
        assert wait_for(lambda: health.disabled == 1, 20)
        assert health.write_errors == 2  # more than 1 failure in a row, then the pause
        assert writer.pending() == 1  # kept for later
    finally:
        writer.close(0.5)
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count(f"Redis server 127.0.0.1:{port} disabled for 30 seconds") == 1
    assert sum(m.startswith(f"Lost connection to Redis 127.0.0.1:{port}") for m in lines) == 1
