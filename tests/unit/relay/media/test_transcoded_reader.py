"""A transcoded direction in the userspace plane (relay.media.transcoder), with real loopback
sockets and relay.transcode's real chain (PyAV): PCMU from A leaves towards B as PCMA at the
tone's pitch with the chain's SSRC, A's RTCP reaches B rewritten for B's leg
(docs/spec/transcoding.md §2), B → A stays byte for byte, and a stream without a chain keeps
the plain reader."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import pytest

from recorder.g711 import ALAW_TO_LINEAR
from relay.media.transcoder import Ledger, Transcoder
from relay.transcode.plan import Codec, DirectionPlan
from tests.support.tone import dominant_hz, ulaw_tone
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
