"""DTLS-SRTP (RFC 5763, 5764) as a sans-IO layer the call model drives (issue 17, item 2).

* `relay.dtls.cert`: the daemon's certificate (loaded or generated as rtpengine 10.5 does),
  `a=fingerprint` / `a=setup` rendering and parsing. Pure apart from key generation.
* `relay.dtls.session`: one DTLS endpoint over OpenSSL memory BIOs (pyOpenSSL): datagrams in,
  datagrams out, `now` passed in, SRTP keys from the exporter (RFC 5764 §4.2).
* `relay.dtls.demux`: RFC 7983 first-byte demultiplexing of STUN, DTLS and RTP/RTCP. Pure.

Measured rtpengine behaviour: docs/spec/sdp.md §1.12b. Every error is a `DtlsError`.
"""

from __future__ import annotations

__all__ = [
    "DtlsError",
    "FingerprintError",
    "CertificateError",
    "FingerprintMismatch",
    "DtlsGarbage",
    "HandshakeFailed",
    "HandshakeTimeout",
]


class DtlsError(ValueError):
    """Base of every error this package raises. `outgoing` holds datagrams (an alert) that the
    caller should still send to the peer, if any."""

    def __init__(self, message: str, outgoing: tuple[bytes, ...] = ()) -> None:
        super().__init__(message)
        self.outgoing = outgoing


class FingerprintError(DtlsError):
    """An `a=fingerprint` or `a=setup` value that does not parse (peer's fault)."""


class CertificateError(DtlsError):
    """A `tls-certificate` / `tls-private-key` that cannot be used (configuration's fault)."""


class FingerprintMismatch(DtlsError):
    """The peer's certificate does not match its SDP fingerprint: no keys (peer's fault)."""


class DtlsGarbage(DtlsError):
    """A datagram that is not a DTLS record: dropped, the session is unchanged (peer's fault)."""


class HandshakeFailed(DtlsError):
    """OpenSSL aborted the handshake (fatal alert, no common SRTP profile, …)."""


class HandshakeTimeout(DtlsError):
    """The handshake did not complete within the session's handshake timeout."""
