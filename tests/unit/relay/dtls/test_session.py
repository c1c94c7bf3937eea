"""Two of our DTLS endpoints in memory (RFC 5764): keys, fingerprints, garbage, timers, close."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.dtls import (
    DtlsError,
    DtlsGarbage,
    FingerprintMismatch,
    HandshakeTimeout,
)
from relay.dtls.cert import DtlsCertificate, Fingerprint
from relay.dtls.session import (
    PROFILES,
    DtlsSession,
    Role,
    SrtpKeys,
    SrtpProfile,
    State,
)


def pair(a: DtlsCertificate, b: DtlsCertificate, **kw: object) -> tuple[DtlsSession, DtlsSession]:
    client = DtlsSession(a, Role.CLIENT, b.fingerprint(), **kw)  # type: ignore[arg-type]
    server = DtlsSession(b, Role.SERVER, a.fingerprint(), **kw)  # type: ignore[arg-type]
    return client, server


def deliver(datagrams: list[bytes], to: DtlsSession, now: float = 0.0) -> list[bytes]:
    out: list[bytes] = []
    for d in datagrams:
        out += to.receive(d, now)
    return out


def run(client: DtlsSession, server: DtlsSession, now: float = 0.0) -> None:
    """Ping-pong every flight until both sides are quiet."""
    out = client.start(now)
    for _ in range(10):
        back = deliver(out, server, now)
        out = deliver(back, client, now)
        if not out and not back:
            return


def test_two_endpoints_derive_equal_keys(cert_a: DtlsCertificate, cert_b: DtlsCertificate) -> None:
    client, server = pair(cert_a, cert_b)
    run(client, server)
    assert client.state is server.state is State.CONNECTED
    assert client.keys is not None and server.keys is not None
    assert client.keys.profile == PROFILES[0]  # rtpengine's first choice: AEAD_AES_256_GCM
    assert client.keys.local(Role.CLIENT) == server.keys.remote(Role.SERVER)
    assert server.keys.local(Role.SERVER) == client.keys.remote(Role.CLIENT)
    assert client.keys.local(Role.CLIENT) != client.keys.local(Role.SERVER)
    assert len(client.keys.local(Role.CLIENT)) == 32 + 12
    assert client.next_timeout() is None and server.next_timeout() is None


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.openssl_name)
def test_each_profile_gives_its_key_and_salt_sizes(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate, profile: SrtpProfile
) -> None:
    client = DtlsSession(cert_a, Role.CLIENT, cert_b.fingerprint(), profiles=(profile,))
    server = DtlsSession(cert_b, Role.SERVER, cert_a.fingerprint())
    run(client, server)
    assert client.keys is not None and server.keys is not None
    assert client.keys.profile == server.keys.profile == profile
    assert len(server.keys.remote(Role.SERVER)) == profile.key_len + profile.salt_len
    assert client.keys.local(Role.CLIENT) == server.keys.remote(Role.SERVER)


def test_keys_split_as_rfc5764_lays_them_out() -> None:
    profile = PROFILES[2]  # AES128_CM_SHA1_80: 16 + 14
    material = bytes(range(60))
    keys = SrtpKeys.from_material(profile, material)
    assert keys.client_key == material[0:16] and keys.server_key == material[16:32]
    assert keys.client_salt == material[32:46] and keys.server_salt == material[46:60]
    assert "client_key" not in repr(keys) and material[:16].hex() not in repr(keys)


@pytest.mark.parametrize("liar", [Role.CLIENT, Role.SERVER])
def test_a_certificate_not_matching_the_fingerprint_fails_without_keys(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate, liar: Role
) -> None:
    wrong = Fingerprint("sha-256", bytes(32))
    fp_b = wrong if liar is Role.SERVER else cert_b.fingerprint()
    fp_a = wrong if liar is Role.CLIENT else cert_a.fingerprint()
    client = DtlsSession(cert_a, Role.CLIENT, fp_b)
    server = DtlsSession(cert_b, Role.SERVER, fp_a)
    checker = client if liar is Role.SERVER else server
    with pytest.raises(FingerprintMismatch, match="does not match a=fingerprint sha-256") as err:
        run(client, server)
    assert checker.state is State.FAILED and checker.keys is None
    assert err.value.outgoing and err.value.outgoing[0][0] == 21  # an alert record for the peer
    with pytest.raises(DtlsError):
        checker.receive(b"\x16\xfe\xfd" + bytes(20), 1.0)


def test_garbage_is_dropped_with_a_typed_error_and_the_handshake_goes_on(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate
) -> None:
    client, server = pair(cert_a, cert_b)
    hello = client.start(0.0)
    for junk in (b"", b"\x80\x00" + bytes(30), b"\x16\xfe", b"\x16\x03\x01" + bytes(40)):
        with pytest.raises(DtlsGarbage):
            server.receive(junk, 0.0)
    back = deliver(hello, server)
    with pytest.raises(DtlsGarbage):
        client.receive(b"\x00\x01\x00\x00" + bytes(16), 0.0)  # a STUN header
    out = deliver(back, client)
    deliver(deliver(out, server), client)
    assert client.state is server.state is State.CONNECTED


def test_a_client_drops_a_clienthello_from_a_peer_that_is_still_a_client(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate
) -> None:
    client, server = pair(cert_a, cert_b)
    other = DtlsSession(cert_b, Role.CLIENT, cert_a.fingerprint())
    hello = client.start(0.0)
    with pytest.raises(DtlsGarbage, match="ClientHello received by the DTLS client"):
        client.receive(other.start(0.0)[0], 0.0)
    out = deliver(deliver(hello, server), client)
    deliver(deliver(out, server), client)
    assert client.state is server.state is State.CONNECTED


@settings(max_examples=150, deadline=None)
@given(junk=st.lists(st.binary(max_size=200), max_size=4),
       header=st.sampled_from([b"", b"\x16\xfe\xfd", b"\x15\xfe\xff", b"\x17\xfe\xfd\x00\x01"]))
def test_arbitrary_datagrams_raise_only_dtls_errors(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate, junk: list[bytes], header: bytes
) -> None:
    client, server = pair(cert_a, cert_b)
    for session in (server, client):
        for data in junk:
            try:
                session.receive(header + data, 0.0)
            except DtlsError:
                pass


def test_a_lost_flight_is_retransmitted_on_the_callers_clock(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate
) -> None:
    client, server = pair(cert_a, cert_b)
    hello = client.start(100.0)
    assert client.next_timeout() == 101.0
    assert client.handle_timeout(100.5) == []
    flight = deliver(hello, server, 100.0)  # the server's flight is lost on the way
    assert server.next_timeout() == 101.0
    again = server.handle_timeout(101.0)
    assert again and server.next_timeout() == 103.0  # 1 s, then doubled (RFC 6347 §4.2.4.1)
    assert [d[0] for d in again] == [d[0] for d in flight]
    out = deliver(again, client, 101.0)
    deliver(deliver(out, server, 101.0), client, 101.0)
    assert client.state is server.state is State.CONNECTED
    assert client.keys is not None and server.keys is not None
    assert client.keys.local(Role.CLIENT) == server.keys.remote(Role.SERVER)


def test_a_handshake_that_never_completes_times_out(
    cert_a: DtlsCertificate, cert_b: DtlsCertificate
) -> None:
    client = DtlsSession(cert_a, Role.CLIENT, cert_b.fingerprint(), handshake_timeout=10.0)
    client.start(0.0)
    now, sent = 0.0, 0
    while (due := client.next_timeout()) is not None and due < 10.0:
        now = due
        sent += len(client.handle_timeout(now))
    assert sent >= 3  # retransmitted at 1, 3, 7 s
    with pytest.raises(HandshakeTimeout, match="not complete after 10.0s"):
        client.handle_timeout(10.0)
    assert client.state is State.FAILED and client.keys is None and client.next_timeout() is None


def test_close_notify_closes_the_peer(cert_a: DtlsCertificate, cert_b: DtlsCertificate) -> None:
    client, server = pair(cert_a, cert_b)
    run(client, server)
    bye = client.close()
    assert bye and bye[0][0] == 21 and client.state is State.CLOSED
    deliver(bye, server)
    assert server.state is State.CLOSED and server.peer_closed
    assert server.close() == []


@pytest.mark.parametrize(("cipher", "bits", "signature"),
                         [("RSA", 1024, "SHA-1"), ("RSA", 1024, "SHA-256"),
                          ("prime256v1", 2048, "SHA-1")])  # fmt: skip
def test_weak_configured_certificates_still_handshake(
    cert_b: DtlsCertificate, cipher: str, bits: int, signature: str
) -> None:
    """`dtls-rsa-key-size=1024`, `dtls-signature=SHA-1`: below OpenSSL's default security level
    (Debian's 2: "ee key too small"), chosen by the operator, and accepted by rtpengine 10.5's
    config; before, building the session raised out of the offer (an internal error reply)."""
    import datetime

    from relay.dtls.cert import CertCipher, generate_certificate

    weak = generate_certificate(datetime.datetime.now(datetime.UTC), 7, "weak",
                                CertCipher(cipher), bits, signature)  # fmt: skip
    client, server = pair(weak, cert_b)
    run(client, server)
    assert client.state is server.state is State.CONNECTED
    assert client.keys is not None and server.keys is not None
    assert client.keys.local(Role.CLIENT) == server.keys.remote(Role.SERVER)
