"""Certificates for the DTLS tests: generated once per session (EC key generation is cheap,
but the hypothesis tests build many sessions)."""

from __future__ import annotations

import datetime

import pytest

from relay.dtls.cert import DtlsCertificate, generate_certificate

NOW = datetime.datetime(2026, 12, 6, 17, 51, 31, tzinfo=datetime.UTC)


@pytest.fixture(scope="session")
def cert_a() -> DtlsCertificate:
    return generate_certificate(NOW, 0x1111, "rtpvault-test-a")


@pytest.fixture(scope="session")
def cert_b() -> DtlsCertificate:
    return generate_certificate(NOW, 0x2222, "rtpvault-test-b")
