"""Endpoint learning (latching): what to do with one received packet, as a pure decision.

Implements docs/spec/sdp.md §4 (rtpengine 10.5 `media_packet_address_check`). `decide` reads a
stream's learning state, the packet's source address and the current monotonic time and returns
a `Decision`; `apply` writes that decision back to the stream. Neither does I/O, so the same code
serves the userspace plane, a kernel plane's slow path and the tests.

Modes (stream.learning, plus the flags):

* delayed (default): while ``now <= learn_until`` every packet from a new source re-targets the
  peer without confirming; the first packet after the window re-targets to its source and
  confirms. The call model sets ``learn_until`` on every offer/answer. rtpengine compares whole
  seconds (``now.tv_sec <= last_signal + 3``); for exact parity set
  ``learn_until = floor(last_signal_monotonic) + 4 - 1e-6``, otherwise ``last_signal + 3``.
* immediate: the first packet re-targets and confirms.
* off: no learning; the peer stays the SDP endpoint and the stream is confirmed at once.
* heuristic: like delayed, but the candidate is the best source seen since the last signal, in
  the order SDP address+port, same address other port, same port other address, anything.
  (rtpengine resets its slots on an internal timestamp; we reset them when ``learn_until``
  changes, i.e. on a new signal. This matches both sequences measured in docs/spec/sdp.md §4.)
* asymmetric: sources are ignored, the stream is confirmed at once, the peer stays as signalled.
* media-handover: after confirmation a new source re-targets at once and unconfirms.
* strict-source: after confirmation a packet from another source is dropped, ``errors`` + 1.

Before the stream is ``filled`` packets are forwarded without learning; stray RTCP (second byte
194..223, `rtp.demux.looks_like_rtcp`) on an unconfirmed RTP stream is forwarded but ignored
for learning.

Difference from rtpengine (security, the CVE-2025-53399 class of RTP injection): rtpengine relays
packets from a foreign source after confirmation (it only stops re-targeting), so anyone who can
guess the port can inject audio towards the other party. rtpvault DROPS them and counts them in
``dropped`` and ``errors`` whenever ``stream.drop_foreign`` is true (the default), i.e. it behaves
as if strict-source were always on. ``drop_foreign = False`` restores rtpengine's behaviour.
media-handover still re-targets (it wins over dropping, as in rtpengine), and off/asymmetric
streams accept every source unless strict-source is set explicitly (then off compares with the
SDP peer and asymmetric with the first source it saw, as rtpengine does).

Dropped packets are not counted in ``packets``/``bytes`` and do not refresh ``last_packet``
(rtpengine counts only after the address check), so an injector cannot keep a dead call alive.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from relay.media.stream import (
    LEARN_HEURISTIC,
    LEARN_IMMEDIATE,
    LEARN_OFF,
    Address,
    Stream,
)


class Why(enum.Enum):
    """Which rule produced a decision (for tests, counters and rate-limited logs)."""

    NOT_FILLED = "not filled"
    STRAY_RTCP = "stray RTCP ignored for learning"
    IGNORE_SOURCE = "source ignored (asymmetric or learning off)"
    LATCHED = "from the confirmed peer"
    FOREIGN_DROPPED = "foreign source dropped after confirmation"
    FOREIGN_RELAYED = "foreign source relayed without re-targeting (rtpengine compat)"
    HANDOVER = "peer changed (media handover)"
    LEARNING = "learning window"
    CONFIRMED = "peer confirmed"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one packet: forward it or drop it, and how the stream's state changes."""

    why: Why
    forward: bool = True
    peer: Address | None = None
    """New value for stream.peer (None = unchanged)."""
    confirm: bool = False
    unconfirm: bool = False
    error: bool = False
    """Count the packet in `dropped` and `errors` (only with forward=False)."""
    detected: tuple[Address | None, ...] | None = None
    """New heuristic slots (None = unchanged)."""
    learned: Address | None = None
    """First source of an asymmetric stream (None = unchanged)."""


class LatchState(Protocol):
    """The read-only view of a stream that `decide` needs; `Stream` satisfies it."""

    @property
    def peer(self) -> Address | None: ...
    @property
    def sdp_peer(self) -> Address | None: ...
    @property
    def confirmed(self) -> bool: ...
    @property
    def learning(self) -> str: ...
    @property
    def learn_until(self) -> float: ...
    @property
    def strict_source(self) -> bool: ...
    @property
    def media_handover(self) -> bool: ...
    @property
    def asymmetric(self) -> bool: ...
    @property
    def filled(self) -> bool: ...
    @property
    def is_rtcp(self) -> bool: ...
    @property
    def drop_foreign(self) -> bool: ...
    @property
    def learned(self) -> Address | None: ...
    @property
    def detected(self) -> tuple[Address | None, ...] | None: ...
    @property
    def detected_for(self) -> float: ...


_NOT_FILLED = Decision(Why.NOT_FILLED)
_STRAY_RTCP = Decision(Why.STRAY_RTCP)
_LATCHED = Decision(Why.LATCHED)
_IGNORE = Decision(Why.IGNORE_SOURCE)
_IGNORE_CONFIRM = Decision(Why.IGNORE_SOURCE, confirm=True)
_DROP = Decision(Why.FOREIGN_DROPPED, forward=False, error=True)
_RELAY_FOREIGN = Decision(Why.FOREIGN_RELAYED)
_LEARNING_SAME = Decision(Why.LEARNING)
_CONFIRM_SAME = Decision(Why.CONFIRMED, confirm=True)
_NO_SLOTS: tuple[Address | None, ...] = (None, None, None, None)


def decide(s: LatchState, source: Address, now: float, looks_rtcp: bool = False) -> Decision:
    """The learning decision for one packet from `source` arriving at monotonic time `now`."""
    if not s.filled:
        return _NOT_FILLED
    if looks_rtcp and not s.confirmed and not s.is_rtcp:
        return _STRAY_RTCP
    if s.asymmetric or s.learning == LEARN_OFF:
        return _ignore_source(s, source)
    if s.confirmed:
        if source == s.peer:
            return _LATCHED
        if s.media_handover:
            return Decision(Why.HANDOVER, peer=source, unconfirm=True)
        if s.strict_source or s.drop_foreign:
            return _DROP
        return _RELAY_FOREIGN
    return _learn(s, source, now)


def _ignore_source(s: LatchState, source: Address) -> Decision:
    """asymmetric / learning off: confirm at once; only strict-source ever looks at the source."""
    learned = None
    if s.asymmetric and s.learned is None:
        learned = source
    if s.strict_source and s.confirmed:
        expected = s.learned if s.asymmetric else s.peer
        if expected is not None and source != expected:
            return _DROP
    if learned is not None:
        return Decision(Why.IGNORE_SOURCE, confirm=not s.confirmed, learned=learned)
    return _IGNORE if s.confirmed else _IGNORE_CONFIRM


def _learn(s: LatchState, source: Address, now: float) -> Decision:
    """An unconfirmed stream: move towards the best candidate, confirming after the window."""
    candidate = source
    detected = None
    if s.learning == LEARN_HEURISTIC and s.sdp_peer is not None and s.sdp_peer[1]:
        slots = s.detected if s.detected is not None and s.detected_for == s.learn_until else None
        detected = _fill_slot(slots or _NO_SLOTS, source, s.sdp_peer)
        candidate = next(a for a in detected if a is not None)
    if s.learning != LEARN_IMMEDIATE and now <= s.learn_until:
        if candidate == s.peer and detected is None:
            return _LEARNING_SAME
        peer = None if candidate == s.peer else candidate
        return Decision(Why.LEARNING, peer=peer, detected=detected)
    if candidate == s.peer and detected is None:
        return _CONFIRM_SAME
    peer = None if candidate == s.peer else candidate
    return Decision(Why.CONFIRMED, peer=peer, confirm=True, detected=detected)


def _fill_slot(
    slots: tuple[Address | None, ...], source: Address, sdp: Address
) -> tuple[Address | None, ...]:
    """Put `source` in its preference slot: 0 exact, 1 other port, 2 other address, 3 both."""
    idx = (source[1] != sdp[1]) | ((source[0] != sdp[0]) << 1)
    return slots[:idx] + (source,) + slots[idx + 1 :]


def apply(stream: Stream, d: Decision) -> bool:
    """Write decision `d` into `stream`; return whether the packet is to be forwarded."""
    if d.peer is not None:
        stream.peer = d.peer
    if d.confirm:
        stream.confirmed = True
    elif d.unconfirm:
        stream.confirmed = False
    if d.detected is not None:
        stream.detected = d.detected
        stream.detected_for = stream.learn_until
    if d.learned is not None:
        stream.learned = d.learned
    if d.error:
        stream.dropped += 1
        stream.errors += 1
    return d.forward
