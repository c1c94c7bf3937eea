"""A transcoded direction in the userspace plane (relay.media.transcoder), with real loopback
sockets and relay.transcode's real chain (PyAV): PCMU from A leaves towards B as PCMA at the
tone's pitch with the chain's SSRC, A's RTCP reaches B rewritten for B's leg
(docs/spec/transcoding.md §2), B → A stays byte for byte, and a stream without a chain keeps
the plain reader."""

from __future__ import annotations

import asyncio
import bisect
import math
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.g711 import ALAW_TO_LINEAR
from relay.media.transcoder import Ledger, Transcoder
from relay.transcode.plan import Codec, DirectionPlan
from tests.support.tone import dominant_hz, ulaw_samples, ulaw_tone
from tests.unit.relay.media.test_userspace import Rig, rtp

Chain = pytest.importorskip("relay.transcode.chain", reason="relay.transcode's chain").Chain

PCMU_TO_PCMA = DirectionPlan(inputs={0: Codec("PCMU", 8000)}, outputs={8: Codec("PCMA", 8000)},
                             encode_pt=8)  # fmt: skip
OUT_SSRC = 0x5EED0001
A_SSRC = 0x0A0A0A0A


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig(asyncio.new_event_loop())
    yield r
    r.close()


def _transcode(rig: Rig, ledger: Ledger) -> Transcoder:
    t = Transcoder(Chain(PCMU_TO_PCMA, OUT_SSRC), PCMU_TO_PCMA, ledger)
    rig.x.transcoder = t
    rig.plane.update(rig.x)
    return t


def _tone_packets(count: int) -> list[bytes]:
    return [rtp(100 + n, 8000 + 160 * n, A_SSRC, ulaw_tone(440, 160 * n)) for n in range(count)]


def _receive_all(rig: Rig, want: int) -> list[bytes]:
    got = []
    while len(got) < want:
        got.append(rig.recv(rig.b)[0])
    return got


def test_pcmu_leaves_as_pcma_at_its_pitch_with_the_chains_ssrc(rig: Rig) -> None:
    ledger = Ledger()
    t = _transcode(rig, ledger)
    assert rig.x in rig.plane._secure  # the reader that runs chains
    tapped: list[bytes] = []
    rig.x.tap = lambda stream, data, src, now: tapped.append(data)  # recording, HEP
    sent = _tone_packets(25)
    for p in sent:
        rig.a.sendto(p, rig.addr(rig.x.sock))
    got = _receive_all(rig, 20)  # the chain may hold a frame or two back
    assert {p[1] & 0x7F for p in got} == {8}
    assert {struct.unpack_from("!I", p, 8)[0] for p in got} == {OUT_SSRC}
    samples = [ALAW_TO_LINEAR[b] for p in got[2:] for b in p[12:]]
    assert abs(dominant_hz(samples) - 440) <= 20
    assert rig.x.packets == 25  # the stream counts what the party sent, as before
    assert tapped == sent  # recordings hold the leg as received (PCMU), not the chain's output
    fig = ledger.chains["PCMU/8000 -> PCMA/8000"]
    assert (fig.active, fig.packets, fig.bytes) == (1, 25, 25 * 160)
    assert fig.samples == 25 * 160
    assert t.errors == 0 and t.out_of == {A_SSRC: OUT_SSRC}
    t.close()
    assert fig.active == 0


def test_rtcp_from_the_party_describes_the_output_leg(rig: Rig) -> None:
    t = _transcode(rig, Ledger())
    for p in _tone_packets(10):
        rig.a.sendto(p, rig.addr(rig.x.sock))
    rig.until(lambda: rig.x.packets == 10)
    got = _receive_all(rig, t.sent[OUT_SSRC].packets)  # all the chain sent for them
    sr = struct.pack("!BBHI", 0x80, 200, 6, A_SSRC) + struct.pack("!IIIII", 1, 2, 3, 10, 1600)
    rig.a.sendto(sr, rig.addr(rig.x.sock))  # muxed: an SR by its packet type
    out = rig.recv(rig.b)[0]
    ssrc, _, _, ts, packets, octets = struct.unpack_from("!IIIIII", out, 4)
    assert ssrc == OUT_SSRC
    assert (packets, octets) == (len(got), sum(len(p) for p in got))
    assert ts == struct.unpack_from("!I", got[-1], 4)[0]
    assert t.translated == 1


def test_the_other_direction_and_plain_calls_keep_the_plain_path(rig: Rig) -> None:
    assert rig.x not in rig.plane._secure and rig.y not in rig.plane._secure
    t = _transcode(rig, Ledger())
    assert rig.y not in rig.plane._secure  # B's packets are not transcoded: plain reader
    back = rtp(9, 5678, 0x01020304)
    rig.b.sendto(back, rig.addr(rig.y.sock))
    assert rig.recv(rig.a)[0] == back
    rig.x.transcoder = None
    t.close()
    rig.plane.update(rig.x)
    assert rig.x not in rig.plane._secure
    plain = rtp(7, 1234, A_SSRC)
    rig.a.sendto(plain, rig.addr(rig.x.sock))
    assert rig.recv(rig.b)[0] == plain


def test_an_srtp_leg_gets_transcoded_audio_protected_and_its_own_unprotected() -> None:
    """B's leg is SDES-SRTP (pylibsrtp on B's side): A's PCMU reaches B as SRTP-protected
    PCMA (the sink's transport protects the chain's output), B's SRTP PCMA is unprotected, then
    transcoded, and reaches A as plain PCMU; B's tap holds B's plaintext PCMA as B sent it."""
    pylibsrtp = pytest.importorskip("pylibsrtp")
    from relay.media.secure import attach_sdes
    from relay.srtp import open_context, suite
    from tests.unit.relay.media.secure_rig import SecureRig

    aes = suite("AES_CM_128_HMAC_SHA1_80")
    b_key, relay_key = bytes(range(30)), bytes(range(30, 60))
    profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    b_tx = pylibsrtp.Session(pylibsrtp.Policy(key=b_key, srtp_profile=profile,
                                              ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    b_rx = pylibsrtp.Session(pylibsrtp.Policy(key=relay_key, srtp_profile=profile,
                                              ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    loop = asyncio.new_event_loop()
    rig = SecureRig(loop)
    attach_sdes(rig.y, open_context(aes, b_key, outbound=False),
                open_context(aes, relay_key, outbound=True))  # fmt: skip
    back = DirectionPlan(inputs={8: Codec("PCMA", 8000)}, outputs={0: Codec("PCMU", 8000)},
                         encode_pt=0)  # fmt: skip
    ledger = Ledger()
    rig.x.transcoder = Transcoder(Chain(PCMU_TO_PCMA, OUT_SSRC), PCMU_TO_PCMA, ledger)
    rig.y.transcoder = Transcoder(Chain(back, OUT_SSRC + 1), back, ledger)
    rig.x.transcoder.other, rig.y.transcoder.other = rig.y.transcoder, rig.x.transcoder
    rig.start()
    try:
        pcma_out = [struct.pack("!BBHII", 0x80, 8, 200 + n, 160 * n, 0x0B0B0B0B)
                    + bytes(_alaw(660, 160 * n)) for n in range(20)]
        for n, p in enumerate(_tone_packets(20)):
            rig.a.sendto(p, rig.addr(rig.x.sock))
            rig.b.sendto(b_tx.protect(pcma_out[n]), rig.addr(rig.y.sock))
        to_b: list[bytes] = []
        to_a: list[bytes] = []

        async def collect() -> None:
            while len(to_b) < 18 or len(to_a) < 18:
                for sock, got in ((rig.b, to_b), (rig.a, to_a)):
                    try:
                        got.append(sock.recv(4096))
                    except BlockingIOError:
                        pass
                await asyncio.sleep(0.002)

        loop.run_until_complete(asyncio.wait_for(collect(), 10))
        plain_b = [b_rx.unprotect(p) for p in to_b]  # raises if not SRTP under our key
        assert {p[1] & 0x7F for p in plain_b} == {8}
        at_b = [ALAW_TO_LINEAR[x] for p in plain_b[2:] for x in p[12:]]
        assert abs(dominant_hz(at_b) - 440) <= 20
        assert {p[1] & 0x7F for p in to_a} == {0}
        at_a = [v for p in to_a[2:] for v in ulaw_samples(p[12:])]
        assert abs(dominant_hz(at_a) - 660) <= 20
        assert rig.taps["y"][:3] == pcma_out[:3]
    finally:
        rig.close()
        loop.close()


def _alaw(hz: float, first: int) -> list[int]:
    """A-law codes of a sine (the nearest entry of the decoder's table)."""
    table = sorted((v, c) for c, v in enumerate(ALAW_TO_LINEAR))
    values = [v for v, _ in table]
    out = []
    for i in range(160):
        x = round(8000 * math.sin(2 * math.pi * hz * (first + i) / 8000))
        k = min(bisect.bisect_left(values, x), len(values) - 1)
        out.append(table[k][1])
    return out


OPUS_TO_PCMU = DirectionPlan(inputs={96: Codec("opus", 48000, 2)},
                             outputs={0: Codec("PCMU", 8000)}, encode_pt=0)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(0, 127))
def test_any_bytes_into_a_direction_never_raise(packets: list[bytes], pt: int) -> None:
    """Garbage RTP or RTCP from a party: the transcoder returns packets or nothing and counts;
    nothing reaches the reader as an exception."""
    t = Transcoder(Chain(OPUS_TO_PCMU, OUT_SSRC), OPUS_TO_PCMU, Ledger())
    for n, data in enumerate(packets):
        head = struct.pack("!BBHII", 0x80, pt, n, 960 * n, A_SSRC)
        for p in (data, head + data):
            assert all(isinstance(o, bytes) for o in t.feed(p, n * 0.02))
            assert isinstance(t.rtcp(p), bytes)
    assert all(n >= 0 for _, n in t.drops())
