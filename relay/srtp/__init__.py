"""SRTP/SRTCP crypto (RFC 3711, 6188, 7714) and the SDES attribute codec (RFC 4568)."""

from relay.srtp.context import NativeContext, SessionParams, SrtpContext, open_context
from relay.srtp.errors import SrtpAuthError, SrtpError, SrtpReplay, SrtpTooShort
from relay.srtp.suites import BY_NAME, SUITES, Cipher, Suite, suite

__all__ = [
    "BY_NAME",
    "SUITES",
    "Cipher",
    "NativeContext",
    "SessionParams",
    "SrtpAuthError",
    "SrtpContext",
    "SrtpError",
    "SrtpReplay",
    "SrtpTooShort",
    "Suite",
    "open_context",
    "suite",
]
