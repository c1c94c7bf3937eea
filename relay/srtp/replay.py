"""Rollover counter estimation and the replay window (RFC 3711 §3.3.1, §3.3.2, Appendix A)."""

from __future__ import annotations

from relay.srtp.errors import SrtpReplay

WINDOW = 128  # libsrtp's default, so both back-ends drop the same packets


class RtpIndex:
    """Per-SSRC packet index state: highest sequence number s_l and its ROC."""

    __slots__ = ("roc", "s_l", "started", "top", "mask")

    def __init__(self) -> None:
        self.roc = 0
        self.s_l = 0
        self.started = False
        self.top = -1  # highest authenticated 48-bit index
        self.mask = 0  # bit k set: index top-k was seen

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

    def check(self, index: int) -> None:
        """Raise SrtpReplay if `index` was seen or is behind the window (§3.3.2)."""
        if self.top < 0 or index > self.top:
            return
        delta = self.top - index
        if delta >= WINDOW:
            raise SrtpReplay(f"index {index} older than the replay window")
        if self.mask >> delta & 1:
            raise SrtpReplay(f"index {index} already received")

    def commit(self, roc: int, seq: int) -> None:
        """Record an authentic packet (§3.3.1: update ROC and s_l only after authentication)."""
        index = (roc << 16) | seq
        if self.top < 0 or index > self.top:
            shift = index - self.top if self.top >= 0 else WINDOW
            self.mask = ((self.mask << shift) | 1) & ((1 << WINDOW) - 1)
            self.top = index
        else:
            self.mask |= 1 << (self.top - index)
        if not self.started:
            self.roc, self.s_l, self.started = roc, seq, True
        elif roc == self.roc and seq > self.s_l:
            self.s_l = seq
        elif roc == (self.roc + 1) & 0xFFFFFFFF:
            self.roc, self.s_l = roc, seq


class RtcpIndex:
    """Replay window over the 31-bit SRTCP index (RFC 3711 §3.4)."""

    __slots__ = ("top", "mask")

    def __init__(self) -> None:
        self.top = -1
        self.mask = 0

    def check(self, index: int) -> None:
        if self.top < 0 or index > self.top:
            return
        delta = self.top - index
        if delta >= WINDOW:
            raise SrtpReplay(f"SRTCP index {index} older than the replay window")
        if self.mask >> delta & 1:
            raise SrtpReplay(f"SRTCP index {index} already received")

    def commit(self, index: int) -> None:
        if self.top < 0 or index > self.top:
            shift = index - self.top if self.top >= 0 else WINDOW
            self.mask = ((self.mask << shift) | 1) & ((1 << WINDOW) - 1)
            self.top = index
        else:
            self.mask |= 1 << (self.top - index)
