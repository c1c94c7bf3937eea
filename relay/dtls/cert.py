"""The DTLS certificate and the SDP lines that name it (RFC 8122 `a=fingerprint`, RFC 4145
`a=setup`), as rtpengine 10.5 writes and reads them (docs/spec/sdp.md §1.12b).

rtpengine 10.5 generates one self-signed certificate at start-up: X.509 v1 (no extensions), a
random 64-bit serial, ECDSA on prime256v1 signed with SHA-256 (`dtls-cert-cipher=RSA` switches to
an RSA key of `dtls-rsa-key-size` bits, `dtls-signature=SHA-1` signs with SHA-1), CN
`rtpengine-<version>`, valid from one day before start-up to 30 days after. rtpvault does the same
with its own name. Loading a PEM pair (`tls-certificate` / `tls-private-key`, rtpvault's keys:
10.5 has none) is also supported.

Rendering and parsing are pure; only `generate_certificate` draws randomness (the key).
"""

from __future__ import annotations

import datetime
import enum
import hmac
import re
import warnings
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
    "SIGNATURES",
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

MIN_RSA_BITS = 1024
"""Smallest `dtls-rsa-key-size` cryptography generates (rtpengine starts with less and then
logs `Failed to generate DTLS certificate` and has no DTLS at all; rtpvault refuses to start)."""

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


SIGNATURES = ("sha-256", "sha-1")
"""`dtls-signature` values (normalised): the generated certificate's signature hash."""


def generate_certificate(
    now: datetime.datetime,
    serial: int,
    common_name: str,
    cipher: CertCipher = CertCipher.PRIME256V1,
    rsa_key_size: int = 2048,
    signature: str = DEFAULT_HASH,
) -> DtlsCertificate:
    """A self-signed certificate as rtpengine 10.5 makes one at start-up (§1.12b).

    `serial` (64 random bits in rtpengine) and `now` come from the caller. `signature` is
    `dtls-signature` ("sha-256" or "sha-1"): the certificate's signature hash, not the
    fingerprint's (rtpengine's a=fingerprint stays sha-256 with either, measured). With SHA-256
    cryptography builds it (X.509 v3 without extensions: cryptography writes no v1; peers check
    the fingerprint, never the version). cryptography refuses to sign with SHA-1, so that one is
    OpenSSL's X509_sign through pyOpenSSL, as rtpengine signs it: X.509 v1, ecdsa-with-SHA1 or
    sha1WithRSAEncryption.
    """
    name = signature.lower()
    if name not in SIGNATURES:
        raise CertificateError(f"dtls-signature {signature!r}: expected SHA-256 or SHA-1")
    if cipher is CertCipher.RSA and rsa_key_size < MIN_RSA_BITS:
        raise CertificateError(
            f"dtls-rsa-key-size {rsa_key_size}: at least {MIN_RSA_BITS} bits")
    key: PrivateKey
    if cipher is CertCipher.RSA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_key_size)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    if name == "sha-1":
        return DtlsCertificate(_sign_sha1(key, now, serial, common_name), key)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - VALID_BEFORE)
        .not_valid_after(now + VALID_AFTER)
        .sign(key, hashes.SHA256())
    )
    return DtlsCertificate(cert, key)


def _sign_sha1(
    key: PrivateKey, now: datetime.datetime, serial: int, common_name: str
) -> x509.Certificate:
    """rtpengine's certificate signed with SHA-1 by OpenSSL (pyOpenSSL's X509 API, deprecated in
    favour of cryptography's builder, which has no SHA-1: the one way left without writing DER
    by hand)."""
    from OpenSSL import crypto  # only here: the rest of this module is cryptography's

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pkey = crypto.PKey.from_cryptography_key(key)
        cert = crypto.X509()
        cert.set_version(0)  # v1, no extensions, as rtpengine's
        cert.set_serial_number(serial)
        cert.get_subject().CN = common_name
        cert.set_issuer(cert.get_subject())
        cert.set_pubkey(pkey)
        stamp = "%Y%m%d%H%M%SZ"
        cert.set_notBefore((now - VALID_BEFORE).astimezone(datetime.UTC).strftime(stamp).encode())
        cert.set_notAfter((now + VALID_AFTER).astimezone(datetime.UTC).strftime(stamp).encode())
        cert.sign(pkey, "sha1")
        return cert.to_cryptography()


def load_certificate(cert_pem: bytes, key_pem: bytes) -> DtlsCertificate:
    """A PEM certificate and its PEM private key (unencrypted), checked to belong together.
    `CertificateError`'s message starts with the key it blames (`tls-certificate: ...`)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"tls-certificate: not a PEM certificate ({exc})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateError(
            f"tls-private-key: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError(
            f"tls-private-key: {type(key).__name__}, expected an EC or RSA key")
    if cert.public_key() != key.public_key():
        raise CertificateError("tls-private-key: not the key of tls-certificate")
    return DtlsCertificate(cert, key)
