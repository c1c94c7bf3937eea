"""The hand-off of an ng request to the worker that owns its call (rtpvault.shard over
rtpvault.peers), both workers' sides in this process over the supervisor's real socketpairs:
the request is decoded once, the owner answers and caches it, a retransmission handed on the
same way gets the cached reply, and the inbox reads without a message-sized allocation each."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any, cast

import pytest

import relay.control
from relay.control import NgControlServer, ReplyPath
from relay.ng.codec import NgRequest, parse_body
from relay.ng.commands import Commands
from rtpvault.peers import Channels, Peers
from rtpvault.shard import Shard, owner_of
from tests.support.ng import encode_ordered

SOURCE = ("127.0.0.1", 40000)


def _answer(body: dict[str, Any], source: tuple[str, int]) -> dict[str, Any]:
    """The owner's command: echoes which call it answered."""
    return {"answered": body["call-id"]}


class _Side:
    def __init__(self, channels: Channels, index: int) -> None:
        self.control = NgControlServer(_answer)
        self.peers = Peers(channels, index)
        # Shard only reads Commands.WIDE / wide_ok for a call's command: the class itself
        self.shard = Shard(self.peers, self.control, cast(Commands, Commands))


@pytest.fixture
def sides() -> Iterator[tuple[_Side, _Side]]:
    channels = Channels(2)
    try:
        yield _Side(channels, 0), _Side(channels, 1)
    finally:
        channels.close()


def _owned_by(owner: int) -> str:
    return next(c for i in range(100) if owner_of(c := f"call-{i}", 2) == owner)


def _offer(cookie: bytes, call_id: str) -> bytes:
    return cookie + b" " + encode_ordered({"command": "offer", "call-id": call_id, "sdp": "v=0"})


def _hand(receiver: _Side, datagram: bytes) -> None:
    path = ReplyPath(0, lambda reply: None)  # UDP listener 0: the owner replies from its own
    assert receiver.control.handle_deferring(datagram, SOURCE, path) is None
    receiver.control.run_deferred()


def test_a_handed_request_is_decoded_once_and_answered_and_cached_by_the_owner(
    sides: tuple[_Side, _Side], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver, owner = sides
    decoded: list[bytes] = []

    def counting_parse(cookie: bytes, data: bytes) -> NgRequest:
        decoded.append(cookie)
        return parse_body(cookie, data)

    monkeypatch.setattr(relay.control, "parse_body", counting_parse)
    call_id = _owned_by(1)
    _hand(receiver, _offer(b"c1", call_id))
    owner.peers._receive()

    assert receiver.shard.handed == 1
    assert owner.control.counters.commands == {"offer": 1}
    assert receiver.control.counters.commands == {}
    assert decoded == [b"c1"]  # by the receiver only: the owner got the decoded body
    cached = owner.control.cookies.lookup("127.0.0.1", b"c1", relay.control.time.monotonic())
    assert cached is not None and call_id.encode() in cached


def test_a_retransmission_handed_on_gets_the_owners_cached_reply(
    sides: tuple[_Side, _Side],
) -> None:
    receiver, owner = sides
    datagram = _offer(b"c2", _owned_by(1))
    _hand(receiver, datagram)
    owner.peers._receive()
    _hand(receiver, datagram)
    owner.peers._receive()
    assert owner.control.counters.commands == {"offer": 1}
    assert owner.control.counters.duplicates == 1


def test_the_inbox_reads_small_messages_without_a_message_sized_allocation(
    sides: tuple[_Side, _Side],
) -> None:
    receiver, owner = sides
    _hand(receiver, _offer(b"c3", _owned_by(1)))
    tracemalloc.start()
    try:
        owner.peers._receive()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert owner.control.counters.commands == {"offer": 1}
    assert peak < 256 << 10, f"{peak} bytes allocated to read one small message"
