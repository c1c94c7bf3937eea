"""Which streams the nftables plane may take (relay.media.kernel.desired) and what it writes."""

from __future__ import annotations

import itertools
import socket

import pytest

from relay.media.kernel import _elements, desired
from relay.media.ruleset import (
    MARK_BASE,
    MAX_WORKERS,
    WORKER_MASK,
    shared_ruleset,
    single_marks,
    worker_marks,
)
from relay.media.stream import Stream
from relay.media.transcoder import Ledger, Transcoder
from relay.transcode.plan import Codec, DirectionPlan


def _transcoder() -> Transcoder:
    """A PCMU → PCMA direction with relay.transcode's chain."""
    from relay.transcode.chain import Chain

    plan = DirectionPlan({0: Codec("PCMU", 8000)}, {8: Codec("PCMA", 8000)}, encode_pt=8)
    return Transcoder(Chain(plan, 1), plan, Ledger())


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
        lambda a, b: setattr(a, "transcoder", _transcoder()),  # the codec chain is userspace's
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


@pytest.mark.parametrize("secure_side", ["stream", "sink"])
def test_a_secure_leg_keeps_its_whole_pair_in_userspace(secure_side: str) -> None:
    """SRTP/DTLS/ICE on either leg: neither direction may be offloaded (issue 17 item 6)."""
    from relay.media.secure import attach_ice, attach_sdes, detach
    from relay.srtp import open_context, suite

    a, b = pair()
    b.confirmed = True
    assert desired(a) is not None and desired(b) is not None  # a plain pair is offloaded
    s = suite("AES_CM_128_HMAC_SHA1_80")
    key = bytes(s.inline_len)
    secure = a if secure_side == "stream" else b
    attach_sdes(secure, open_context(s, key, outbound=False), open_context(s, key, outbound=True))
    assert desired(a) is None and desired(b) is None
    detach(secure)
    assert desired(a) is not None and desired(b) is not None
    from relay.ice import IceAgent, LocalSocket

    agent = IceAgent(ufrag="u", pwd="p" * 22, sockets=[LocalSocket(1, ("10.0.0.1", 30000), 1, 1)],
                     controlling=False, tie_breaker=1)  # fmt: skip
    attach_ice(secure, agent, 1)  # ICE alone (plain RTP with ICE) stays in userspace too
    assert desired(a) is None and desired(b) is None
    a.sock.close()
    b.sock.close()


def test_worker_mark_ranges_are_disjoint_and_fit_the_32_bit_mark() -> None:
    """Issue 18: workers share one table; each sets only marks of its own range."""
    ranges = [worker_marks(i, MAX_WORKERS) for i in range(MAX_WORKERS)]
    assert MAX_WORKERS == 2080
    assert ranges[0].start == MARK_BASE + 1 and ranges[-1][-1] == 2**32 - 1
    for low, high in itertools.pairwise(ranges):
        assert low[-1] < high.start
    assert all(len(r) == (1 << 20) - 1 for r in ranges)
    assert MARK_BASE not in ranges[0] and single_marks().start == MARK_BASE + 1
    # after routing, a mark's high bits pick its worker's chain
    assert {m & WORKER_MASK for r in ranges[:3] for m in (r[0], r[-1])} == {
        MARK_BASE, MARK_BASE + (1 << 20), MARK_BASE + (2 << 20)
    }


def test_a_worker_writes_only_its_own_maps() -> None:
    key = ("192.0.2.1", 4000, "10.0.0.1", 30000, "198.51.100.7", 5000, "10.0.0.1", 30002)
    assert _elements(7, key, "_3") == [
        "streams_3 { 192.0.2.1 . 4000 . 10.0.0.1 . 30000 : 7 }",
        "daddr_3 { 7 : 198.51.100.7 }",
        "dport_3 { 7 : 5000 }",
        "saddr_3 { 7 : 10.0.0.1 }",
        "sport_3 { 7 : 30002 }",
        "sent_3 { 7 }",
    ]
    table = shared_ruleset("rtpvault", 2)
    assert "map @streams_0 notrack ip daddr set meta mark map @daddr_0" in table
    assert "vmap { 0x7e000000 : jump out_0, 0x7e100000 : jump out_1 }" in table


@pytest.mark.parametrize("index, count", [(2, 2), (-1, 2), (0, 0), (0, MAX_WORKERS + 1)])
def test_a_worker_outside_its_count_has_no_marks(index: int, count: int) -> None:
    with pytest.raises(ValueError):
        worker_marks(index, count)
