"""The DTLS certificate and the SDP lines that name it (RFC 8122 `a=fingerprint`, RFC 4145
`a=setup`), as rtpengine 10.5 writes and reads them (docs/spec/sdp.md §1.12b).

rtpengine 10.5 generates one self-signed certificate at start-up: X.509 v1 (no extensions), a
random 64-bit serial, ECDSA on prime256v1 signed with SHA-256 (`dtls-cert-cipher=RSA` switches to
an RSA key of `dtls-rsa-key-size` bits), CN `rtpengine-<version>`, valid from one day before
start-up to 30 days after. rtpvault does the same with its own name. Loading a PEM pair
(`tls-certificate` / `tls-private-key`, rtpvault's keys: 10.5 has none) is also supported.

Rendering and parsing are pure; only `generate_certificate` draws randomness (the key).
"""

from __future__ import annotations

import datetime
import enum
import hmac
import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from relay.dtls import CertificateError, FingerprintError

__all__ = [
    "HASHES",
    "DEFAULT_HASH",
    "Fingerprint",
    "Setup",
    "DtlsCertificate",
    "CertCipher",
    "generate_certificate",
    "load_certificate",
    "parse_fingerprint",
    "parse_setup",
]

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-1": hashes.SHA1,
    "sha-224": hashes.SHA224,
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}
"""RFC 8122 §5 hash names (the IANA "Hash Function Textual Names") → algorithm. The ones
rtpengine 10.5 writes for `DTLS-fingerprint=` (§1.12b); md5/md2 are refused (RFC 8122 §5)."""

DEFAULT_HASH = "sha-256"
"""What rtpengine writes without `DTLS-fingerprint` (`dtls-signature` does not change it)."""

VALID_BEFORE = datetime.timedelta(days=1)
VALID_AFTER = datetime.timedelta(days=30)
"""rtpengine 10.5's generated certificate: not before start-up - 1 day, not after + 30 days."""

_FINGERPRINT = re.compile(r"([A-Za-z0-9-]+) +((?:[0-9A-Fa-f]{2}:)*[0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One `a=fingerprint` value: hash name (lower case) and digest bytes."""

    hash_name: str
    digest: bytes

    def render(self) -> str:
        """`sha-256 AB:CD:…`, upper-case hex pairs, as rtpengine writes after `a=fingerprint:`."""
        return f"{self.hash_name} {self.digest.hex(':').upper()}"

    def matches(self, der: bytes) -> bool:
        """Does the DER certificate `der` hash to this digest? Constant-time compare."""
        return hmac.compare_digest(digest_of(der, self.hash_name), self.digest)


class Setup(enum.Enum):
    """RFC 4145 §4 `a=setup` values."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ACTPASS = "actpass"
    HOLDCONN = "holdconn"


def digest_of(der: bytes, hash_name: str) -> bytes:
    """The `hash_name` digest of a DER certificate (RFC 8122 §5)."""
    algorithm = HASHES.get(hash_name.lower())
    if algorithm is None:
        raise FingerprintError(f"fingerprint hash {hash_name!r}: expected one of {sorted(HASHES)}")
    h = hashes.Hash(algorithm())
    h.update(der)
    return h.finalize()


def parse_fingerprint(value: str) -> Fingerprint:
    """The value of a peer's `a=fingerprint:` line (RFC 8122 §5), hash name case-insensitive."""
    m = _FINGERPRINT.fullmatch(value.strip())
    if m is None:
        raise FingerprintError(
            f"a=fingerprint {value[:120]!r}: expected '<hash> XX:XX:…' (RFC 8122 §5)")
    name = m[1].lower()
    algorithm = HASHES.get(name)
    if algorithm is None:
        raise FingerprintError(f"a=fingerprint hash {m[1]!r}: expected one of {sorted(HASHES)}")
    digest = bytes.fromhex(m[2].replace(":", ""))
    if len(digest) != algorithm().digest_size:
        raise FingerprintError(
            f"a=fingerprint {name}: {len(digest)} bytes, expected {algorithm().digest_size}")
    return Fingerprint(name, digest)


def parse_setup(value: str) -> Setup:
    """The value of an `a=setup:` line (RFC 4145 §4), case-insensitive."""
    try:
        return Setup(value.strip().lower())
    except ValueError:
        raise FingerprintError(
            f"a=setup {value[:40]!r}: expected active, passive, actpass or holdconn") from None


class CertCipher(enum.Enum):
    """rtpengine's `dtls-cert-cipher`: the generated key's type (default prime256v1)."""

    PRIME256V1 = "prime256v1"
    RSA = "RSA"


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class DtlsCertificate:
    """The daemon's certificate and key; `repr` never shows the key."""

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)

    @property
    def der(self) -> bytes:
        """The certificate's DER bytes, which the fingerprint hashes."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def fingerprint(self, hash_name: str = DEFAULT_HASH) -> Fingerprint:
        """This certificate's `a=fingerprint` value for `hash_name` (RFC 8122 §5)."""
        return Fingerprint(hash_name.lower(), digest_of(self.der, hash_name))


def generate_certificate(
    now: datetime.datetime,
    serial: int,
    common_name: str,
    cipher: CertCipher = CertCipher.PRIME256V1,
    rsa_key_size: int = 2048,
    signature: str = DEFAULT_HASH,
) -> DtlsCertificate:
    """A self-signed X.509 v1 certificate as rtpengine 10.5 makes one at start-up (§1.12b).

    `serial` (64 random bits in rtpengine) and `now` come from the caller. `signature` is
    `dtls-signature`: the certificate's signature hash, not the fingerprint's. Only SHA-256:
    cryptography refuses to sign with SHA-1, so rtpengine's `dtls-signature=SHA-1` is refused.
    cryptography writes v3 certificates only; the absence of extensions is what makes rtpengine's
    v1 certificate distinctive, and it is kept. Peers check the fingerprint, never the version.
    """
    if signature.lower() != "sha-256":
        raise CertificateError(f"dtls-signature {signature!r}: only SHA-256 is supported "
                               "(cryptography does not sign with SHA-1)")
    key: PrivateKey
    if cipher is CertCipher.RSA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_key_size)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - VALID_BEFORE)
        .not_valid_after(now + VALID_AFTER)
        .sign(key, hashes.SHA256())
    )
    return DtlsCertificate(cert, key)


def load_certificate(cert_pem: bytes, key_pem: bytes) -> DtlsCertificate:
    """A PEM certificate and its PEM private key (unencrypted), checked to belong together."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"tls-certificate/tls-private-key: not usable PEM ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError(
            f"tls-private-key: {type(key).__name__}, expected an EC or RSA key")
    if cert.public_key() != key.public_key():
        raise CertificateError("tls-private-key does not belong to tls-certificate")
    return DtlsCertificate(cert, key)
