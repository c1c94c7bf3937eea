"""relay.media.latch under hypothesis: any sequence of packets, flags and signals is handled."""

from __future__ import annotations

import socket

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from relay.media.latch import Why, apply, decide
from relay.media.stream import (
    LEARN_DELAYED,
    LEARN_HEURISTIC,
    LEARN_IMMEDIATE,
    LEARN_OFF,
    Address,
    Stream,
)

SOURCES: list[Address] = [
    ("127.0.0.1", 42314),
    ("127.0.0.1", 42316),
    ("127.0.0.2", 42314),
    ("10.0.0.9", 9),
]
MODES = [LEARN_DELAYED, LEARN_IMMEDIATE, LEARN_OFF, LEARN_HEURISTIC]


class Latching(RuleBasedStateMachine):
    """Drives one stream with random packets; checks the decision's own consistency rules."""

    def __init__(self) -> None:
        super().__init__()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s = Stream(self.sock, "127.0.0.1", 30000)
        self.now = 0.0

    def teardown(self) -> None:
        self.sock.close()

    @initialize(
        mode=st.sampled_from(MODES),
        flags=st.tuples(*(st.booleans() for _ in range(6))),
        sdp=st.none() | st.sampled_from(SOURCES),
    )
    def setup(self, mode: str, flags: tuple[bool, ...], sdp: Address | None) -> None:
        s = self.s
        s.learning = mode
        (s.strict_source, s.media_handover, s.asymmetric, s.drop_foreign, s.filled, s.is_rtcp) = (
            flags
        )
        s.sdp_peer = s.peer = sdp

    @rule(dt=st.floats(0, 5))
    def signal(self, dt: float) -> None:
        self.now += dt
        self.s.learn_until = self.now + 3

    @rule(filled=st.booleans())
    def fill(self, filled: bool) -> None:
        self.s.filled = filled

    @rule(src=st.sampled_from(SOURCES), dt=st.floats(0, 2), rtcp=st.booleans())
    def packet(self, src: Address, dt: float, rtcp: bool) -> None:
        self.now += dt
        s = self.s
        before = (s.peer, s.confirmed)
        d = decide(s, src, self.now, rtcp)
        assert d.forward or d.error
        if d.why in (Why.LATCHED, Why.FOREIGN_DROPPED, Why.FOREIGN_RELAYED):
            assert before[1], "only a confirmed stream latches"
        forwarded = apply(s, d)
        assert forwarded is d.forward
        if not forwarded:
            assert (s.peer, s.confirmed) == before, "a dropped packet changes nothing"
        if before[1] and not s.media_handover:
            assert s.peer == before[0], "a confirmed peer moves only by media-handover"
        if d.peer is not None:
            assert d.peer in SOURCES

    @invariant()
    def drops_count_errors(self) -> None:
        assert self.s.dropped == self.s.errors


TestLatching = Latching.TestCase
