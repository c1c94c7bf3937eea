"""The DTLS keys as rtpengine 10.5 reads them (docs/spec/config.md §2.6, checked with
`rtpengine --help` and by starting 10.5.3.5 with each value, docs/spec/sdp.md §1.12b), and
rtpvault's `tls-certificate` / `tls-private-key` pair."""

from __future__ import annotations

import pytest

from relay.config import ConfigError, parse_args, settings_from_text
from relay.config.keys import BY_NAME
from relay.dtls.session import DEFAULT_CIPHERS, DEFAULT_MTU
from tests.unit.relay.test_config import BASE, RESOLVER, error, load

DTLS_KEYS = ("dtls-passive", "dtls-rsa-key-size", "dtls-cert-cipher", "dtls-mtu", "dtls-ciphers",
             "dtls-signature", "tls-certificate", "tls-private-key")


def test_defaults_are_rtpengines() -> None:
    s, warnings = load("")
    assert (s.dtls_passive, s.dtls_cert_cipher, s.dtls_rsa_key_size) == (False, "prime256v1", 2048)
    assert (s.dtls_signature, s.dtls_mtu, s.dtls_ciphers) == ("sha-256", DEFAULT_MTU,
                                                              DEFAULT_CIPHERS)
    assert (s.tls_certificate, s.tls_private_key) == (None, None)
    assert warnings == []


def test_every_dtls_key_is_implemented_and_set_quietly() -> None:
    assert all(BY_NAME[k].implemented for k in DTLS_KEYS)
    s, warnings = load("dtls-passive = true\ndtls-cert-cipher = RSA\ndtls-rsa-key-size = 3072\n"
                       "dtls-mtu = 1400\ndtls-ciphers = HIGH\ndtls-signature = SHA-1\n"
                       "tls-certificate = /c.pem\ntls-private-key = /k.pem\n")
    assert warnings == []
    assert (s.dtls_passive, s.dtls_cert_cipher, s.dtls_rsa_key_size) == (True, "RSA", 3072)
    assert (s.dtls_mtu, s.dtls_ciphers, s.dtls_signature) == (1400, "HIGH", "sha-1")
    assert (s.tls_certificate, s.tls_private_key) == ("/c.pem", "/k.pem")


@pytest.mark.parametrize(
    ("text", "cipher"),
    [("prime256v1", "prime256v1"), ("ec_prime256v1", "prime256v1"),
     ("ec-prime256v1", "prime256v1"), ("PRIME256V1", "prime256v1"), ("RSA", "RSA"),
     ("Rsa", "RSA"), ("rsa", "RSA")],
)
def test_cert_cipher_spellings_case_insensitive_as_rtpengine(text: str, cipher: str) -> None:
    assert load(f"dtls-cert-cipher = {text}\n")[0].dtls_cert_cipher == cipher


@pytest.mark.parametrize(
    ("text", "signature"),
    [("SHA-256", "sha-256"), ("sha256", "sha-256"), ("SHA-1", "sha-1"), ("sha1", "sha-1"),
     ("Sha-1", "sha-1")],
)
def test_signature_spellings_case_insensitive_as_rtpengine(text: str, signature: str) -> None:
    assert load(f"dtls-signature = {text}\n")[0].dtls_signature == signature


def test_bad_values_stop_the_start_naming_key_value_and_reason() -> None:
    assert error("dtls-cert-cipher = foo\n") == (
        "config: key 'dtls-cert-cipher' value 'foo': not prime256v1 or RSA (rtpengine: "
        "'Invalid --dtls-cert-cipher option')")
    assert error("dtls-signature = md5\n") == (
        "config: key 'dtls-signature' value 'md5': not SHA-256 or SHA-1 (rtpengine: "
        "'Invalid --dtls-signature option')")
    assert error("dtls-mtu = 575\n") == (
        "config: key 'dtls-mtu' value '575': below 576 (rtpengine: 'Invalid --dtls-mtu')")
    assert load("dtls-mtu = 576\n")[0].dtls_mtu == 576
    assert error("dtls-ciphers = garbage\n") == (
        "config: key 'dtls-ciphers' value 'garbage': OpenSSL finds no cipher in this list")
    assert error("dtls-cert-cipher = RSA\ndtls-rsa-key-size = 100\n") == (
        "config: key 'dtls-rsa-key-size' value '100': an RSA key needs at least 1024 bits")
    # the key size only matters for an RSA certificate (rtpengine ignores it otherwise too)
    assert load("dtls-rsa-key-size = 100\n")[0].dtls_rsa_key_size == 100


def test_command_line_errors_name_the_option() -> None:
    with pytest.raises(ConfigError, match="^command line: option '--dtls-mtu' value '100'"):
        settings_from_text(BASE, parse_args(["--dtls-mtu=100"]), resolver=RESOLVER)


def test_certificate_and_key_go_together() -> None:
    assert error("tls-certificate = /c.pem\n") == (
        "config: key 'tls-certificate' value '/c.pem': needs tls-private-key too (the "
        "certificate and its key, PEM)")
    assert error("tls-private-key = /k.pem\n") == (
        "config: key 'tls-private-key' value '/k.pem': needs tls-certificate too (the "
        "certificate and its key, PEM)")
