"""The daemon's SecureContext from the DTLS keys (rtpvault.daemon._secure_context): the loaded or
generated certificate names the fingerprint, `dtls-mtu` / `dtls-ciphers` / `dtls-passive` reach
what each DTLS session is built from (relay.dtls.session.DtlsSession)."""

from __future__ import annotations

import datetime
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from relay.config import parse_args, settings_from_text
from relay.config.interfaces import Resolver
from relay.config.settings import Settings
from relay.dtls.cert import CertCipher, generate_certificate
from relay.dtls.session import DEFAULT_CIPHERS, DEFAULT_MTU
from rtpvault import daemon
from rtpvault.component import StartupError

BASE = "[rtpengine]\ninterface = lo/127.0.0.1\nlisten-ng = 127.0.0.1:2223\n"
NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)


def _settings(body: str = "") -> Settings:
    s, _ = settings_from_text(BASE + body, parse_args([]),
                              resolver=Resolver({"lo": ("127.0.0.1",)}))
    return s


def test_defaults_reach_the_context() -> None:
    ctx = daemon._secure_context(_settings())
    assert (ctx.dtls_mtu, ctx.dtls_ciphers, ctx.dtls_passive) == (DEFAULT_MTU, DEFAULT_CIPHERS,
                                                                  False)
    assert ctx.fingerprint("sha-256").startswith("sha-256 ")
    assert ctx.fingerprint("sha-1").startswith("sha-1 ")


def test_dtls_keys_reach_the_context() -> None:
    ctx = daemon._secure_context(_settings("dtls-mtu = 1400\ndtls-ciphers = HIGH:!aNULL\n"
                                           "dtls-passive = true\n"))
    assert (ctx.dtls_mtu, ctx.dtls_ciphers, ctx.dtls_passive) == (1400, "HIGH:!aNULL", True)


@pytest.mark.parametrize(("body", "key_type", "bits"),
                         [("", ec.EllipticCurvePrivateKey, 256),
                          ("dtls-cert-cipher = RSA\ndtls-rsa-key-size = 1024\n",
                           rsa.RSAPrivateKey, 1024)])
def test_generated_certificate_follows_the_cipher(body: str, key_type: type, bits: int) -> None:
    cert = daemon._certificate(_settings(body), random.Random(1))
    assert isinstance(cert.key, key_type) and cert.key.key_size == bits


def test_loaded_pair_names_the_fingerprint(tmp_path: Path) -> None:
    made = generate_certificate(NOW, 5, "file", CertCipher.RSA, 1024)
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_bytes(made.certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(made.key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    ctx = daemon._secure_context(_settings(f"tls-certificate = {cert}\ntls-private-key = {key}\n"))
    assert ctx.fingerprint("sha-256") == made.fingerprint("sha-256").render()
    key.write_text("not a key")
    with pytest.raises(StartupError, match=f"^config: key 'tls-private-key' value '{key}': not an"):
        daemon._secure_context(_settings(f"tls-certificate = {cert}\ntls-private-key = {key}\n"))


def test_expired_file_certificate_is_used_with_a_warning(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    old = generate_certificate(NOW - datetime.timedelta(days=400), 6, "old")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_bytes(old.certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(old.key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    with caplog.at_level("WARNING", logger="rtpvault.daemon"):
        ctx = daemon._secure_context(
            _settings(f"tls-certificate = {cert}\ntls-private-key = {key}\n"))
    assert ctx.fingerprint("sha-256") == old.fingerprint().render()
    assert [r.getMessage() for r in caplog.records] == [
        f"tls-certificate {cert} expired on 2025-12-01T12:00:00+00:00"]
