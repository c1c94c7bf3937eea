"""libsrtp through pylibsrtp for the suites it exposes (AES_CM_128_HMAC_SHA1_80/_32,
AEAD_AES_128/256_GCM); its errors become ours."""

from __future__ import annotations

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


def supports(suite: Suite) -> bool:
    return suite.name in PROFILES


def _error(exc: Exception) -> SrtpError:
    text = str(exc)
    if text.startswith("authentication failure"):
        return SrtpAuthError("SRTP authentication failed (libsrtp)")
    if text.startswith("replay check failed"):
        return SrtpReplay(f"libsrtp: {text}")
    return SrtpError(f"libsrtp: {text}")


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

    def protect_rtp(self, packet: bytes) -> bytes:
        rtp_header_len(packet)
        try:
            return self._session.protect(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _error(exc) from None

    def unprotect_rtp(self, packet: bytes) -> bytes:
        if len(packet) < self._rtp_min:
            raise SrtpTooShort(f"SRTP packet of {len(packet)} bytes")
        try:
            return self._session.unprotect(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _error(exc) from None

    def protect_rtcp(self, packet: bytes) -> bytes:
        if len(packet) < 8:
            raise SrtpTooShort(f"RTCP packet of {len(packet)} bytes, header needs 8")
        try:
            return self._session.protect_rtcp(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _error(exc) from None

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        if len(packet) < self._rtcp_min:
            raise SrtpTooShort(f"SRTCP packet of {len(packet)} bytes")
        try:
            return self._session.unprotect_rtcp(packet)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _error(exc) from None
