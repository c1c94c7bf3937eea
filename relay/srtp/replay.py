"""Rollover counter estimation and the replay window (RFC 3711 §3.3.1, §3.3.2, Appendix A)."""

from __future__ import annotations

from relay.srtp.errors import SrtpReplay

WINDOW = 128  # libsrtp's default, so both back-ends drop the same packets


class ReplayWindow:
    """Replay window over a packet index (RFC 3711 §3.3.2); `what` names the index in errors."""

    __slots__ = ("what", "top", "mask")

    def __init__(self, what: str) -> None:
        self.what = what
        self.top = -1  # highest authenticated index
        self.mask = 0  # bit k set: index top-k was seen

    def check(self, index: int) -> None:
        """Raise SrtpReplay if `index` was seen or is behind the window (§3.3.2)."""
        if self.top < 0 or index > self.top:
            return
        delta = self.top - index
        if delta >= WINDOW:
            raise SrtpReplay(f"{self.what} {index} older than the replay window")
        if self.mask >> delta & 1:
            raise SrtpReplay(f"{self.what} {index} already received")

    def commit(self, index: int) -> None:
        """Mark an authentic packet's index as received, sliding the window forward."""
        if self.top < 0 or index > self.top:
            shift = index - self.top if self.top >= 0 else WINDOW
            self.mask = ((self.mask << shift) | 1) & ((1 << WINDOW) - 1)
            self.top = index
        else:
            self.mask |= 1 << (self.top - index)


class RtpIndex(ReplayWindow):
    """Per-SSRC SRTP state: the 48-bit index window plus highest sequence number s_l and its ROC."""

    __slots__ = ("roc", "s_l", "started")

    def __init__(self) -> None:
        super().__init__("index")
        self.roc = 0
        self.s_l = 0
        self.started = False

    def estimate(self, seq: int) -> int:
        """The ROC the sender most likely used for `seq` (RFC 3711 Appendix A)."""
        if not self.started:
            return self.roc
        if self.s_l < 32768:
            if seq - self.s_l > 32768:
                return max(self.roc - 1, 0)  # ROC 0 has no earlier epoch
            return self.roc
        if self.s_l - 32768 > seq:
            return (self.roc + 1) & 0xFFFFFFFF
        return self.roc

    def accept(self, roc: int, seq: int) -> None:
        """Record an authentic packet (§3.3.1: update ROC and s_l only after authentication)."""
        self.commit((roc << 16) | seq)
        if not self.started:
            self.roc, self.s_l, self.started = roc, seq, True
        elif roc == self.roc and seq > self.s_l:
            self.s_l = seq
        elif roc == (self.roc + 1) & 0xFFFFFFFF:
            self.roc, self.s_l = roc, seq
