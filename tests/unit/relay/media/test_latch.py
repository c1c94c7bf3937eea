"""relay.media.latch: every learning mode of docs/spec/sdp.md §4, plus our drop-after-latching."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from relay.media.latch import Decision, Why, apply, decide
from relay.media.stream import (
    LEARN_DELAYED,
    LEARN_HEURISTIC,
    LEARN_IMMEDIATE,
    LEARN_OFF,
    Address,
    Stream,
)

A: Address = ("127.0.0.1", 42314)  # the SDP endpoint
A2: Address = ("127.0.0.1", 42316)  # same address, other port
OTHER_HOST: Address = ("127.0.0.2", 42314)  # same port, other address
FAR: Address = ("127.0.0.3", 5000)  # both different
SIGNAL = 100.0
WINDOW_END = SIGNAL + 3  # learn_until as the call model sets it
IN = SIGNAL + 1  # inside the learning window
AFTER = WINDOW_END + 1  # after it


Make = Callable[[], Stream]


@pytest.fixture
def make() -> Iterator[Make]:
    """Streams that are filled, with A as SDP endpoint and peer, signalled at SIGNAL."""
    socks: list[socket.socket] = []

    def made() -> Stream:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks.append(sock)
        s = Stream(sock, "127.0.0.1", 30000)
        s.filled = True
        s.peer = s.sdp_peer = A
        s.learn_until = WINDOW_END
        return s

    yield made
    for sock in socks:
        sock.close()


def packet(s: Stream, source: Address, now: float, rtcp: bool = False) -> Decision:
    d = decide(s, source, now, rtcp)
    apply(s, d)
    return d


def test_delayed_retargets_inside_window_and_confirms_after(make: Make) -> None:
    s = make()
    assert s.learning == LEARN_DELAYED
    assert packet(s, A2, IN).why is Why.LEARNING
    assert (s.peer, s.confirmed) == (A2, False)
    packet(s, A, IN + 0.5)
    assert (s.peer, s.confirmed) == (A, False)
    packet(s, A2, IN + 1)
    assert (s.peer, s.confirmed) == (A2, False)
    d = packet(s, A2, AFTER)
    assert d.why is Why.CONFIRMED and d.forward
    assert (s.peer, s.confirmed) == (A2, True)


def test_window_boundary_is_inclusive(make: Make) -> None:
    s = make()
    packet(s, A2, WINDOW_END)
    assert (s.peer, s.confirmed) == (A2, False)


def test_first_packet_after_window_confirms_its_own_source(make: Make) -> None:
    s = make()
    d = packet(s, A2, AFTER)
    assert d == Decision(Why.CONFIRMED, peer=A2, confirm=True)
    assert (s.peer, s.confirmed) == (A2, True)


def test_same_source_inside_window_changes_nothing(make: Make) -> None:
    s = make()
    assert packet(s, A, IN) == Decision(Why.LEARNING)
    assert (s.peer, s.confirmed) == (A, False)


def test_after_confirmation_foreign_source_is_dropped_and_counted(make: Make) -> None:
    s = make()
    packet(s, A2, AFTER)
    d = packet(s, A, AFTER + 1)
    assert d.why is Why.FOREIGN_DROPPED and not d.forward
    assert (s.peer, s.confirmed, s.dropped, s.errors) == (A2, True, 1, 1)
    assert packet(s, A2, AFTER + 2).why is Why.LATCHED
    assert (s.dropped, s.errors) == (1, 1)


def test_rtpengine_compat_relays_foreign_source_without_retargeting(make: Make) -> None:
    s = make()
    s.drop_foreign = False
    packet(s, A2, AFTER)
    d = packet(s, A, AFTER + 1)
    assert d.why is Why.FOREIGN_RELAYED and d.forward
    assert (s.peer, s.confirmed, s.dropped, s.errors) == (A2, True, 0, 0)


def test_immediate_confirms_first_packet(make: Make) -> None:
    s = make()
    s.learning = LEARN_IMMEDIATE
    assert packet(s, A2, IN).why is Why.CONFIRMED
    assert (s.peer, s.confirmed) == (A2, True)
    s.drop_foreign = False
    packet(s, A, IN + 0.1)
    assert s.peer == A2


def test_off_never_learns_and_accepts_every_source(make: Make) -> None:
    s = make()
    s.learning = LEARN_OFF
    for now in (IN, AFTER, AFTER + 1):
        d = packet(s, A2, now)
        assert d.forward and d.why is Why.IGNORE_SOURCE
    assert (s.peer, s.confirmed, s.dropped) == (A, True, 0)


def test_off_with_strict_source_drops_all_but_the_sdp_endpoint(make: Make) -> None:
    s = make()
    s.learning = LEARN_OFF
    s.strict_source = True
    assert packet(s, A, IN).forward
    assert not packet(s, A2, IN).forward
    assert (s.peer, s.errors) == (A, 1)


def test_heuristic_prefers_sdp_endpoint_inside_window(make: Make) -> None:
    s = make()
    s.learning = LEARN_HEURISTIC
    packet(s, A, IN)
    packet(s, A2, IN + 0.5)
    assert (s.peer, s.confirmed) == (A, False)
    packet(s, A2, AFTER)
    assert (s.peer, s.confirmed) == (A, True)


def test_heuristic_alone_is_tentative_then_sdp_endpoint_confirms(make: Make) -> None:
    s = make()
    s.learning = LEARN_HEURISTIC
    packet(s, A2, IN)
    assert (s.peer, s.confirmed) == (A2, False)
    packet(s, A, AFTER)
    assert (s.peer, s.confirmed) == (A, True)


@pytest.mark.parametrize(
    ("sources", "winner"),
    [
        ((FAR, OTHER_HOST), OTHER_HOST),  # same port beats nothing in common
        ((FAR, OTHER_HOST, A2), A2),  # same address beats same port
        ((A2, FAR, A), A),  # exact beats everything
    ],
)
def test_heuristic_preference_order(
    make: Make, sources: tuple[Address, ...], winner: Address
) -> None:
    s = make()
    s.learning = LEARN_HEURISTIC
    s.peer = None
    for i, src in enumerate(sources):
        packet(s, src, IN + i * 0.1)
    assert s.peer == winner


def test_heuristic_slots_reset_on_new_signal(make: Make) -> None:
    s = make()
    s.learning = LEARN_HEURISTIC
    packet(s, A, IN)
    s.learn_until = WINDOW_END + 10  # a re-INVITE
    packet(s, A2, IN + 1)
    assert (s.peer, s.confirmed) == (A2, False)


def test_heuristic_without_sdp_endpoint_behaves_like_delayed(make: Make) -> None:
    s = make()
    s.learning = LEARN_HEURISTIC
    s.sdp_peer = None
    packet(s, A, IN)
    packet(s, A2, IN + 0.5)
    assert s.peer == A2 and s.detected is None


def test_strict_source_drops_after_confirmation_even_in_compat(make: Make) -> None:
    s = make()
    s.strict_source = True
    s.drop_foreign = False
    packet(s, A2, IN)  # before confirmation: like delayed
    assert (s.peer, s.confirmed) == (A2, False)
    packet(s, A, AFTER)
    assert (s.peer, s.confirmed) == (A, True)
    d = packet(s, A2, AFTER + 1)
    assert not d.forward and (s.errors, s.dropped, s.peer) == (1, 1, A)


def test_media_handover_retargets_and_unconfirms(make: Make) -> None:
    s = make()
    s.media_handover = True
    packet(s, A, AFTER)
    assert s.confirmed
    d = packet(s, A2, AFTER + 1)
    assert d.why is Why.HANDOVER and d.forward
    assert (s.peer, s.confirmed, s.errors) == (A2, False, 0)
    packet(s, A, AFTER + 2)
    assert (s.peer, s.confirmed) == (A, True)


def test_media_handover_wins_over_strict_source(make: Make) -> None:
    s = make()
    s.media_handover = True
    s.strict_source = True
    packet(s, A, AFTER)
    assert packet(s, A2, AFTER + 1).forward
    assert s.peer == A2


def test_asymmetric_ignores_sources_and_confirms_at_once(make: Make) -> None:
    s = make()
    s.asymmetric = True
    d = packet(s, A2, IN)
    assert d.forward and d.why is Why.IGNORE_SOURCE
    assert (s.peer, s.confirmed, s.learned) == (A, True, A2)
    assert packet(s, A, AFTER).forward
    assert packet(s, FAR, AFTER).forward
    assert (s.peer, s.dropped) == (A, 0)


def test_asymmetric_strict_source_compares_with_first_source(make: Make) -> None:
    s = make()
    s.asymmetric = True
    s.strict_source = True
    packet(s, A2, IN)
    assert packet(s, A2, IN + 1).forward
    assert not packet(s, A, IN + 2).forward
    assert (s.peer, s.errors) == (A, 1)


def test_not_filled_forwards_without_learning(make: Make) -> None:
    s = make()
    s.filled = False
    for now in (IN, AFTER):
        assert packet(s, A2, now) == Decision(Why.NOT_FILLED)
    assert (s.peer, s.confirmed) == (A, False)


def test_stray_rtcp_on_rtp_port_is_ignored_for_learning(make: Make) -> None:
    s = make()
    assert packet(s, A2, AFTER, rtcp=True) == Decision(Why.STRAY_RTCP)
    assert (s.peer, s.confirmed) == (A, False)


def test_rtcp_stream_learns_from_rtcp(make: Make) -> None:
    s = make()
    s.is_rtcp = True
    packet(s, A2, AFTER, rtcp=True)
    assert (s.peer, s.confirmed) == (A2, True)


def test_stray_rtcp_after_confirmation_from_foreign_source_is_dropped(make: Make) -> None:
    s = make()
    packet(s, A, AFTER)
    assert not packet(s, A2, AFTER + 1, rtcp=True).forward
