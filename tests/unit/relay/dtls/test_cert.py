"""The certificate and its SDP lines as rtpengine 10.5 writes them (docs/spec/sdp.md §1.12b)."""

from __future__ import annotations

import datetime
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from relay.dtls import CertificateError, FingerprintError
from relay.dtls.cert import (
    HASHES,
    CertCipher,
    DtlsCertificate,
    Fingerprint,
    Setup,
    generate_certificate,
    load_certificate,
    parse_fingerprint,
    parse_setup,
)
from tests.unit.relay.dtls.conftest import NOW

RTPENGINE_LINES = {
    "sha-256": "sha-256 20:7F:C1:9F:ED:88:0C:87:32:09:B7:2E:DB:DC:39:8C:D4:05:4D:F8:EF:EB:EA:11"
               ":94:1F:76:0A:CC:74:30:AB",
    "sha-1": "sha-1 32:93:D2:05:3E:FB:0F:0E:1A:3C:A0:98:4D:F6:0F:CF:94:B3:32:42",
}  # fmt: skip
"""`a=fingerprint:` values captured from rtpengine 10.5 (§1.12b)."""


def test_fingerprint_renders_as_rtpengine_writes_it(cert_a: DtlsCertificate) -> None:
    for name, captured in RTPENGINE_LINES.items():
        shape = re.sub(r"[0-9A-F]{2}", "XX", captured)
        assert re.sub(r"[0-9A-F]{2}", "XX", cert_a.fingerprint(name).render()) == shape
        assert parse_fingerprint(captured).render() == captured
    der = cert_a.certificate.public_bytes(serialization.Encoding.DER)
    assert cert_a.fingerprint().digest == cert_a.certificate.fingerprint(hashes.SHA256())
    assert cert_a.fingerprint().matches(der) and not cert_a.fingerprint().matches(der + b"x")


@given(name=st.sampled_from(sorted(HASHES)), data=st.data(), lower=st.booleans())
def test_fingerprint_parse_round_trips(name: str, data: st.DataObject, lower: bool) -> None:
    digest = data.draw(st.binary(min_size=HASHES[name]().digest_size,
                                 max_size=HASHES[name]().digest_size))  # fmt: skip
    fp = Fingerprint(name, digest)
    text = fp.render()
    assert parse_fingerprint(text.lower() if lower else text.upper()) == fp


@given(st.text(max_size=200))
def test_fingerprint_parse_of_anything_is_a_value_or_our_error(text: str) -> None:
    try:
        fp = parse_fingerprint(text)
    except FingerprintError:
        return
    assert parse_fingerprint(fp.render()) == fp


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("md5 AB:CD", "hash 'md5': expected one of"),
        ("sha-256 AB:CD", "sha-256: 2 bytes, expected 32"),
        ("sha-256", "expected '<hash> XX:XX:…'"),
        ("sha-256 ABCD", "expected '<hash> XX:XX:…'"),
    ],
)
def test_bad_fingerprints_name_the_problem(value: str, message: str) -> None:
    with pytest.raises(FingerprintError, match=re.escape(message)):
        parse_fingerprint(value)


def test_setup_values() -> None:
    assert [parse_setup(v) for v in ("actpass", "Active", " passive ", "holdconn")] == [
        Setup.ACTPASS, Setup.ACTIVE, Setup.PASSIVE, Setup.HOLDCONN]
    with pytest.raises(FingerprintError, match="expected active, passive, actpass or holdconn"):
        parse_setup("both")


def test_generated_certificate_is_rtpengines_kind(cert_a: DtlsCertificate) -> None:
    cert = cert_a.certificate
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert cert.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert cert.subject.rfc4514_string() == cert.issuer.rfc4514_string() == "CN=rtpvault-test-a"
    assert cert.not_valid_before_utc == NOW - datetime.timedelta(days=1)
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=30)
    assert len(cert.extensions) == 0 and cert.serial_number == 0x1111
    assert "PRIVATE" not in repr(cert_a) and "key=" not in repr(cert_a)


def test_rsa_certificate_and_bad_choices() -> None:
    cert = generate_certificate(NOW, 7, "r", cipher=CertCipher.RSA, rsa_key_size=1024)
    key = cert.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 1024
    assert cert.certificate.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
    with pytest.raises(CertificateError, match="expected SHA-256 or SHA-1"):
        generate_certificate(NOW, 7, "r", signature="md5")
    with pytest.raises(CertificateError, match="at least 1024 bits"):
        generate_certificate(NOW, 7, "r", cipher=CertCipher.RSA, rsa_key_size=512)


@pytest.mark.parametrize(
    ("cipher", "oid"),
    [(CertCipher.PRIME256V1, x509.SignatureAlgorithmOID.ECDSA_WITH_SHA1),
     (CertCipher.RSA, x509.SignatureAlgorithmOID.RSA_WITH_SHA1)],
)
def test_sha1_signature_is_rtpengines_v1_certificate(
    cipher: CertCipher, oid: x509.ObjectIdentifier
) -> None:
    """`dtls-signature=SHA-1`: rtpengine 10.5 then writes an X.509 v1 certificate signed
    ecdsa-with-SHA1 (read with openssl from its log dump, docs/spec/sdp.md §1.12b)."""
    made = generate_certificate(NOW, 0x2222, "rtpvault", cipher=cipher, rsa_key_size=1024,
                                signature="SHA-1")
    cert = made.certificate
    assert cert.signature_algorithm_oid == oid and cert.version == x509.Version.v1
    assert cert.subject.rfc4514_string() == cert.issuer.rfc4514_string() == "CN=rtpvault"
    assert cert.serial_number == 0x2222 and len(cert.extensions) == 0
    assert cert.not_valid_before_utc == NOW - datetime.timedelta(days=1)
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=30)
    assert cert.public_key() == made.key.public_key()
    assert made.fingerprint().hash_name == "sha-256"  # the fingerprint keeps its hash


def _pem(cert: DtlsCertificate) -> tuple[bytes, bytes]:
    return (cert.certificate.public_bytes(serialization.Encoding.PEM),
            cert.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))  # fmt: skip


def test_pem_pair_loads_and_keeps_its_fingerprint(cert_a: DtlsCertificate) -> None:
    loaded = load_certificate(*_pem(cert_a))
    assert loaded.fingerprint() == cert_a.fingerprint()


def test_bad_pem_and_foreign_key_are_refused(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate
) -> None:
    cert_pem, _ = _pem(cert_a)
    _, other_key = _pem(cert_b)
    with pytest.raises(CertificateError, match="^tls-private-key: not the key of tls-certificate"):
        load_certificate(cert_pem, other_key)
    with pytest.raises(CertificateError, match="^tls-certificate: not a PEM certificate"):
        load_certificate(b"-----BEGIN CERTIFICATE-----\nxx\n", other_key)
    with pytest.raises(CertificateError, match="^tls-private-key: not an unencrypted PEM"):
        load_certificate(cert_pem, cert_pem)
