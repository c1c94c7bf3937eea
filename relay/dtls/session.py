"""One DTLS-SRTP endpoint (RFC 5764) over OpenSSL memory BIOs: datagrams in, datagrams out.

Sans-IO: no socket and no clock. The caller feeds received datagrams with `receive(data, now)`,
sends what every method returns, and calls `handle_timeout(now)` at `next_timeout()`. When the
handshake completes, `keys` holds the SRTP master keys and salts from the exporter
(RFC 5764 §4.2); the peer's certificate has then been checked against its SDP fingerprint
(RFC 5763 §5), and a mismatch fails the session without exposing keys. The fingerprint may
be unknown while the handshake runs (we offered `actpass` and the peer's ClientHello came before
its answer): the keys are then held back until `set_remote_fingerprint` has checked them.

TLS itself is OpenSSL's (pyOpenSSL); this module only drives it. One thing is ours, because
pyOpenSSL does not expose `DTLS_set_timer_cb`: OpenSSL's DTLS retransmission timer reads the wall
clock itself, so the schedule here runs on the caller's `now` (RFC 6347 §4.2.4.1: 1 s, doubling,
at most 60 s). When it fires, OpenSSL retransmits if its own timer has run out too; if it has not
(a `now` ahead of the wall clock), the last flight is sent again as it was.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto

from relay.dtls import (
    DtlsError,
    DtlsGarbage,
    FingerprintMismatch,
    HandshakeFailed,
    HandshakeTimeout,
)
from relay.dtls.cert import DtlsCertificate, Fingerprint
from relay.dtls.records import (
    check_record_header,
    is_client_hello,
    pack_datagrams,
    split_records,
)

__all__ = [
    "Role",
    "State",
    "SrtpProfile",
    "PROFILES",
    "SrtpKeys",
    "DtlsSession",
    "DEFAULT_CIPHERS",
    "DEFAULT_MTU",
    "check_ciphers",
]

DEFAULT_CIPHERS = "DEFAULT:!NULL:!aNULL:!SHA256:!SHA384:!aECDH:!AESGCM+AES256:!aPSK"
"""rtpengine 10.5's `dtls-ciphers` default; its ClientHello lists these suites (§1.12b)."""
DEFAULT_MTU = 1200
"""Largest datagram a flight is packed into (`dtls-mtu`)."""
HANDSHAKE_TIMEOUT = 30.0
"""Seconds from start to a failed handshake (rtpvault's choice; rtpengine's not measured)."""
INITIAL_RETRANSMIT = 1.0
MAX_RETRANSMIT = 60.0
"""RFC 6347 §4.2.4.1 timer: 1 s initial, doubled on each retransmission, capped at 60 s."""
EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
"""RFC 5764 §4.2."""


class Role(enum.Enum):
    """Who sends the ClientHello: `a=setup:active` is the DTLS client (RFC 5763 §5)."""

    CLIENT = "active"
    SERVER = "passive"


class State(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SrtpProfile:
    """An RFC 5764 §4.1.2 / RFC 7714 §14.2 protection profile and its key sizes."""

    openssl_name: str
    key_len: int
    salt_len: int


PROFILES = (
    SrtpProfile("SRTP_AEAD_AES_256_GCM", 32, 12),
    SrtpProfile("SRTP_AEAD_AES_128_GCM", 16, 12),
    SrtpProfile("SRTP_AES128_CM_SHA1_80", 16, 14),
    SrtpProfile("SRTP_AES128_CM_SHA1_32", 16, 14),
)
"""What rtpengine 10.5 offers in `use_srtp`, in its order (§1.12b)."""
_BY_NAME = {p.openssl_name: p for p in PROFILES}


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """Keying material split as RFC 5764 §4.2 lays it out; never shown by `repr`."""

    profile: SrtpProfile
    client_key: bytes = field(repr=False)
    client_salt: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    server_salt: bytes = field(repr=False)

    @classmethod
    def from_material(cls, profile: SrtpProfile, material: bytes) -> SrtpKeys:
        """client key | server key | client salt | server salt (RFC 5764 §4.2)."""
        k, s = profile.key_len, profile.salt_len
        return cls(profile, material[:k], material[2 * k : 2 * k + s], material[k : 2 * k],
                   material[2 * k + s : 2 * k + 2 * s])  # fmt: skip

    def local(self, role: Role) -> bytes:
        """Master key + salt this side protects with (its write key)."""
        if role is Role.CLIENT:
            return self.client_key + self.client_salt
        return self.server_key + self.server_salt

    def remote(self, role: Role) -> bytes:
        """Master key + salt this side unprotects the peer's packets with."""
        return self.local(Role.SERVER if role is Role.CLIENT else Role.CLIENT)


def check_ciphers(ciphers: str) -> None:
    """ValueError unless OpenSSL finds a cipher in the `dtls-ciphers` list (checked at start-up:
    rtpengine 10.5 takes any text and fails each DTLS context later)."""
    ctx = SSL.Context(SSL.DTLS_METHOD)
    try:
        ctx.set_cipher_list(ciphers.encode())
    except SSL.Error:
        raise ValueError("OpenSSL finds no cipher in this list") from None


_contexts: dict[tuple[int, tuple[SrtpProfile, ...], str], tuple[DtlsCertificate, SSL.Context]]
_contexts = {}
"""One OpenSSL context per certificate, profiles and cipher list (a daemon has one): building
it (certificate, key check, cipher list) costs more than the session itself."""


def _context(certificate: DtlsCertificate, profiles: tuple[SrtpProfile, ...],
             ciphers: str) -> SSL.Context:  # fmt: skip
    key = (id(certificate), profiles, ciphers)
    cached = _contexts.get(key)
    if cached is not None and cached[0] is certificate:
        return cached[1]
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_options(SSL.OP_NO_QUERY_MTU)
    ctx.set_cipher_list(ciphers.encode())
    try:
        ctx.use_certificate(certificate.certificate)
    except SSL.Error:
        # OpenSSL's default security level (Debian: 2) refuses RSA keys under 2048 bits and
        # SHA-1 signatures ("ee key too small"); the operator chose them (dtls-rsa-key-size,
        # dtls-signature, tls-certificate), so this context takes them.
        ctx.set_cipher_list(ciphers.encode() + b":@SECLEVEL=0")
        ctx.use_certificate(certificate.certificate)
    ctx.use_privatekey(certificate.key)
    ctx.check_privatekey()
    ctx.set_tlsext_use_srtp(":".join(p.openssl_name for p in profiles).encode())
    if len(_contexts) > 8:  # certificates replaced in a long test run: keep it bounded
        _contexts.clear()
    _contexts[key] = (certificate, ctx)
    return ctx


class DtlsSession:
    """One DTLS association for one media stream (RFC 5764 §4), driven by the caller."""

    def __init__(
        self,
        certificate: DtlsCertificate,
        role: Role,
        remote_fingerprint: Fingerprint | None,
        *,
        profiles: tuple[SrtpProfile, ...] = PROFILES,
        ciphers: str = DEFAULT_CIPHERS,
        mtu: int = DEFAULT_MTU,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.role = role
        self.remote_fingerprint = remote_fingerprint
        self.state = State.NEW
        self.keys: SrtpKeys | None = None
        self._mtu = mtu
        self._handshake_timeout = handshake_timeout
        self._deadline: float | None = None
        self._retransmit_at: float | None = None
        self._interval = INITIAL_RETRANSMIT
        self._flight: list[bytes] = []
        self._mismatch = False
        self._unverified: tuple[bytes, SrtpKeys] | None = None
        """(peer certificate DER, keys) of a handshake done before the fingerprint was known."""
        try:
            self._conn = SSL.Connection(_context(certificate, profiles, ciphers), None)
        except SSL.Error as exc:
            raise DtlsError(f"OpenSSL refuses the DTLS certificate or ciphers: {exc}") from None
        self._conn.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        self._conn.set_ciphertext_mtu(mtu)
        if role is Role.CLIENT:
            self._conn.set_connect_state()
        else:
            self._conn.set_accept_state()

    def start(self, now: float) -> list[bytes]:
        """Begin: a client returns its ClientHello; a server waits for one. Starts the timeout."""
        if self.state is not State.NEW:
            return []
        self.state = State.CONNECTING
        self._deadline = now + self._handshake_timeout
        return self._handshake(now) if self.role is Role.CLIENT else []

    def receive(self, datagram: bytes, now: float) -> list[bytes]:
        """Feed one received datagram; return the datagrams to send back.

        Raises only `DtlsError`: `DtlsGarbage` for a datagram that is no DTLS record (dropped,
        nothing changes), `FingerprintMismatch` / `HandshakeFailed` when the handshake fails
        (their `outgoing` holds the alert to send).
        """
        if self.state in (State.FAILED, State.CLOSED):
            raise DtlsError(f"DTLS datagram after the session is {self.state.value}: dropped")
        check_record_header(datagram)
        if self.role is Role.CLIENT and is_client_hello(datagram):
            # rtpengine sends ClientHellos while its role is still open (actpass, §1.12b); fed to
            # OpenSSL they would abort our client's handshake
            raise DtlsGarbage("ClientHello received by the DTLS client: dropped")
        if self.state is State.NEW:
            self.start(now)
        self._conn.bio_write(datagram)
        if self.state is State.CONNECTED:
            return self._read_connected()
        return self._handshake(now)

    def next_timeout(self) -> float | None:
        """When to call `handle_timeout` next (the caller's clock), None when nothing is due."""
        if self.state is not State.CONNECTING or self._deadline is None:
            return None
        if self._retransmit_at is None:
            return self._deadline
        return min(self._retransmit_at, self._deadline)

    def handle_timeout(self, now: float) -> list[bytes]:
        """Retransmit the last flight when its timer ran out; fail after the handshake timeout."""
        if self.state is not State.CONNECTING:
            return []
        if self._deadline is not None and now >= self._deadline:
            self.state = State.FAILED
            raise HandshakeTimeout(f"DTLS handshake not complete after {self._handshake_timeout}s")
        if self._retransmit_at is None or now < self._retransmit_at:
            return []
        self._interval = min(self._interval * 2, MAX_RETRANSMIT)
        self._retransmit_at = now + self._interval
        try:
            self._conn.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            raise self._failure(exc) from None
        out = self._drain()
        if out:
            self._flight = out
            return out
        return list(self._flight)  # OpenSSL's wall-clock timer has not run out: see docstring

    def close(self) -> list[bytes]:
        """Send close_notify (RFC 5246 §7.2.1) if connected; the session is closed after."""
        if self.state is State.CONNECTED:
            try:
                self._conn.shutdown()
            except SSL.Error:
                pass  # a half-closed peer: close_notify is best effort
        self.state = State.CLOSED
        self._retransmit_at = None
        return self._drain()

    @property
    def peer_closed(self) -> bool:
        """The peer sent close_notify."""
        return bool(self._conn.get_shutdown() & SSL.RECEIVED_SHUTDOWN)

    def set_remote_fingerprint(self, fingerprint: Fingerprint) -> None:
        """The peer's SDP fingerprint, known now (its answer came after its ClientHello): a
        handshake already done gets its keys if the certificate matches, else the session fails
        (`FingerprintMismatch`, no keys ever). Before the handshake ends it is checked there."""
        self.remote_fingerprint = fingerprint
        pending, self._unverified = self._unverified, None
        if pending is None:
            return
        der, keys = pending
        if not fingerprint.matches(der):
            self.state = State.FAILED
            raise FingerprintMismatch(
                f"peer certificate does not match a=fingerprint {fingerprint.hash_name}")
        self.keys = keys

    def _verify(self, _conn: Any, x509: crypto.X509, _errno: int, depth: int, _ok: int) -> bool:
        """RFC 5763 §5: the self-signed leaf must hash to the peer's SDP fingerprint (checked
        after the handshake when that is not known yet)."""
        if depth != 0 or self.remote_fingerprint is None:
            return True
        der = crypto.dump_certificate(crypto.FILETYPE_ASN1, x509)
        if not self.remote_fingerprint.matches(der):
            self._mismatch = True
            return False
        return True

    def _handshake(self, now: float) -> list[bytes]:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            raise self._failure(exc) from None
        else:
            self._complete()
        out = self._drain()
        if out:
            self._flight = out
            self._interval = INITIAL_RETRANSMIT
            self._retransmit_at = None if self.state is State.CONNECTED else now + self._interval
        return out

    def _complete(self) -> None:
        """Handshake done: check the peer's certificate once more, then export the keys."""
        peer = self._conn.get_peer_certificate(as_cryptography=True)
        der = b"" if peer is None else peer.public_bytes(Encoding.DER)
        expected = self.remote_fingerprint
        if peer is None or expected is not None and not expected.matches(der):
            self.state = State.FAILED
            name = expected.hash_name if expected is not None else "(none)"
            raise FingerprintMismatch(
                f"peer certificate does not match a=fingerprint {name}", tuple(self._drain()))
        name = self._conn.get_selected_srtp_profile().decode()
        profile = _BY_NAME.get(name)
        if profile is None:
            self.state = State.FAILED
            raise HandshakeFailed(f"no SRTP profile negotiated (use_srtp {name!r})",
                                  tuple(self._drain()))  # fmt: skip
        material = self._conn.export_keying_material(
            EXPORTER_LABEL, 2 * (profile.key_len + profile.salt_len))
        keys = SrtpKeys.from_material(profile, material)
        if expected is None:
            self._unverified = (der, keys)  # held until set_remote_fingerprint
        else:
            self.keys = keys
        self.state = State.CONNECTED
        self._retransmit_at = None

    def _read_connected(self) -> list[bytes]:
        """After the handshake: alerts, close_notify and retransmitted peer flights."""
        try:
            self._conn.recv(65535)  # application data is not used by DTLS-SRTP: discarded
        except SSL.ZeroReturnError:
            self.state = State.CLOSED
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            raise self._failure(exc) from None
        return self._drain()

    def _failure(self, exc: SSL.Error) -> DtlsError:
        self.state = State.FAILED
        self._retransmit_at = None
        alert = tuple(self._drain())
        if self._mismatch and self.remote_fingerprint is not None:
            return FingerprintMismatch(
                "peer certificate does not match a=fingerprint "
                f"{self.remote_fingerprint.hash_name}", alert)
        return HandshakeFailed(f"DTLS handshake failed: {exc}", alert)

    def _drain(self) -> list[bytes]:
        """Everything OpenSSL wrote, re-framed into datagrams of at most the MTU."""
        data = b""
        while True:
            try:
                data += self._conn.bio_read(65535)
            except SSL.WantReadError:
                break
        return pack_datagrams(split_records(data), self._mtu) if data else []
