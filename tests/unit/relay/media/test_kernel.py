"""Which streams the nftables plane may take (relay.media.kernel.desired) and what it writes."""

from __future__ import annotations

import socket

import pytest

from relay.media.kernel import _elements, desired
from relay.media.stream import Stream


def pair() -> tuple[Stream, Stream]:
    a = Stream(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), "10.0.0.1", 30000)
    b = Stream(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), "10.0.0.1", 30002)
    a.sink, b.sink = b, a
    a.peer, b.peer = ("192.0.2.1", 4000), ("198.51.100.7", 5000)
    a.confirmed = True
    return a, b


def test_an_established_stream_is_keyed_by_peer_and_local_port() -> None:
    a, b = pair()
    assert desired(a) == ("192.0.2.1", 4000, "10.0.0.1", 30000, "198.51.100.7", 5000,
                          "10.0.0.1", 30002)  # fmt: skip
    assert desired(b) is None  # not confirmed yet: learning is userspace's
    a.sock.close()
    b.sock.close()


@pytest.mark.parametrize(
    "change",
    [
        lambda a, b: setattr(a, "tap", lambda *x: None),  # recorded / HEP window
        lambda a, b: setattr(a, "media_handover", True),
        lambda a, b: setattr(b, "send_blocked", True),  # other party on hold, zero address
        lambda a, b: setattr(b, "peer", None),
        lambda a, b: setattr(a, "sink", None),
        lambda a, b: setattr(a, "peer", ("2001:db8::1", 4000)),
        lambda a, b: setattr(b, "peer", ("0.0.0.0", 5000)),
        lambda a, b: setattr(a, "local_port", 0),  # rejected m= line
    ],
)
def test_anything_userspace_must_see_stays_in_userspace(change) -> None:  # type: ignore[no-untyped-def]
    a, b = pair()
    change(a, b)
    assert desired(a) is None
    a.sock.close()
    b.sock.close()


def test_elements_for_one_mark() -> None:
    key = ("192.0.2.1", 4000, "10.0.0.1", 30000, "198.51.100.7", 5000, "10.0.0.1", 30002)
    assert _elements(7, key) == [
        "streams { 192.0.2.1 . 4000 . 10.0.0.1 . 30000 : 7 }",
        "daddr { 7 : 198.51.100.7 }",
        "dport { 7 : 5000 }",
        "saddr { 7 : 10.0.0.1 }",
        "sport { 7 : 30002 }",
        "sent { 7 }",
    ]
