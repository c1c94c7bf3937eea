from __future__ import annotations

import random
import socket

import pytest

from relay.ports import PortPool, PortsExhausted


class FakeSock:
    def __init__(self, port: int) -> None:
        self.port = port

    def close(self) -> None:
        pass


def fake_opener(taken: set[int] | None = None):  # type: ignore[no-untyped-def]
    taken = taken or set()

    def opener(address: str, port: int, family: int) -> FakeSock:
        if port in taken:
            raise OSError("in use")
        return FakeSock(port)

    return opener


def test_first_pair_is_port_min_and_pairs_are_even_rtcp_plus_one() -> None:
    pool = PortPool("127.0.0.1", socket.AF_INET, 43500, 43999, fake_opener(), random.Random(1))
    rtp, rtcp, port = pool.allocate_pair()
    assert port == 43500
    assert (rtp.port, rtcp.port) == (43500, 43501)  # type: ignore[attr-defined]
    for _ in range(50):
        _, _, p = pool.allocate_pair()
        assert p % 2 == 0 and 43500 <= p < 43999
    assert len(pool.used) == 102


def test_exhaustion_and_release_like_rtpengine() -> None:
    # docs/spec/sdp.md §3: 8 ports (43500-43507) hold exactly two offers of two pairs each.
    pool = PortPool("127.0.0.1", socket.AF_INET, 43500, 43507, fake_opener(), random.Random(2))
    ports = [pool.allocate_pair()[2] for _ in range(4)]
    assert sorted(ports) == [43500, 43502, 43504, 43506]
    with pytest.raises(PortsExhausted):
        pool.allocate_pair()
    pool.release(43502)
    pool.release(43503)
    assert pool.allocate_pair()[2] == 43502


def test_ports_taken_by_others_are_skipped() -> None:
    pool = PortPool(
        "127.0.0.1", socket.AF_INET, 43500, 43511, fake_opener({43500, 43503}), random.Random(3)
    )
    got = sorted(pool.allocate_pair()[2] for _ in range(4))
    assert got == [43504, 43506, 43508, 43510]


def test_real_sockets_are_bound_and_nonblocking() -> None:
    from tests.support.tools import free_port_range

    lo, hi = free_port_range(10)
    pool = PortPool("127.0.0.1", socket.AF_INET, lo, hi)
    rtp, rtcp, port = pool.allocate_pair()
    try:
        assert rtp.getsockname() == ("127.0.0.1", port)
        assert rtcp.getsockname() == ("127.0.0.1", port + 1)
        assert rtp.getblocking() is False
    finally:
        rtp.close()
        rtcp.close()


def test_single_port_for_rtcp_mux_require_leaves_the_next_port_free() -> None:
    pool = PortPool("127.0.0.1", socket.AF_INET, 43500, 43503, fake_opener(), random.Random(4))
    sock, port = pool.allocate_one()
    assert (port, sock.port) == (43500, 43500)  # type: ignore[attr-defined]
    assert pool.used == {43500} and pool.last == 43500
    assert pool.allocate_pair()[2] == 43502  # the scan still starts pairs at even ports
    with pytest.raises(PortsExhausted, match="no 2 consecutive"):
        pool.allocate_pair()


def test_preferred_port_is_taken_again_when_free() -> None:
    pool = PortPool("127.0.0.1", socket.AF_INET, 43500, 43999, fake_opener(), random.Random(1))
    _, _, first = pool.allocate_pair()
    _, _, second = pool.allocate_pair(prefer=43700)
    assert second == 43700 and {43700, 43701} <= pool.used
    # in use already: an ordinary scan
    _, _, third = pool.allocate_pair(prefer=first)
    assert third not in (first, 43700)
    # out of range or unbindable: an ordinary scan too
    _, _, fourth = pool.allocate_pair(prefer=44000)
    assert 43500 <= fourth < 43999
    blocked = PortPool(
        "127.0.0.1", socket.AF_INET, 43500, 43999, fake_opener({43800}), random.Random(1)
    )
    _, _, p = blocked.allocate_pair(prefer=43800)
    assert p != 43800
