"""What the call model publishes: frozen events, in the order they happen.

A new call gives `CallCreated`, then `CallUpdated` for the SDP exchange that created it; every
later exchange, recording change or branch delete gives `CallUpdated`; the end gives
`CallClosed(reason)` once (after the ng reply to the `delete` that ended it). Listeners run on
the loop and must not raise (an exception is logged and ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from relay.call.model import Call
from relay.call.offered import OfferedSession


@dataclass(frozen=True, slots=True)
class Exchange:
    """One offer or answer the call model carried out: who sent which SDP (as parsed by the
    relay, not to be parsed again) and the SDP sent on."""

    kind: str
    """"offer" or "answer"."""
    tag: str
    """The sending party's tag (the from-tag of an offer, the to-tag of an answer)."""
    offered: OfferedSession
    sdp_out: str


@dataclass(frozen=True, slots=True)
class CallCreated:
    call: Call


@dataclass(frozen=True, slots=True)
class CallUpdated:
    call: Call
    exchange: Exchange | None = None
    """The SDP exchange behind this update; None for other changes (recording, branch delete)."""


@dataclass(frozen=True, slots=True)
class CallClosed:
    call: Call
    reason: str
    """rtpengine's: regular, forced, timeout, silent-timeout, final-timeout, offer-timeout."""


CallEvent = CallCreated | CallUpdated | CallClosed
CallListener = Callable[[CallEvent], None]
