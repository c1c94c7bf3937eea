"""SRTP errors: each a ValueError the media plane counts by class (never logs per packet)."""

from __future__ import annotations


class SrtpError(ValueError):
    """A packet could not be protected or unprotected (the peer's fault unless stated)."""


class SrtpTooShort(SrtpError):
    """Shorter than its header, extension, trailer or tag say it must be."""


class SrtpAuthError(SrtpError):
    """The authentication tag (HMAC-SHA1 or GCM) does not verify."""


class SrtpReplay(SrtpError):
    """Index already seen, or older than the replay window (RFC 3711 §3.3.2)."""
