from __future__ import annotations

import errno
import os
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
    with pytest.raises(PortsExhausted) as caught:
        pool.allocate_pair()
    # rtpengine's log line (docs/spec/sdp.md §3): nothing was tried, so errno is still 0
    assert str(caught.value) == (
        "Failed to get 2 consecutive ports on interface 127.0.0.1 for media relay "
        "(last error: Success)"
    )


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


def _failing(code: int, calls: list[int]):  # type: ignore[no-untyped-def]
    def opener(address: str, port: int, family: int) -> FakeSock:
        calls.append(port)
        raise OSError(code, os.strerror(code))

    return opener


def test_out_of_descriptors_names_the_cause_and_stops_the_scan() -> None:
    """Issue 15 item 17: EMFILE (or an address not on the host) is the real cause of "Ran out of
    ports", and no other port number can cure it: one bind tried, not the whole range."""
    for code, text in ((errno.EMFILE, "Too many open files"),
                       (errno.EADDRNOTAVAIL, "Cannot assign requested address")):  # fmt: skip
        calls: list[int] = []
        pool = PortPool("192.0.2.7", socket.AF_INET, 43500, 43999, _failing(code, calls),
                        random.Random(1))  # fmt: skip
        with pytest.raises(PortsExhausted) as caught:
            pool.allocate_pair()
        assert str(caught.value) == (
            f"Failed to get 2 consecutive ports on interface 192.0.2.7 for media relay "
            f"(last error: {text})"
        )
        assert caught.value.last_error is not None and caught.value.last_error.errno == code
        assert len(calls) == 1


def test_ports_taken_by_others_are_all_tried_and_named() -> None:
    calls: list[int] = []
    pool = PortPool("127.0.0.1", socket.AF_INET, 43500, 43509, _failing(errno.EADDRINUSE, calls),
                    random.Random(1))  # fmt: skip
    with pytest.raises(PortsExhausted, match=r"\(last error: Address already in use\)$"):
        pool.allocate_pair()
    assert set(calls) == {43500, 43502, 43504, 43506, 43508}  # every pair tried
