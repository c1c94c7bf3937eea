"""libsrtp through pylibsrtp for the suites it exposes (AES_CM_128_HMAC_SHA1_80/_32,
AEAD_AES_128/256_GCM); its errors become ours.

Per packet this calls libsrtp's `srtp_protect`/`srtp_unprotect` through pylibsrtp's own cffi
binding, with a packet buffer and a length cell made once per context: pylibsrtp's `Session`
methods allocate a length cell per packet (`ffi.new`) and run three Python frames around the
call (bench/srtp_packet.py, AES_CM_128_HMAC_SHA1_80, 172-byte RTP: protect 1.7 → 1.1 µs,
unprotect 1.4 → 1.0 µs; docs/PERFORMANCE.md "Issue 17: SRTP"). The `Session` still creates and
frees the libsrtp session from the policy; the only things taken from it are its `srtp_t` and
the binding. If a pylibsrtp release changes either, `_Direct` is not used and every packet goes
through the `Session` methods (same bytes, same errors). Only the bytes libsrtp returns are
allocated per packet (the hot-path rule of issue 17).
"""

from __future__ import annotations

from typing import Any

import pylibsrtp

from relay.srtp.errors import SrtpAuthError, SrtpError, SrtpReplay, SrtpTooShort
from relay.srtp.packet import rtp_header_len
from relay.srtp.suites import Suite

PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}

BUFFER = 1500
"""Largest packet plus trailer libsrtp works on, as pylibsrtp's own buffer (and its limit)."""
RTP_TRAILER = 16 + 128
RTCP_TRAILER = 4 + 16 + 128
"""Room libsrtp may append: tag + MKI (+ SRTCP index), pylibsrtp's SRTP_MAX_*TRAILER_LEN."""


def supports(suite: Suite) -> bool:
    return suite.name in PROFILES


def _error(exc: Exception) -> SrtpError:
    text = str(exc)
    if text.startswith("authentication failure"):
        return SrtpAuthError("SRTP authentication failed (libsrtp)")
    if text.startswith("replay check failed"):
        return SrtpReplay(f"libsrtp: {text}")
    return SrtpError(f"libsrtp: {text}")


def _status_error(rc: int) -> SrtpError:
    """Our error for libsrtp status `rc` (not 0), by pylibsrtp's table of status texts."""
    texts: list[str] = getattr(pylibsrtp, "ERRORS", [])
    return _error(Exception(texts[rc] if 0 <= rc < len(texts) else f"status {rc}"))


class _Direct:
    """libsrtp's four calls on one session's `srtp_t`, with a buffer and length cell of ours."""

    __slots__ = ("srtp", "data", "buf", "length", "protect", "unprotect", "protect_rtcp",
                 "unprotect_rtcp")  # fmt: skip

    def __init__(self, session: pylibsrtp.Session) -> None:
        from pylibsrtp._binding import ffi, lib  # not public: see the module docstring

        for fn in (lib.srtp_protect, lib.srtp_unprotect, lib.srtp_protect_rtcp,
                   lib.srtp_unprotect_rtcp):  # fmt: skip
            if len(ffi.typeof(fn).args) != 3:  # libsrtp 2's (ctx, buffer, int *len)
                raise TypeError("libsrtp API other than 2.x")
        self.srtp: Any = session._srtp[0]  # kept alive by the session, which the context holds
        self.data: Any = ffi.new("char[]", BUFFER)
        self.buf: Any = ffi.buffer(self.data)
        self.length: Any = ffi.new("int *")
        self.protect: Any = lib.srtp_protect
        self.unprotect: Any = lib.srtp_unprotect
        self.protect_rtcp: Any = lib.srtp_protect_rtcp
        self.unprotect_rtcp: Any = lib.srtp_unprotect_rtcp


def _direct(session: pylibsrtp.Session) -> _Direct | None:
    try:
        return _Direct(session)
    except (ImportError, AttributeError, TypeError, IndexError):
        return None


class LibsrtpContext:
    """One libsrtp session for one direction (any SSRC)."""

    def __init__(self, suite: Suite, key_salt: bytes, *, outbound: bool) -> None:
        self.suite = suite
        policy = pylibsrtp.Policy(
            key=key_salt,
            ssrc_type=(
                pylibsrtp.Policy.SSRC_ANY_OUTBOUND
                if outbound
                else pylibsrtp.Policy.SSRC_ANY_INBOUND
            ),
            srtp_profile=PROFILES[suite.name],
        )
        # a relay forwards what it gets, retransmissions included; only receivers check replay
        policy.allow_repeat_tx = True
        self._session = pylibsrtp.Session(policy)
        self._rtp_min = 12 + suite.srtp_tag_len
        self._rtcp_min = 12 + suite.srtcp_tag_len
        self._direct = _direct(self._session)

    def _call(self, fn: Any, packet: bytes, room: int) -> bytes:
        """`fn` (srtp_protect & co.) on a copy of `packet` in the buffer; its output bytes."""
        d = self._direct
        assert d is not None
        n = len(packet)
        if n > BUFFER - room:
            raise SrtpError("libsrtp: packet is too long")
        d.buf[0:n] = packet
        d.length[0] = n
        rc = fn(d.srtp, d.data, d.length)
        if rc:
            raise _status_error(rc)
        return d.buf[0 : d.length[0]]  # type: ignore[no-any-return]

    def protect_rtp(self, packet: bytes) -> bytes:
        if len(packet) < 12 or packet[0] & 0x1F:  # CSRCs or an extension: check they fit
            rtp_header_len(packet)
        d = self._direct
        if d is not None:
            return self._call(d.protect, packet, RTP_TRAILER)
        try:
            return self._session.protect(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _error(exc) from None

    def unprotect_rtp(self, packet: bytes) -> bytes:
        if len(packet) < self._rtp_min:
            raise SrtpTooShort(f"SRTP packet of {len(packet)} bytes")
        d = self._direct
        if d is not None:
            return self._call(d.unprotect, packet, 0)
        try:
            return self._session.unprotect(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _error(exc) from None

    def protect_rtcp(self, packet: bytes) -> bytes:
        if len(packet) < 8:
            raise SrtpTooShort(f"RTCP packet of {len(packet)} bytes, header needs 8")
        d = self._direct
        if d is not None:
            return self._call(d.protect_rtcp, packet, RTCP_TRAILER)
        try:
            return self._session.protect_rtcp(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _error(exc) from None

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        if len(packet) < self._rtcp_min:
            raise SrtpTooShort(f"SRTCP packet of {len(packet)} bytes")
        d = self._direct
        if d is not None:
            return self._call(d.unprotect_rtcp, packet, 0)
        try:
            return self._session.unprotect_rtcp(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _error(exc) from None
