"""Hypothesis: arbitrary datagrams in every RFC 7983 range, fed to a stream with ICE, DTLS-SRTP
and (after a real handshake would give them) SRTP keys, and to the plain stream facing it:
each is dropped and counted or forwarded, nothing ever raises, and nothing reaches the tap but
authenticated media."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.dtls.cert import generate_certificate, parse_fingerprint
from relay.dtls.session import DtlsSession, Role
from relay.ice import IceAgent, LocalSocket
from relay.media.secure import attach_dtls, attach_ice
from relay.media.secure.reader import handle
from tests.unit.relay.dtls.conftest import NOW
from tests.unit.relay.media.secure_rig import SecureRig, transport

FIRST_BYTES = st.sampled_from([0, 1, 3, 17, 20, 22, 23, 63, 64, 100, 128, 0x81, 191, 200, 255])
DATAGRAMS = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda b, rest: bytes([b]) + rest, FIRST_BYTES, st.binary(max_size=200)),
    # STUN-shaped: type, length, magic cookie, transaction id, then anything
    st.builds(lambda rest: b"\x00\x01\x00\x08\x21\x12\xa4\x42" + rest, st.binary(max_size=60)),
    # DTLS-shaped: handshake record header, DTLS 1.2, then anything
    st.builds(lambda rest: b"\x16\xfe\xfd" + rest, st.binary(max_size=120)),
)


def test_arbitrary_datagrams_on_an_ice_dtls_stream_never_raise() -> None:
    loop = asyncio.new_event_loop()
    rig = SecureRig(loop)
    cert = generate_certificate(NOW, 0x6666, "rtpvault-fuzz")
    sockets = [LocalSocket(1, rig.addr(rig.y.sock), 1, 1)]
    agent = IceAgent(ufrag="fuzz", pwd="fuzzpassword0123456789ab", controlling=False,
                     tie_breaker=5, sockets=sockets)  # fmt: skip
    attach_ice(rig.y, agent, 1)
    attach_dtls(rig.y, DtlsSession(cert, Role.SERVER, parse_fingerprint(
        cert.fingerprint().render())))  # fmt: skip
    rig.start()
    src_b, src_a = rig.addr(rig.b), rig.addr(rig.a)

    @settings(max_examples=400, deadline=None)
    @given(data=DATAGRAMS)
    def feed(data: bytes) -> None:
        handle(rig.y, data, src_b, loop, lambda: 200.0, 0.0)
        handle(rig.x, data, src_a, loop, lambda: 200.0, 0.0)

    try:
        feed()
        t = transport(rig.y)
        assert rig.taps["y"] == []  # no key, no selected pair: nothing authenticated arrived
        assert rig.y.packets == 0
        assert t.srtp_out is None
    finally:
        rig.close()
        loop.close()
