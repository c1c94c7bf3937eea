"""Plain party A ↔ plane ↔ SDES party B over loopback; B's SRTP is pylibsrtp used directly (an
independent libsrtp session), ours is relay.srtp through the secure transport."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.formats import FORMATS
from relay.media.secure import Transport, attach_dtls, attach_sdes, detach, drop_counts
from relay.media.secure.reader import handle
from relay.srtp import open_context, suite
from tests.support.tools import require
from tests.unit.relay.media.secure_rig import WALL, SecureRig, rtcp_rr, rtp

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


class SdesPeer:
    """Party B's SRTP: `tx` protects what B sends, `rx` unprotects what B gets (pylibsrtp)."""

    def __init__(self, name: str, b_key: bytes, relay_key: bytes) -> None:
        profile = PROFILES[name]
        self.tx = pylibsrtp.Session(pylibsrtp.Policy(
            key=b_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        self.rx = pylibsrtp.Session(pylibsrtp.Policy(
            key=relay_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=profile))  # fmt: skip


@pytest.fixture(params=[(n, lib) for n in PROFILES for lib in (True, False)
                        if lib or n == "AES_CM_128_HMAC_SHA1_80"],
                ids=lambda p: f"{p[0]}-{'libsrtp' if p[1] else 'native'}")  # fmt: skip
def sdes(request: pytest.FixtureRequest) -> Iterator[tuple[SecureRig, SdesPeer]]:
    name, use_libsrtp = request.param
    s = suite(name)
    b_key, relay_key = os.urandom(s.inline_len), os.urandom(s.inline_len)
    loop = asyncio.new_event_loop()
    rig = SecureRig(loop)
    attach_sdes(rig.y, open_context(s, b_key, outbound=False, use_libsrtp=use_libsrtp),
                open_context(s, relay_key, outbound=True, use_libsrtp=use_libsrtp))  # fmt: skip
    rig.start()
    yield rig, SdesPeer(name, b_key, relay_key)
    rig.close()
    loop.close()


def run(rig: SecureRig, coro: object) -> None:
    rig.loop.run_until_complete(coro)  # type: ignore[arg-type]


def test_payloads_and_rtcp_arrive_intact_both_ways(sdes: tuple[SecureRig, SdesPeer]) -> None:
    rig, peer = sdes

    async def scenario() -> None:
        for seq in range(1, 6):
            rig.a.sendto(rtp(seq, b"from-A %d" % seq * 10), rig.addr(rig.x.sock))
            wire = await rig.recv(rig.b)
            assert b"from-A" not in wire  # encrypted on B's leg
            assert peer.rx.unprotect(wire) == rtp(seq, b"from-A %d" % seq * 10)
            sent = rtp(seq, b"from-B %d" % seq * 10, ssrc=0x55667788)
            rig.b.sendto(peer.tx.protect(sent), rig.addr(rig.y.sock))
            assert await rig.recv(rig.a) == sent
        rig.a.sendto(rtcp_rr(), rig.addr(rig.x.sock))
        assert peer.rx.unprotect_rtcp(await rig.recv(rig.b)) == rtcp_rr()
        rig.b.sendto(peer.tx.protect_rtcp(rtcp_rr(0x55667788)), rig.addr(rig.y.sock))
        assert await rig.recv(rig.a) == rtcp_rr(0x55667788)

    run(rig, scenario())
    assert rig.y.packets == 6 and rig.x.packets == 6
    assert rig.y.ssrc == 0x55667788
    t = rig.y.transport
    assert t is not None and t.suite is not None
    assert (t.srtp_auth_failures, t.srtp_replays, t.srtp_errors) == (0, 0, 0)


def test_tampered_and_replayed_srtp_is_dropped_and_counted(
    sdes: tuple[SecureRig, SdesPeer], caplog: pytest.LogCaptureFixture
) -> None:
    rig, peer = sdes
    dest = rig.addr(rig.y.sock)

    async def scenario() -> None:
        first = peer.tx.protect(rtp(1, b"first"))
        rig.b.sendto(first, dest)
        assert await rig.recv(rig.a) == rtp(1, b"first")
        for seq in (2, 3):
            bad = bytearray(peer.tx.protect(rtp(seq, b"tampered")))
            bad[20] ^= 0x01  # one payload bit
            rig.b.sendto(bytes(bad), dest)
        rig.b.sendto(first, dest)  # replay
        srtcp = bytearray(peer.tx.protect_rtcp(rtcp_rr()))
        srtcp[-1] ^= 0x80  # SRTCP with a wrong tag
        rig.b.sendto(bytes(srtcp), dest)
        rig.b.sendto(b"\x80\x00\x00", dest)  # shorter than any SRTP packet
        rig.b.sendto(peer.tx.protect(rtp(4, b"good again")), dest)
        # loopback keeps order: had anything bad been forwarded, it would arrive first
        assert await rig.recv(rig.a) == rtp(4, b"good again")

    run(rig, scenario())
    t = rig.y.transport
    assert t is not None
    assert t.srtp_auth_failures == 3  # two tampered packets, the SRTCP with a wrong tag
    assert t.srtp_replays == 1
    assert t.srtp_errors == 1
    assert rig.y.packets == 2
    assert rig.y.errors == 3 + 1 + 1  # every drop, as rtpengine (docs/spec/ng-protocol.md §4.4)
    assert rig.taps["y"] == [rtp(1, b"first"), rtp(4, b"good again")]
    lines = [r.getMessage() for r in caplog.records if r.name == "rtpvault.media.secure"]
    assert sum("authentication failed" in m for m in lines) == 1  # once per call and cause
    assert sum("replayed" in m for m in lines) == 1
    # the counts by cause survive detaching (docs/spec/metrics.md §4.1: kept, not lost)
    detach(rig.y)
    assert dict(drop_counts(rig.y)) | {"srtp_auth": 3, "srtp_replay": 1, "srtp_error": 1} == dict(
        drop_counts(rig.y))  # fmt: skip
    assert sum(n for _, n in drop_counts(rig.y)) == 5


def test_recording_taps_see_plaintext_rtp_and_rtcp_only(sdes: tuple[SecureRig, SdesPeer]) -> None:
    rig, peer = sdes
    dest = rig.addr(rig.y.sock)

    async def scenario() -> None:
        rig.b.sendto(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), dest)  # STUN, no ICE here
        rig.b.sendto(b"\x16\xfe\xfd" + bytes(20), dest)  # DTLS, none attached
        rig.b.sendto(b"\x40garbage", dest)  # TURN channel range: unknown
        rig.b.sendto(peer.tx.protect(rtp(1, b"secret words")), dest)
        rig.b.sendto(peer.tx.protect_rtcp(rtcp_rr(0x99)), dest)
        rig.a.sendto(rtp(7, b"plain words"), rig.addr(rig.x.sock))
        assert await rig.recv(rig.a) == rtp(1, b"secret words")
        assert await rig.recv(rig.a) == rtcp_rr(0x99)
        await rig.recv(rig.b)

    run(rig, scenario())
    assert rig.taps["y"] == [rtp(1, b"secret words"), rtcp_rr(0x99)]
    assert rig.taps["x"] == [rtp(7, b"plain words")]
    t = rig.y.transport
    # each dropped datagram counts in the stream's errors, as rtpengine counts it
    # (docs/spec/ng-protocol.md §4.4)
    assert t is not None and (t.stun_bad, t.dtls_errors, rig.y.errors) == (1, 1, 3)


def test_no_plaintext_leaves_towards_a_leg_without_keys() -> None:
    """A DTLS leg before the handshake: A's media is dropped and counted, never sent in clear."""
    loop = asyncio.new_event_loop()
    rig = SecureRig(loop)
    try:
        from relay.dtls.cert import generate_certificate, parse_fingerprint
        from relay.dtls.session import DtlsSession, Role
        from tests.unit.relay.dtls.conftest import NOW

        cert = generate_certificate(NOW, 0x33, "rtpvault-test")
        session = DtlsSession(cert, Role.SERVER, parse_fingerprint(cert.fingerprint().render()))
        attach_dtls(rig.y, session)
        rig.start()

        async def scenario() -> None:
            for seq in range(3):
                rig.a.sendto(rtp(seq, b"must not leak"), rig.addr(rig.x.sock))
            t = rig.y.transport
            assert t is not None
            await rig.until(lambda: t.no_keys == 3)
            rig.b.sendto(rtp(9, b"plain from B"), rig.addr(rig.y.sock))
            await rig.until(lambda: t.no_keys == 4)  # nor is plaintext accepted from that leg

        run(rig, scenario())
        rig.b.setblocking(False)
        with pytest.raises(BlockingIOError):
            rig.b.recv(2048)
        assert rig.taps["x"] == [rtp(s, b"must not leak") for s in range(3)]
        assert rig.x.packets == 3 and rig.y.packets == 0
    finally:
        rig.close()
        loop.close()


@pytest.mark.parametrize("coalesce", [0.0, 0.001], ids=["per-socket", "coalesce"])
def test_attaching_later_switches_both_readers_and_detaching_back(coalesce: float) -> None:
    loop = asyncio.new_event_loop()
    rig = SecureRig(loop, coalesce)
    rig.start()
    s = suite("AES_CM_128_HMAC_SHA1_80")
    key = os.urandom(s.inline_len)
    try:
        assert not rig.plane._secure
        attach_sdes(rig.y, open_context(s, key, outbound=False),
                    open_context(s, key, outbound=True))  # fmt: skip
        rig.plane.update(rig.y)
        assert rig.plane._secure == {rig.x, rig.y}  # y's leg and x, whose sink it is

        async def one() -> bytes:
            rig.a.sendto(rtp(1, b"now encrypted"), rig.addr(rig.x.sock))
            return await rig.recv(rig.b)

        loop.run_until_complete(one())
        detach(rig.y)
        rig.plane.update(rig.y)
        assert not rig.plane._secure
        rig.a.sendto(rtp(2, b"plain again"), rig.addr(rig.x.sock))
        assert loop.run_until_complete(rig.recv(rig.b)) == rtp(2, b"plain again")
    finally:
        rig.close()
        loop.close()


def test_a_bug_in_the_transport_never_raises_out_of_the_reader(
    sdes: tuple[SecureRig, SdesPeer], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig, peer = sdes

    def boom(self: Transport, data: bytes, source: object, now: float) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Transport, "control", boom)

    async def scenario() -> None:
        rig.b.sendto(b"\x17\xfe\xfd" + bytes(10), rig.addr(rig.y.sock))
        rig.b.sendto(peer.tx.protect(rtp(1, b"still flows")), rig.addr(rig.y.sock))
        assert await rig.recv(rig.a) == rtp(1, b"still flows")

    run(rig, scenario())
    assert rig.y.errors == 1  # and the loop's exception handler saw nothing (rig.close)


def test_arbitrary_datagrams_are_dropped_or_forwarded_never_raised() -> None:
    loop = asyncio.new_event_loop()
    rig = SecureRig(loop)
    s = suite("AES_CM_128_HMAC_SHA1_80")
    key = os.urandom(s.inline_len)
    attach_sdes(rig.y, open_context(s, key, outbound=False), open_context(s, key, outbound=True))
    rig.start()

    @settings(max_examples=300, deadline=None)
    @given(data=st.binary(max_size=300))
    def feed(data: bytes) -> None:
        handle(rig.y, data, rig.addr(rig.b), loop, lambda: 200.0, 0.0)  # raises = test fails
        handle(rig.x, data, rig.addr(rig.a), loop, lambda: 200.0, 0.0)

    try:
        feed()
    finally:
        rig.close()
        loop.close()


def test_the_pcap_of_an_srtp_leg_holds_plain_rtp(
    sdes: tuple[SecureRig, SdesPeer], tmp_path: Path
) -> None:
    """The recorder's own pcap records built from the tap, read back by tshark: the payload is
    the plaintext B sent, as rtpengine records an SRTP call."""
    tshark = require("tshark")
    rig, peer = sdes
    fmt = FORMATS["eth"]
    build = fmt.builder(rig.addr(rig.y.sock))
    records: list[bytes] = []
    rig.y.tap = lambda st, data, src, now: records.append(build(WALL, src, data))

    async def scenario() -> None:
        for seq in (1, 2):
            rig.b.sendto(peer.tx.protect(rtp(seq, b"spoken %d" % seq)), rig.addr(rig.y.sock))
            assert await rig.recv(rig.a) == rtp(seq, b"spoken %d" % seq)

    run(rig, scenario())
    path = tmp_path / "call.pcap"
    path.write_bytes(fmt.header("") + b"".join(records))
    out = subprocess.run(
        [tshark, "-r", str(path), "-d", f"udp.port=={rig.y.local_port},rtp",
         "-T", "fields", "-e", "rtp.seq", "-e", "rtp.payload"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    rows = [line.split("\t") for line in out if line]
    assert [(int(s), bytes.fromhex(p.replace(":", ""))) for s, p in rows] == [
        (1, b"spoken 1"), (2, b"spoken 2")
    ]


def test_sdes_replaces_dtls_and_dtls_replaces_sdes_keys() -> None:
    """A re-offer/answer that changes the keying: the last attach wins, no timer left behind."""
    from relay.dtls.cert import generate_certificate, parse_fingerprint
    from relay.dtls.session import DtlsSession, Role
    from tests.unit.relay.dtls.conftest import NOW

    loop = asyncio.new_event_loop()
    rig = SecureRig(loop)
    cert = generate_certificate(NOW, 0x77, "rtpvault-test")
    s = suite("AES_CM_128_HMAC_SHA1_80")
    key = os.urandom(s.inline_len)
    inbound, outbound = open_context(s, key, outbound=False), open_context(s, key, outbound=True)
    try:
        t = attach_dtls(rig.y, DtlsSession(cert, Role.CLIENT, parse_fingerprint(
            cert.fingerprint().render())))  # fmt: skip
        rig.start()  # the client starts: its retransmission timer is armed
        assert t._dtls_timer is not None and t.srtp_out is None
        assert attach_sdes(rig.y, inbound, outbound) is t
        assert t.dtls is None and t._dtls_timer is None and t.srtp_out is outbound
        attach_dtls(rig.y, DtlsSession(cert, Role.SERVER, parse_fingerprint(
            cert.fingerprint().render())))  # fmt: skip
        assert t.srtp_in is None and t.srtp_out is None  # no SDES keys survive into DTLS
    finally:
        rig.close()
        loop.close()


def test_srtcp_on_a_separate_rtcp_stream_pair() -> None:
    """Without rtcp-mux: the RTCP sockets' streams (is_rtcp) carry SRTCP on B's leg."""
    loop = asyncio.new_event_loop()
    rig = SecureRig(loop)
    rig.x.is_rtcp = rig.y.is_rtcp = True
    s = suite("AES_CM_128_HMAC_SHA1_80")
    b_key, relay_key = os.urandom(s.inline_len), os.urandom(s.inline_len)
    attach_sdes(rig.y, open_context(s, b_key, outbound=False),
                open_context(s, relay_key, outbound=True))  # fmt: skip
    peer = SdesPeer("AES_CM_128_HMAC_SHA1_80", b_key, relay_key)
    rig.start()

    async def scenario() -> None:
        rig.a.sendto(rtcp_rr(0xA), rig.addr(rig.x.sock))
        assert peer.rx.unprotect_rtcp(await rig.recv(rig.b)) == rtcp_rr(0xA)
        rig.b.sendto(peer.tx.protect_rtcp(rtcp_rr(0xB)), rig.addr(rig.y.sock))
        assert await rig.recv(rig.a) == rtcp_rr(0xB)

    try:
        run(rig, scenario())
        assert rig.taps["y"] == [rtcp_rr(0xB)] and rig.y.ssrc is None
    finally:
        rig.close()
        loop.close()
