"""A DTLS server whose peer's a=fingerprint comes after the handshake (we offered actpass, the
browser's ClientHello beat its answer): keys only once the fingerprint is known and matches
(relay.dtls.session `set_remote_fingerprint`, RFC 5763 §5; docs/spec/sdp.md §1.12b)."""

from __future__ import annotations

import pytest

from relay.dtls import FingerprintMismatch
from relay.dtls.cert import DtlsCertificate
from relay.dtls.session import DtlsSession, Role, State
from tests.unit.relay.dtls.test_session import run


def test_keys_held_back_until_the_matching_fingerprint_arrives(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate
) -> None:
    client = DtlsSession(cert_a, Role.CLIENT, cert_b.fingerprint())
    server = DtlsSession(cert_b, Role.SERVER, None)
    run(client, server)
    assert client.state is server.state is State.CONNECTED
    assert client.keys is not None and server.keys is None
    server.set_remote_fingerprint(cert_a.fingerprint("sha-1"))
    assert server.keys is not None
    assert server.keys.remote(Role.SERVER) == client.keys.local(Role.CLIENT)


def test_a_late_fingerprint_that_does_not_match_fails_without_keys(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate
) -> None:
    client = DtlsSession(cert_a, Role.CLIENT, cert_b.fingerprint())
    server = DtlsSession(cert_b, Role.SERVER, None)
    run(client, server)
    with pytest.raises(FingerprintMismatch):
        server.set_remote_fingerprint(cert_b.fingerprint())
    assert server.state is State.FAILED and server.keys is None


def test_a_fingerprint_known_before_the_handshake_ends_is_checked_there(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate
) -> None:
    client = DtlsSession(cert_a, Role.CLIENT, cert_b.fingerprint())
    server = DtlsSession(cert_b, Role.SERVER, None)
    server.set_remote_fingerprint(cert_b.fingerprint())  # wrong one, before any datagram
    with pytest.raises(FingerprintMismatch):
        run(client, server)
    assert server.keys is None
